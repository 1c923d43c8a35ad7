"""Durability: a real run process is killed with SIGKILL at named moments — before its first
commit, right after a commit, mid-round, mid-training, between a training's record and its
adapter's load, mid-resume — each found by watching the run's journal, resumed each time with
`--resume` semantics, and the final database must equal an uninterrupted run's, row for row
(timestamps and ids aside)."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from coevo.society.checker import records
from tests.society.replay_society import spawn, wait_for

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


def _same_records(run: Path, reference: Path) -> None:
    expected, actual = records(reference), records(run)
    assert expected.keys() == actual.keys()
    for table in expected:
        assert len(actual[table]) == len(expected[table]), table
        for i, (a, e) in enumerate(zip(actual[table], expected[table], strict=True)):
            assert a == e, f"{table} row {i} differs"


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

    _same_records(run, reference)


# Where a kill lands, read from the run's journal (its messages table) and its runs row: each holds
# while the process is at that moment, and still holds after a SIGKILL there (the database is
# frozen), which is how a kill is confirmed to have landed where it was aimed.
MOMENTS = {
    # Attempts of a round later than the last committed one are journaled, not yet committed.
    "mid-round": "SELECT 1 FROM messages, runs WHERE provisional AND type = 'AttemptGraded' "
    "AND messages.round > runs.last_round",
    # A training has started (its TrainingStarted is journaled) and has not been recorded.
    "mid-training": "SELECT 1 FROM messages WHERE provisional AND type = 'TrainingStarted'",
    # The newest event is a recorded training's AdapterLoaded: the adapter is being loaded into
    # the engine (or probed), and the next round has not started.
    "between record and load": "SELECT 1 FROM messages WHERE id = (SELECT max(id) FROM messages) "
    "AND NOT provisional AND type = 'AdapterLoaded'",
    # The resumed process has taken the run over (its pid is recorded) and has journaled nothing
    # yet: it is deleting what the last process left, restoring state and reloading the adapter.
    # (Message ids are never reused, so an event journaled by this process has an id past `before`.)
    "mid-resume": "SELECT 1 FROM runs WHERE pid = :pid "
    "AND (SELECT coalesce(max(id), 0) FROM messages) <= :before",
}
# The order kills are aimed in: a round, the training after it, its adapter's load, with a kill
# while resuming between each, so every resume starts from a different kind of wreck.
AIMS = ["mid-round", "mid-resume", "mid-training", "mid-resume", "between record and load", "mid-resume"]


def _holds(run_dir: Path, moment: str, pid: int, before: int) -> bool:
    db = run_dir / "coevo.db"
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(MOMENTS[moment], {"pid": pid, "before": before}).fetchone() is not None
    except sqlite3.OperationalError:
        return False  # tables not created yet


def _newest_message(run_dir: Path) -> int:
    if not (run_dir / "coevo.db").exists():
        return 0
    with sqlite3.connect(run_dir / "coevo.db", timeout=5) as conn:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])


@pytest.mark.slow
def test_kill_9_at_named_moments_with_training_matches_uninterrupted_run(
    tiny_model: str, tmp_path: Path
) -> None:
    """At least 20 kills, each aimed at a named moment by watching the journal and confirmed to
    have landed there (mid-round, mid-training, between a training's record and its adapter's
    load, mid-resume; each at least 3 times); after resuming to the end, every table (events
    included) equals an uninterrupted run's, row for row, and no scratch folder is left."""
    rounds, delay = 5, 0.1
    reference = tmp_path / "reference"
    proc = spawn(reference, resume=False, delay=delay, model=tiny_model, rounds=rounds)
    assert proc.wait(timeout=600) == 0

    run = tmp_path / "killed"
    landed: Counter[str] = Counter()
    kills = 0
    aims = itertools.cycle(AIMS)
    resuming = False
    while kills < 20 or min(landed[m] for m in MOMENTS) < 3:
        aim = next(aims)
        if aim == "mid-resume" and not resuming:
            continue
        before = _newest_message(run)
        proc = spawn(run, resume=resuming, delay=delay, model=tiny_model, rounds=rounds)
        resuming = True
        deadline = time.monotonic() + 300
        while not _holds(run, aim, proc.pid, before) and proc.poll() is None:
            assert time.monotonic() < deadline, f"{aim} never came"
            time.sleep(0.005)
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before {aim}; kills so far {dict(landed)}")
        _kill(proc)
        kills += 1
        landed[aim] += _holds(run, aim, proc.pid, before)
    print(f"{kills} kills, landed: {dict(landed)}")
    assert kills >= 20 and all(landed[m] >= 3 for m in MOMENTS), landed
    proc = spawn(run, resume=True, delay=delay, model=tiny_model, rounds=rounds)
    assert proc.wait(timeout=600) == 0

    _same_records(run, reference)
    adapters = sorted(p.name for p in (run / "adapters" / "solver").iterdir())
    assert adapters == [f"v{v}" for v in range(1, rounds + 1)], adapters  # no scratch or unrecorded folders
