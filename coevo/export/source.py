"""Opening a finished (or running) run for export: its config snapshot, its memory and its id.

The snapshot is read with the config's structural pass only: export needs the run's seed, agents,
schedule and trainer settings, not the engines or plugins, which another machine may lack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coevo.memory.errors import StoreError
from coevo.memory.store import DB_NAME, Store, sqlite_url
from coevo.society.config import SocietyConfig, parse_structure, read_config_text
from coevo.society.config_errors import ConfigError
from coevo.society.secrets import SecretError
from coevo.society.session import CONFIG_SNAPSHOT, memory_url, run_id_for


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says why and what to do."""


@dataclass
class OpenedRun:
    run_dir: Path
    config: SocietyConfig
    store: Store
    run_id: str
    # The last round committed as a whole: export never reads a round still in progress.
    last_round: int

    def close(self) -> None:
        self.store.close()


def open_run(run_dir: Path) -> OpenedRun:
    """The run in `run_dir`; ExportError when there is none, or nothing committed yet."""
    snapshot = run_dir / CONFIG_SNAPSHOT
    if not run_dir.is_dir():
        raise ExportError(f"run directory not found: {run_dir}")
    if not snapshot.is_file():
        raise ExportError(f"{run_dir} holds no run (no {CONFIG_SNAPSHOT}): give a folder `coevo run` made")
    try:
        config = parse_structure(read_config_text(snapshot), str(snapshot))
    except ConfigError as exc:
        raise ExportError(f"cannot read the run's config snapshot: {exc}") from None
    try:
        url = memory_url(config, run_dir)
    except SecretError as exc:  # a literal password the snapshot masks, or an unset variable
        raise ExportError(
            f"cannot open the run's memory: {exc}; to export, make memory.url in {snapshot} read it "
            "from the environment (${NAME})"
        ) from None
    if url == sqlite_url(run_dir) and not (run_dir / DB_NAME).is_file():
        raise ExportError(f"{run_dir} has no memory database ({DB_NAME})")
    try:
        store = Store(url)
    except StoreError as exc:
        raise ExportError(str(exc)) from None
    run_id = run_id_for(run_dir)
    run = store.get_run(run_id)
    if run is None and url == sqlite_url(run_dir):
        # A run directory that was moved or copied: its id (derived from the path it ran in)
        # changed, but a database of its own holds that one run.
        runs = store.list_runs()
        run = runs[0] if len(runs) == 1 else None
    if run is None:
        store.close()
        raise ExportError(f"no run {run_id!r} in the memory of {run_dir}")
    if run.last_round < 0:
        store.close()
        raise ExportError(f"run {run.id} has no committed round yet: nothing to export")
    return OpenedRun(run_dir=run_dir, config=config, store=store, run_id=run.id, last_round=run.last_round)
