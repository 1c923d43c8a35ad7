"""Ungraded is its own outcome: a society whose grader is flooded with answers that stall it past the
time limit stores each of them as ungraded with its cause, counts them per round apart from the
accuracy, and never lets one reach a trainer's rows (DPO rejected or chosen, SFT completions) or a
KTO export.

The stalling comes from `_flood_grade`, a grader the Verifier's workers import from this module (a
hook in the parent process would not reach them): every answer carrying SLOW stalls it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from coevo.engines.base import ChatMessage, SamplingParams
from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.messages import AttemptGraded, RoundFinished
from coevo.society.checker import replay_responder
from coevo.society.session import run_id_for, run_society
from coevo.tasks.answers import Grade, grade
from coevo.tasks.verifier import Verifier
from coevo.trainers.datasets import RowRequest, training_rng
from coevo.trainers.registry import TRAINERS
from tests.export.conftest import export
from tests.society.replay_society import replay_config

SLOW = "[SLOW]"
# Far above a normal grade (milliseconds) even on a loaded machine: only the stalled ones time out.
TIMEOUT_S = 2.0


def _flood_grade(response: str, reference: str, question: str | None) -> Grade:
    """`grade`, except that an answer marked SLOW stalls the worker until it is killed."""
    if SLOW in response:
        time.sleep(3600)
    return grade(response, reference, question)


def _flooding(
    messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None, index: int, seed: int | None
) -> str:
    """The replay society's answers, a third of them marked SLOW (right and wrong ones alike)."""
    text = replay_responder(messages, params, adapter, index, seed)
    if random.Random(f"{seed}:{index}").random() < 1 / 3:
        return f"{text} {SLOW}"
    return text


def test_a_flooded_grader_leaves_attempts_ungraded_and_out_of_every_training_row(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = replay_config(["schedule.rounds=2", "schedule.success_band=[0.0, 1.0]"])

    async def run() -> None:
        async with Verifier(workers=2, timeout_s=TIMEOUT_S, grader=_flood_grade) as verifier:
            engines = {"local": ReplayEngine(_flooding)}
            await run_society(config, run_dir, resume=False, engines=engines, grader=verifier)

    asyncio.run(run())
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    attempts = [a for batch in store.iter_attempts(run_id) for a in batch]
    slow = [a for a in attempts if SLOW in a.response]
    assert slow and len(slow) < len(attempts)
    # Each slow answer is stored as ungraded, with its cause; every other one got a verdict.
    assert all(not a.graded and a.failure == "timeout" for a in slow)
    assert all(a.detail == f"the grade ran past its {TIMEOUT_S:g} s limit" for a in slow)
    assert all(a.graded for a in attempts if SLOW not in a.response)
    events = [e for batch in store.iter_events(run_id) for e in batch]
    grades = [e for e in events if isinstance(e, AttemptGraded)]
    assert sum(not g.graded for g in grades) == len(slow)
    # Per round: accuracy over the graded attempts, the ungraded ones counted beside it.
    for finished in (e for e in events if isinstance(e, RoundFinished)):
        mine = [a for a in attempts if a.round == finished.round]
        graded = [a for a in mine if a.graded]
        assert finished.ungraded == len(mine) - len(graded) > 0
        assert (finished.attempts, finished.correct) == (len(graded), sum(a.correct for a in graded))
    # Each one is in the run's log, with its cause.
    logged = (run_dir / "coevo.log").read_text()
    assert logged.count("WARNING coevo.tasks.verifier: an attempt is ungraded (timeout)") == len(slow)
    # The curriculum's counts hold verdicts only.
    history = store.curriculum_history(run_id)
    assert sum(row.attempts for row in history) == sum(a.graded for a in attempts)

    # No ungraded answer reaches a trainer's rows, nor a KTO export.
    rows: list[dict[str, object]] = []
    for kind in ("socratic_solver_dpo", "sft"):
        trainer = TRAINERS[kind]
        settings = trainer.config_class(max_pairs_per_problem=8) if kind == "socratic_solver_dpo" else None
        settings = settings or trainer.config_class()
        request = RowRequest(store, run_id, "solver", range(0, 2), training_rng(0, kind, 1))
        built = trainer.rows(request, settings)
        assert built, kind
        rows += built
    out = tmp_path / "kto"
    assert (
        export(
            "--run",
            str(run_dir),
            "--kind",
            "kto",
            "--format",
            "jsonl",
            "--keep-duplicates",
            "--out",
            str(out),
        )
        == 0
    )
    kto = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert kto and {row["label"] for row in kto} == {True, False}
    assert SLOW not in json.dumps(rows) and SLOW not in json.dumps(kto)
    assert len(kto) == sum(a.graded for a in attempts)
    store.close()


def test_progress_reports_ungraded_attempts_beside_the_accuracy() -> None:
    from rich.console import Console

    from coevo.messages import RoundStarted
    from coevo.society.progress import RunProgress

    console = Console(record=True, width=200, force_terminal=False)
    right = AttemptGraded(problem_id="p", attempt_index=0, extracted_answer="4", correct=True, reward=1.0)
    lost = AttemptGraded(
        problem_id="p", attempt_index=1, extracted_answer=None, correct=False, reward=0.0, graded=False
    )
    with RunProgress(1, console=console) as progress:
        for event in (RoundStarted(episodes=1), right, lost):
            progress(event)
        progress(RoundFinished(attempts=1, correct=1, accuracy=1.0, ungraded=1, tokens=5, seconds=1.0))
        info = progress.progress.tasks[0].fields["info"]
    assert "round 0: accuracy 100.0% (1/1), 1 ungraded, 5 tokens" in console.export_text()
    assert info.startswith("last acc 100.0% | overall 100.0% | 1 ungraded")
