"""Following a run from another process: a society runs in a subprocess while this process reads
its events through the journal's cursor before the round commits (they are provisional), sees a
killed run as interrupted (in `coevo runs` too), and after a resume finds the provisional rows of
the killed round gone and the round run again."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from coevo.cli import main
from coevo.memory.journal import EventCursor, liveness
from coevo.memory.store import Store
from coevo.society.session import run_id_for
from tests.society.replay_society import spawn, wait_for


@pytest.mark.slow
def test_another_process_follows_a_running_society_before_its_round_commits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "runs" / "live"
    proc = spawn(run_dir, delay=0.15)
    try:
        wait_for(lambda: (run_dir / "coevo.db").exists(), 120, proc)
        run_id = run_id_for(run_dir)
        store = Store.for_run_dir(run_dir)
        wait_for(lambda: store.get_run(run_id) is not None, 60, proc)
        cursor = EventCursor(store, run_id)
        seen = []

        def some_answers_are_in() -> bool:
            seen.extend(cursor.poll())
            return any(e.event.type == "SolutionSubmitted" for e in seen)

        wait_for(some_answers_are_in, 120, proc)
        # Mid-round: the answers are journaled, provisional, and the round is not committed.
        assert store.last_committed_round(run_id) == -1
        first_round = [e for e in seen if e.event.round == 0]
        assert first_round and all(e.provisional for e in first_round)
        assert seen[0].event.type == "RoundStarted"
        assert liveness(store.get_run(run_id)) == "running"  # type: ignore[arg-type]
        assert store.events(run_id) == []  # the committed view holds none of it yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # Killed: the run says so, and `coevo runs` shows it with the command that resumes it.
    assert liveness(store.get_run(run_id)) == "interrupted"  # type: ignore[arg-type]
    assert main(["runs", "--root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "interrupted" in out and f"coevo run --resume {run_dir}" in out
    provisional_ids = {e.event.id for e in seen if e.provisional and e.event.round == 0}

    proc = spawn(run_dir, resume=True, delay=0.0)
    assert proc.wait(timeout=300) == 0
    rows = EventCursor(store, run_id).poll(limit=100_000)
    assert rows and not any(r.provisional for r in rows)
    assert liveness(store.get_run(run_id)) == "finished"  # type: ignore[arg-type]
    # The killed round's events were discarded and the round ran again, with the same ids.
    final_ids = [r.event.id for r in rows]
    assert len(final_ids) == len(set(final_ids))
    assert provisional_ids <= set(final_ids)
