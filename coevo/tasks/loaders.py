"""Dataset loaders: GSM8K-style and MATH-style JSONL, any JSONL with a field mapping, Hugging Face
`datasets` (where a hub is reachable), and `load_dataset_spec`, which resolves the names the
command line accepts.

Names: "gsm8k" and "mathdial" → `<data dir>/<name>/<split>.jsonl`, where the data dir is `$COEVO_DATA`
or the first `shared/data` (or `data`) folder found walking up from the working directory or from
this package; "procedural-heldout" → the built-in held-out set; "hf:<name>[:<config>]" → the hub;
anything else is a file path whose format is detected from its fields.

Rows are validated as they are read: an empty dataset, an undecodable (binary) file, and a row whose
question or answer is missing, null, NaN, empty or not a scalar are refused with a DatasetError that
names the file and line ("data.jsonl:3: answer is null"). So is input past the limits below, before
it is parsed or sent to a model: a JSONL line is read at most `MAX_LINE_CHARS` at a time, its
nesting measured before `json.loads` recurses into it, and a `.json` file's size checked before it
is read.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coevo.tasks.answers import last_boxed
from coevo.tasks.problem import Problem, Provenance

NAMED_DATASETS = ("gsm8k", "mathdial")

# Limits on a dataset (README, "Data"). A row is a flat object of a few short fields: a question of a
# few thousand characters at most (competition problems), a worked solution of a few more.
MAX_LINE_CHARS = 1_000_000  # one JSONL line (one row)
MAX_QUESTION_CHARS = 20_000  # a question: every attempt sends it to a model, k times
MAX_JSON_DEPTH = 32  # nesting of brackets in a row (json.loads recurses once per level)
MAX_JSON_FILE_BYTES = 64 * 2**20  # a .json dataset, which is parsed whole (JSONL streams)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")
_CALCULATOR_RE = re.compile(r"<<[^>]*>>")

Row = Mapping[str, Any]


class DatasetError(ValueError):
    """A dataset that cannot be found or read; the message says what to do."""


def find_data_dir() -> Path | None:
    """`$COEVO_DATA`, else the nearest `shared/data` or `data` folder above the cwd or this package
    that holds a known dataset."""
    env = os.environ.get("COEVO_DATA")
    if env:
        return Path(env)
    starts = [Path.cwd().resolve(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            for candidate in (folder / "shared" / "data", folder / "data"):
                if any((candidate / name).is_dir() for name in NAMED_DATASETS):
                    return candidate
    return None


def _too_deep(text: str) -> int | None:
    """Where `text`'s JSON nests deeper than `MAX_JSON_DEPTH` (an offset), or None. A scan of the
    brackets outside strings, so a hostile row is refused before json.loads recurses into it."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return None  # the common case, at the speed of str.count
    # Strings blanked to spaces of the same length, so offsets (and lines) stay where they were.
    plain = _JSON_STRING.sub(lambda m: " " * len(m.group()), text)
    depth = 0
    for bracket in _BRACKET.finditer(plain):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            return bracket.start()
    return None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(index, line) for each line of a text file, refusing one longer than `MAX_LINE_CHARS`
    without ever holding more than that of it."""
    with path.open(encoding="utf-8") as handle:
        for index in itertools.count():
            line = handle.readline(MAX_LINE_CHARS + 1)
            if not line:
                return
            if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
                raise DatasetError(
                    f"{path}:{index + 1}: the line is longer than {MAX_LINE_CHARS:,} characters "
                    "(the limit for one row)"
                )
            yield index, line


def _rows(path: Path) -> Iterator[tuple[int, str, Row]]:
    """(index, location, row) for each row; the location ("data.jsonl:3", "data.json item 2") is
    what errors about the row name."""
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    count = 0
    try:
        if path.suffix == ".json":
            size = path.stat().st_size
            if size > MAX_JSON_FILE_BYTES:
                raise DatasetError(
                    f"{path}: {size:,} bytes, over the {MAX_JSON_FILE_BYTES:,} a .json dataset may hold "
                    "(it is parsed whole); write it as JSONL, one row a line"
                )
            text = path.read_text(encoding="utf-8")
            deep = _too_deep(text)
            if deep is not None:
                where = text.count("\n", 0, deep) + 1
                raise DatasetError(f"{path}:{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(data, list):
                raise DatasetError(f"{path}: a .json dataset must hold a list of objects")
            for index, row in enumerate(data):
                if not isinstance(row, dict):
                    raise DatasetError(f"{path} item {index}: each item must be a JSON object")
                count += 1
                yield index, f"{path} item {index}", row
        else:
            for index, line in _lines(path):
                if not line.strip():
                    continue
                if _too_deep(line) is not None:
                    raise DatasetError(f"{path}:{index + 1}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{index + 1}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{index + 1}: each line must be a JSON object")
                count += 1
                yield index, f"{path}:{index + 1}", row
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason}): a binary file?") from None
    if count == 0:
        raise DatasetError(f"{path}: the dataset is empty (no rows)")


def _field(row: Row, name: str, where: str) -> str:
    """A question or answer field as text, refusing a value that cannot be one: missing, null,
    NaN or infinite, empty, or a list or object."""
    if name not in row:
        raise DatasetError(f"{where}: missing field {name!r} (fields: {', '.join(map(str, row))})")
    value = row[name]
    if value is None:
        raise DatasetError(f"{where}: {name} is null")
    if isinstance(value, float) and not math.isfinite(value):
        raise DatasetError(f"{where}: {name} is {'NaN' if math.isnan(value) else 'infinite'}")
    if isinstance(value, list | dict):
        kind = "a list" if isinstance(value, list) else "an object"
        raise DatasetError(f"{where}: {name} is not a scalar ({kind})")
    text = str(value)
    if not text.strip():
        raise DatasetError(f"{where}: {name} is empty")
    if text.strip().lower() == "nan":  # a missing value, as pandas exports it
        raise DatasetError(f"{where}: {name} is NaN")
    return text


def _question(row: Row, name: str, where: str) -> str:
    """A row's question (`_field`), refused past `MAX_QUESTION_CHARS`: every attempt at it sends it
    to a model."""
    text = _field(row, name, where)
    if len(text) > MAX_QUESTION_CHARS:
        raise DatasetError(
            f"{where}: {name} is {len(text):,} characters, over the limit of {MAX_QUESTION_CHARS:,}"
        )
    return text


def _problem(
    question: str, answer: str, dataset: str, row: int, solution: str | None = None, **extra: Any
) -> Problem:
    return Problem(
        id=Problem.make_id(question, answer),
        question=question,
        answer=answer,
        solution=solution,
        provenance=Provenance(source="dataset", author=dataset, details={"dataset": dataset, "row": row}),
        **extra,
    )


def _take(problems: Iterable[Problem], limit: int | None) -> list[Problem]:
    """The first `limit` problems (all when None); rows past the limit are never read or checked."""
    return list(itertools.islice(problems, limit))


def gsm8k_problem(row: Row, index: int, dataset: str = "gsm8k", where: str = "gsm8k") -> Problem:
    """Reference = the text after `####`, commas removed; solution = the worked text without the
    calculator annotations `<<...>>`. `where` names the row in errors."""
    question, text = _question(row, "question", where), _field(row, "answer", where)
    if "####" not in text:
        raise DatasetError(f"{where}: the answer has no '#### N' final line")
    worked, final = text.rsplit("####", 1)
    answer = final.strip().replace(",", "")
    if not answer:
        raise DatasetError(f"{where}: answer is empty after '####'")
    return _problem(question, answer, dataset, index, _CALCULATOR_RE.sub("", worked).strip())


def load_gsm8k(path: str | Path, limit: int | None = None) -> list[Problem]:
    path = Path(path)
    return _take((gsm8k_problem(row, i, where=where) for i, where, row in _rows(path)), limit)


def math_problem(row: Row, index: int, dataset: str = "math", where: str = "math") -> Problem:
    """`problem` plus `answer`, or the last `\\boxed{}` of `solution`; `type`/`level` become the
    skill and difficulty when present. `where` names the row in errors."""
    question = _question(row, "problem", where)
    solution = None if row.get("solution") is None else str(row["solution"])
    answer = _field(row, "answer", where).strip() if "answer" in row else None
    if answer is None and solution is not None:
        answer = last_boxed(solution)
    if not answer:
        raise DatasetError(f"{where}: no `answer` field and no \\boxed{{}} in `solution`")
    extra: dict[str, Any] = {}
    if row.get("type"):
        extra["skills"] = [str(row["type"])]
    level = re.search(r"\d+", str(row.get("level", "")))
    if level:
        extra["difficulty"] = {"level": float(level.group(0))}
    return _problem(question, answer.strip(), dataset, index, solution, **extra)


def load_math(path: str | Path, limit: int | None = None) -> list[Problem]:
    path = Path(path)
    return _take((math_problem(row, i, where=where) for i, where, row in _rows(path)), limit)


def load_jsonl(
    path: str | Path,
    question_field: str,
    answer_field: str,
    *,
    solution_field: str | None = None,
    skills_field: str | None = None,
    answer_parser: Callable[[str], str] | None = None,
    dataset: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Any JSONL (or JSON list) with a field mapping; `answer_parser` turns the answer field into
    the reference answer (default: the field, stripped)."""
    path = Path(path)
    name = dataset or path.stem

    def build(index: int, where: str, row: Row) -> Problem:
        raw = _field(row, answer_field, where)
        answer = answer_parser(raw) if answer_parser else raw.strip()
        skills = row.get(skills_field) if skills_field else None
        return _problem(
            _question(row, question_field, where),
            answer,
            name,
            index,
            str(row[solution_field]) if solution_field and solution_field in row else None,
            **({"skills": [str(s) for s in skills]} if isinstance(skills, list) else {}),
        )

    return _take((build(i, where, row) for i, where, row in _rows(path)), limit)


def _mathdial_answer(ground_truth: str) -> str:
    """MathDial's worked solutions end with a line holding only the final answer."""
    return ground_truth.strip().splitlines()[-1].strip().replace(",", "")


def load_hf(
    name: str,
    split: str = "test",
    *,
    config: str | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    limit: int | None = None,
) -> list[Problem]:
    """A Hugging Face hub dataset (needs network or a local `datasets` cache). GSM8K-style answers
    (`#### N`) and MATH-style rows (`problem`) are recognised; other rows use the field names."""
    try:
        import datasets
    except ImportError:
        raise DatasetError(
            "loading from the hub needs the `datasets` package (pip install datasets)"
        ) from None
    try:
        rows = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # offline, unknown name, bad split: all reported the same way
        raise DatasetError(
            f"could not load {name!r} (split {split!r}) from the Hugging Face hub: "
            f"{type(exc).__name__}: {exc}. Offline? Use a local JSONL file instead."
        ) from None
    if len(rows) == 0:
        raise DatasetError(f"hf:{name} (split {split!r}): the dataset is empty (no rows)")
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    return [
        _detect_row(dict(row), i, f"hf:{name}", question_field, answer_field, f"hf:{name} row {i}")
        for i, row in enumerate(rows)
    ]


def _detect_row(
    row: Row, index: int, dataset: str, question_field: str, answer_field: str, where: str
) -> Problem:
    if "problem" in row and question_field not in row:
        return math_problem(row, index, dataset, where)
    if "####" in str(row.get(answer_field, "")) and answer_field == "answer":
        return gsm8k_problem(row, index, dataset, where)
    if "ground_truth" in row and answer_field not in row:
        ground_truth = _field(row, "ground_truth", where)
        return _problem(
            _question(row, question_field, where),
            _mathdial_answer(ground_truth),
            dataset,
            index,
            ground_truth,
        )
    return _problem(
        _question(row, question_field, where), _field(row, answer_field, where).strip(), dataset, index
    )


def load_file(path: str | Path, limit: int | None = None) -> list[Problem]:
    """A local .jsonl/.json file, its format (GSM8K, MATH, MathDial, or question/answer) detected
    from its fields."""
    path = Path(path)
    if path.suffix not in (".jsonl", ".json"):
        raise DatasetError(f"{path}: unsupported file type {path.suffix!r} (use .jsonl or .json)")
    dataset = path.parent.name if path.stem in ("train", "test", "validation") else path.stem
    rows = _rows(path)
    return _take((_detect_row(row, i, dataset, "question", "answer", where) for i, where, row in rows), limit)


def load_dataset_spec(
    name_or_path: str,
    split: str = "test",
    limit: int | None = None,
    *,
    skills: Sequence[str] | None = None,
    seed: int = 0,
    levels: Mapping[str, Sequence[int]] | None = None,
) -> list[Problem]:
    """Problems for a dataset name or path (see the module docstring); `skills`, `seed` and
    difficulty `levels` apply to the procedural held-out set."""
    if name_or_path == "procedural-heldout":
        from coevo.tasks.heldout import heldout_set

        return heldout_set(n=limit or 300, skills=skills, seed=seed, levels=levels)
    if name_or_path.startswith("hf:"):
        name, _, config = name_or_path[3:].partition(":")
        return load_hf(name, split, config=config or None, limit=limit)
    if name_or_path in NAMED_DATASETS:
        root = find_data_dir()
        if root is None:
            raise DatasetError(
                f"dataset {name_or_path!r}: no data folder found; set COEVO_DATA to the folder holding "
                f"{name_or_path}/{split}.jsonl"
            )
        path = root / name_or_path / f"{split}.jsonl"
        if not path.is_file():
            splits = sorted(p.stem for p in (root / name_or_path).glob("*.jsonl"))
            raise DatasetError(f"dataset {name_or_path!r} has no split {split!r} in {root}; splits: {splits}")
        return load_file(path, limit)
    path = Path(name_or_path)
    if path.exists():
        return load_file(path, limit)
    raise DatasetError(
        f"unknown dataset {name_or_path!r}: not a file, and not one of "
        f"{', '.join((*NAMED_DATASETS, 'procedural-heldout'))} or hf:<name>"
    )
