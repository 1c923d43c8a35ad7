"""Durability: a real run process is killed with SIGKILL at several points (before its first
commit, right after a commit, mid-round), resumed each time with `--resume` semantics, and the
final database must equal an uninterrupted run's, row for row (timestamps and ids aside)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.society.replay_society import spawn, wait_for

TABLES = [
    "runs",
    "agents",
    "messages",
    "problems",
    "attempts",
    "skill_profiles",
    "run_state",
    "policy_versions",
    "training_runs",
    "curriculum_history",
]
# Columns that differ between two correct runs: surrogate ids, wall-clock times and process ids,
# the run id (derived from the run directory's path), paths inside the run folder, and the
# timings a trainer reports.
VOLATILE = {
    "id",
    "run",
    "run_id",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "seconds",
    "heartbeat_at",
    "pid",
    "host",
    "adapter_path",
    "path",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
}
DELAY_S = 0.12  # per engine request, so a round takes about a second


def _last_round(run_dir: Path) -> int:
    db = run_dir / "coevo.db"
    if not db.exists():
        return -2
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("SELECT last_round FROM runs").fetchone()
    except sqlite3.OperationalError:
        return -2  # tables not created yet
    return -2 if row is None else int(row[0])


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)  # a loss summed in another order may differ in the last bits
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _rows(run_dir: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(run_dir / "coevo.db") as conn:
        conn.row_factory = sqlite3.Row
        out = {}
        for table in TABLES:
            # Events are journaled as they happen, so concurrent episodes may interleave: compare
            # them in their canonical order (their ids derive from where they stand in the run).
            order = "round, coalesce(episode, -1), event_id" if table == "messages" else "rowid"
            rows = [_clean(dict(r)) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {order}")]
            out[table] = rows
        return out


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    proc = spawn(reference, resume=False, delay=DELAY_S)
    assert proc.wait(timeout=300) == 0

    run = tmp_path / "killed"
    # 1: during round 0, before anything was committed.
    proc = spawn(run, resume=False, delay=DELAY_S)
    wait_for(lambda: _last_round(run) == -1, 120, proc)
    time.sleep(DELAY_S * 2)
    _kill(proc)
    assert _last_round(run) == -1
    # 2: right after a round commits.
    proc = spawn(run, resume=True, delay=DELAY_S)
    wait_for(lambda: _last_round(run) >= 1, 120, proc)
    _kill(proc)
    # 3: in the middle of the next round.
    committed = _last_round(run)
    proc = spawn(run, resume=True, delay=DELAY_S)
    wait_for(lambda: _last_round(run) > committed, 120, proc)
    time.sleep(DELAY_S * 3)
    _kill(proc)
    # Finish.
    proc = spawn(run, resume=True, delay=DELAY_S)
    assert proc.wait(timeout=300) == 0

    expected, actual = _rows(reference), _rows(run)
    for table in TABLES:
        assert len(actual[table]) == len(expected[table]), table
        for i, (a, e) in enumerate(zip(actual[table], expected[table], strict=True)):
            assert a == e, f"{table} row {i} differs"


@pytest.mark.slow
def test_kill_9_at_20_random_moments_with_training_matches_uninterrupted_run(
    tiny_model: str, tmp_path: Path
) -> None:
    """Kills land during rounds, during training, and between recording a training and loading
    its adapter; after resuming to the end, every table (events included) equals an uninterrupted
    run's, and no scratch folder is left."""
    import random

    reference = tmp_path / "reference"
    proc = spawn(reference, resume=False, delay=0.02, model=tiny_model)
    assert proc.wait(timeout=600) == 0

    run = tmp_path / "killed"
    rng = random.Random(20)
    kills = 0
    started = False
    while kills < 20:
        proc = spawn(run, resume=started, delay=0.02, model=tiny_model)
        started = True
        try:
            proc.wait(timeout=rng.uniform(0.5, 6.0))
        except subprocess.TimeoutExpired:
            _kill(proc)
            kills += 1
            continue
        assert proc.returncode == 0
        break  # finished before the next kill: start over on a fresh folder would hide nothing
    if proc.poll() is None or proc.returncode != 0:
        proc = spawn(run, resume=True, delay=0.02, model=tiny_model)
        assert proc.wait(timeout=600) == 0
    print(f"{kills} kills")
    assert kills >= 10, f"only {kills} kills landed before the run finished"

    expected, actual = _rows(reference), _rows(run)
    for table in TABLES:
        assert len(actual[table]) == len(expected[table]), table
        for i, (a, e) in enumerate(zip(actual[table], expected[table], strict=True)):
            assert a == e, f"{table} row {i} differs"
    adapters = sorted(p.name for p in (run / "adapters" / "solver").iterdir())
    assert adapters == ["v1", "v2", "v3"], adapters  # no scratch or unrecorded folders left
