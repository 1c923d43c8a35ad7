"""SQLite specifics: WAL mode, a reader beside a writer, a writer killed with SIGKILL, bad URLs."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coevo.memory.errors import StoreError
from coevo.memory.store import Store
from tests.memory.helpers import commit_rounds, fill_round, new_run

PROBLEMS, ATTEMPTS = 20, 10  # 200 attempts and 201 events a round


def _assert_whole_rounds(store: Store, run_id: str, last: int) -> None:
    """Every round up to `last` is complete and nothing of a later round is visible."""
    counts: dict[int, int] = {}
    for attempt in store.attempts(run_id):
        counts[attempt.round] = counts.get(attempt.round, 0) + 1
    assert all(counts.get(r) == PROBLEMS * ATTEMPTS for r in range(last + 1)), counts
    assert all(r <= last for r in counts), counts


def test_wal_mode_is_on(tmp_path: Path) -> None:
    Store.for_run_dir(tmp_path / "run").close()
    with sqlite3.connect(tmp_path / "run" / "coevo.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_reader_sees_whole_rounds_while_a_writer_commits(tmp_path: Path) -> None:
    writer = Store.for_run_dir(tmp_path)
    reader = Store.for_run_dir(tmp_path)
    run_id = new_run(writer)
    rounds = 15
    failures: list[BaseException] = []

    def write() -> None:
        try:
            commit_rounds(writer, run_id, rounds, problems=PROBLEMS, attempts=ATTEMPTS)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    seen: set[int] = set()
    while thread.is_alive():
        last = reader.last_committed_round(run_id)
        seen.add(last)
        # Rows of later rounds may land between the two reads, so only check up to `last`.
        counts = [a.round for a in reader.attempts(run_id, rounds=range(last + 1))]
        assert len(counts) == (last + 1) * PROBLEMS * ATTEMPTS
    thread.join()
    assert not failures, failures
    assert reader.last_committed_round(run_id) == rounds - 1
    assert len(seen) > 1, "the reader never ran while the writer was committing"
    _assert_whole_rounds(reader, run_id, rounds - 1)
    writer.close()
    reader.close()


WRITER_SCRIPT = """
import sys
from pathlib import Path
from coevo.memory.store import Store
from tests.memory.helpers import commit_rounds, new_run

store = Store.for_run_dir(Path(sys.argv[1]))
run_id = new_run(store)
print(run_id, flush=True)
commit_rounds(store, run_id, 10_000, problems=int(sys.argv[2]), attempts=int(sys.argv[3]))
"""


def test_a_killed_writer_leaves_whole_rounds(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(tmp_path), str(PROBLEMS), str(ATTEMPTS)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        reader = Store.for_run_dir(tmp_path)
        deadline = time.monotonic() + 60
        while reader.last_committed_round(run_id) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.137)  # land somewhere inside a later round's commit, most likely
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    last = reader.last_committed_round(run_id)
    assert last >= 3
    _assert_whole_rounds(reader, run_id, last)
    events = reader.events(run_id)
    assert len(events) == (last + 1) * (1 + PROBLEMS * ATTEMPTS)
    reader.discard_after(run_id, last)  # what a resume does first: a no-op after an atomic commit
    _assert_whole_rounds(reader, run_id, last)
    reader.close()


STALLED_WRITER_SCRIPT = """
import sys, time
from pathlib import Path
from sqlalchemy import event
from sqlalchemy.orm import Session
from coevo.memory.store import Store
from tests.memory.helpers import commit_rounds, fill_round, new_run

store = Store.for_run_dir(Path(sys.argv[1]))
run_id = new_run(store)
commit_rounds(store, run_id, 2, problems=int(sys.argv[2]), attempts=int(sys.argv[3]))

def stall(session):
    print(run_id, flush=True)  # round 2's rows are written, its transaction not committed
    time.sleep(60)

event.listen(Session, "before_commit", stall)
sizes = {"problems": int(sys.argv[2]), "attempts": int(sys.argv[3])}
store.commit_round(fill_round(store.round_batch(run_id, 2), **sizes))
"""


def test_a_writer_killed_inside_the_commit_leaves_the_round_out(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", STALLED_WRITER_SCRIPT, str(tmp_path), str(PROBLEMS), str(ATTEMPTS)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    store = Store.for_run_dir(tmp_path)
    assert store.last_committed_round(run_id) == 1
    _assert_whole_rounds(store, run_id, 1)
    # The write lock died with the writer: round 2 commits now.
    store.commit_round(fill_round(store.round_batch(run_id, 2), problems=PROBLEMS, attempts=ATTEMPTS))
    _assert_whole_rounds(store, run_id, 2)
    store.close()


def test_bad_urls_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        Store("coevo.db")
    with pytest.raises(StoreError, match="cannot use memory URL"):
        Store("nosuchdb://x/y")
    with pytest.raises(StoreError, match="cannot open memory database"):
        Store(f"sqlite:///{tmp_path}/missing/dir/coevo.db")
    with pytest.raises(StoreError, match=r"cannot open memory database postgresql\+psycopg://u:\*\*\*@"):
        Store("postgresql://u:secret@127.0.0.1:1/coevo")


def test_in_memory_sqlite_works_across_threads() -> None:
    store = Store("sqlite://")
    run_id = new_run(store)
    thread = threading.Thread(target=commit_rounds, args=(store, run_id, 2))
    thread.start()
    thread.join()
    assert store.last_committed_round(run_id) == 1
