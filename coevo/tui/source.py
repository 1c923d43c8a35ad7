"""Where the TUI and `coevo show` read a run: a run directory or a database URL resolved to a store
and a run id, and the reads they make — all through the memory's read API (coevo.memory.journal's
`EventCursor` for events, `Store` for the committed tables), never through SQL of their own.

No textual here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coevo.memory.errors import StoreError
from coevo.memory.journal import EventCursor, JournalEntry
from coevo.memory.store import DB_NAME, Store, sqlite_url
from coevo.memory.tables import (
    CurriculumHistory,
    PolicyVersion,
    ProblemRecord,
    SkillProfileRecord,
    TrainingRun,
)
from coevo.society.secrets import SecretError, expand, mask_url
from coevo.society.session import CONFIG_SNAPSHOT, run_id_for

# Rows read per cursor poll while catching up or paging.
PAGE_ROWS = 2000


class TargetError(ValueError):
    """A run directory or database URL that holds no run to show."""


@dataclass
class RunTarget:
    store: Store
    run_id: str
    # The run directory when the run was opened by it (for the resume hint).
    run_dir: Path | None = None

    def resume_hint(self) -> str:
        return f"coevo run --resume {self.run_dir if self.run_dir else 'RUN_DIR'}"

    def close(self) -> None:
        self.store.close()


def _snapshot_memory_url(run_dir: Path) -> str | None:
    """The memory URL the run's config snapshot names (None: the run directory's SQLite), with its
    `${NAME}`s expanded; TargetError when it held a literal password, which the snapshot masks."""
    from coevo.society.config import parse_structure
    from coevo.society.config_errors import ConfigError

    path = run_dir / CONFIG_SNAPSHOT
    if not path.exists():
        return None
    try:
        url = parse_structure(path.read_text(encoding="utf-8"), str(path)).memory.url
    except ConfigError:
        return None  # an unreadable snapshot still leaves the database beside it
    try:
        return None if url is None else expand(url, "memory.url")
    except SecretError as exc:
        raise TargetError(
            f"{run_dir}: cannot open the run's memory ({exc}); or give the database URL instead of the folder"
        ) from None


def _missing_sqlite_file(url: str) -> bool:
    # Opening a store creates its database: a mistyped path must not leave an empty one behind.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return False  # the store names what is wrong with it
    database = parsed.database
    return (
        parsed.get_backend_name() == "sqlite"
        and bool(database)
        and database != ":memory:"
        and not (Path(str(database)).exists())
    )


def open_target(target: str, run_id: str | None = None) -> RunTarget:
    """Resolve `target` (a run directory or a SQLAlchemy URL) and pick its run: `run_id` when
    given, else the directory's own run, else the newest run in the database."""
    run_dir: Path | None = None
    shown = mask_url(target)  # a database URL may hold a password
    if "://" in target:
        url = target
        if _missing_sqlite_file(url):
            raise TargetError(f"{shown}: no such database file")
    else:
        run_dir = Path(target)
        url = _snapshot_memory_url(run_dir) or sqlite_url(run_dir)
        if url == sqlite_url(run_dir) and not (run_dir / DB_NAME).exists():
            what = "a run directory without a database" if run_dir.is_dir() else "no such directory"
            raise TargetError(f"{target}: {what} (give a run directory such as runs/demo, or a database URL)")
    try:
        store = Store(url)
    except StoreError as exc:
        raise TargetError(str(exc)) from None
    runs = {run.id: run for run in store.list_runs()}
    if run_id is None and run_dir is not None and run_id_for(run_dir) in runs:
        run_id = run_id_for(run_dir)
    elif run_id is None and runs:
        run_id = max(runs.values(), key=lambda run: run.created_at).id
    if run_id is None or run_id not in runs:
        store.close()
        what = f"no run {run_id}" if run_id else "no run"
        raise TargetError(f"{shown}: {what} in this database (runs: {', '.join(sorted(runs)) or 'none'})")
    return RunTarget(store, run_id, run_dir)


def read_all(cursor: EventCursor) -> list[JournalEntry]:
    """Everything the cursor has not read yet."""
    entries: list[JournalEntry] = []
    while batch := cursor.poll(PAGE_ROWS):
        entries += batch
    return entries


def page_before(
    store: Store,
    run_id: str,
    before_id: int,
    keep: Callable[[JournalEntry], bool],
    count: int,
    *,
    types: list[str] | None = None,
    scan_limit: int = 200_000,
) -> tuple[list[JournalEntry], int]:
    """Up to `count` entries with row ids below `before_id` that `keep` accepts, newest first, and
    the row id the next page starts below (0 once the start of the run is reached). The cursor
    reads forward only, so this reads back in windows that double in size, `scan_limit` row ids
    at most per call."""
    found: list[JournalEntry] = []
    high = before_id
    step = max(count * 4, PAGE_ROWS)
    while high > 0 and len(found) < count and before_id - high < scan_limit:
        low = max(0, high - step)
        cursor = EventCursor(store, run_id, after_id=low, types=types)
        chunk: list[JournalEntry] = []
        while batch := cursor.poll(PAGE_ROWS):
            chunk += [entry for entry in batch if entry.row_id < high]
            if batch[-1].row_id >= high:
                break
        found += [entry for entry in reversed(chunk) if keep(entry)]
        high = low
        step *= 2
    if len(found) > count:
        return found[:count], found[count - 1].row_id
    return found, high


@dataclass
class Committed:
    """What the run's committed tables say (refreshed as rounds commit)."""

    last_round: int
    problems: list[ProblemRecord]
    history: list[CurriculumHistory]
    trainings: list[TrainingRun]
    policies: dict[str, list[PolicyVersion]]


def read_committed(store: Store, run_id: str) -> Committed:
    agents = [agent.name for agent in store.agents(run_id)]
    return Committed(
        last_round=store.last_committed_round(run_id),
        problems=store.problems(run_id),
        history=store.curriculum_history(run_id),
        trainings=store.training_runs(run_id),
        policies={name: store.policy_versions(run_id, name) for name in agents},
    )


def read_skill_profiles(
    store: Store, run_id: str, rounds: range
) -> dict[str, dict[int, list[SkillProfileRecord]]]:
    """Agent → round → its per-skill profile, for the agents that have one in those rounds."""
    profiles: dict[str, dict[int, list[SkillProfileRecord]]] = {}
    for agent in store.agents(run_id):
        for index in rounds:
            rows = store.skill_profile(run_id, agent.name, index)
            if rows:
                profiles.setdefault(agent.name, {})[index] = rows
    return profiles
