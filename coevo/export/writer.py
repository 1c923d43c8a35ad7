"""Writing an export's rows as data files, batch by batch, in one of three formats:

- `hf`: the Hub's layout, parquet shards `data/train-0000i-of-0000n.parquet` of at most
  `SHARD_ROWS` rows (the files `push_to_hub` writes, loadable by `datasets.load_dataset`);
- `parquet`: one file, `data/train.parquet`;
- `jsonl`: one JSON Lines file, `data/train.jsonl` (its column types are declared in the card).

Parquet files are written with the kind's explicit schema, so every batch has the same types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

FORMATS = ("hf", "jsonl", "parquet")
SHARD_ROWS = 200_000


class DataWriter:
    """Writes rows under `folder/data/`; `close()` returns the files written (none for no rows)."""

    def __init__(self, folder: Path, fmt: str, schema: pa.Schema) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.folder = folder / "data"
        self.format = fmt
        self.schema = schema
        self.rows = 0
        self._files: list[Path] = []
        self._parquet: pq.ParquetWriter | None = None
        self._jsonl: TextIO | None = None
        self._in_shard = 0
        self._closed = False

    @property
    def pattern(self) -> str:
        """The data files as the card's `data_files` names them."""
        return {"hf": "data/train-*.parquet", "parquet": "data/train.parquet", "jsonl": "data/train.jsonl"}[
            self.format
        ]

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows += len(rows)
        if self.format == "jsonl":
            if self._jsonl is None:
                path = self.folder / "train.jsonl"
                self._files.append(path)
                self._jsonl = path.open("w", encoding="utf-8")
            self._jsonl.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            return
        import pyarrow as pa

        while rows:
            room = SHARD_ROWS - self._in_shard if self.format == "hf" else len(rows)
            part, rows = rows[:room], rows[room:]
            self._parquet_writer().write_table(pa.Table.from_pylist(part, schema=self.schema))
            self._in_shard += len(part)
            if self.format == "hf" and self._in_shard >= SHARD_ROWS:
                self._close_parquet()

    def _parquet_writer(self) -> pq.ParquetWriter:
        if self._parquet is None:
            import pyarrow.parquet as pq

            name = f"train-{len(self._files):05d}.parquet" if self.format == "hf" else "train.parquet"
            path = self.folder / name
            self._files.append(path)
            self._parquet = pq.ParquetWriter(path, self.schema)
        return self._parquet

    def _close_parquet(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
            self._in_shard = 0

    def close(self) -> list[Path]:
        self._close_parquet()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self.format == "hf" and not self._closed:
            # Shards are named "-of-N" (the Hub's convention) once N is known.
            final = [p.with_name(f"{p.stem}-of-{len(self._files):05d}.parquet") for p in self._files]
            for old, new in zip(self._files, final, strict=True):
                old.rename(new)
            self._files = final
        self._closed = True
        return list(self._files)
