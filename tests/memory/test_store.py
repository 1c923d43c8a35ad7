"""The store's contract, run against SQLite and a real PostgreSQL server alike."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session as OrmSession

from coevo import messages as ev
from coevo.memory import store as store_module
from coevo.memory.errors import SchemaVersionError, StoreError
from coevo.memory.store import RoundSummary, Store
from coevo.memory.tables import SCHEMA_VERSION
from tests.memory.helpers import AGENTS, commit_rounds, fill_round, new_run, problem


def test_run_lifecycle(store: Store) -> None:
    run_id = new_run(store, "My Run!")
    assert run_id.startswith("my-run-")
    run = store.get_run(run_id)
    assert run is not None
    assert (run.name, run.seed, run.status, run.last_round) == ("My Run!", 7, "running", -1)
    assert [a.name for a in store.agents(run_id)] == ["solver", "teacher"]
    assert store.agents(run_id)[0].trainable
    store.set_status(run_id, "finished")
    assert store.get_run(run_id).status == "finished"  # type: ignore[union-attr]
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.get_run("nope") is None
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("x", "{}", 1, AGENTS, run_id=run_id)
    with pytest.raises(StoreError, match="unknown run status"):
        store.set_status(run_id, "paused")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.last_committed_round("nope")
    with pytest.raises(StoreError, match="lacks 'role'"):
        store.create_run("x", "{}", 1, [{"name": "a", "engine": "e"}])


def test_round_commit_and_reads(store: Store) -> None:
    run_id = new_run(store)
    commit_rounds(store, run_id, 2)
    assert store.last_committed_round(run_id) == 1
    assert len(store.events(run_id)) == 2 * (1 + 3 * 2)
    graded = store.events(run_id, types=["AttemptGraded"])
    assert len(graded) == 12 and all(isinstance(e, ev.AttemptGraded) for e in graded)
    records = store.event_records(run_id)
    ids = [i for i, _, _ in records]
    assert ids == sorted(ids)
    assert [e.type for _, _, e in store.event_records(run_id, after_id=ids[6])] == [
        e.type for _, _, e in records[7:]
    ]
    assert len(store.attempts(run_id)) == 12
    assert len(store.attempts(run_id, rounds=[1], agent="solver")) == 6
    assert store.attempts(run_id, agent="teacher") == []
    assert len(store.problems(run_id)) == 6
    stored = store.problem(run_id, "p101")
    assert stored is not None and stored.round_created == 1
    assert stored.to_problem() == problem(101)
    profile = store.skill_profile(run_id, "solver")
    assert [(p.round, p.skill, p.attempts, p.correct, p.missing) for p in profile] == [
        (1, "addition", 6, 3, 0.5)
    ]
    assert store.skill_profile(run_id, "solver", round=0)[0].round == 0
    assert store.skill_profile(run_id, "teacher") == []
    assert store.get_state(run_id, "teacher:alp") == {"round": 1, "arms": [1.0, 2.5]}
    assert store.get_state(run_id, "missing") is None
    assert store.rounds_summary(run_id) == [RoundSummary(0, 6, 3, 0.5), RoundSummary(1, 6, 3, 0.5)]


def _one_of_each_event() -> list[ev.EventBase]:
    common: dict[str, Any] = {
        "run_id": "r",
        "round": 3,
        "episode": 1,
        "sender": "teacher",
        "recipients": ["solver", "coach"],
        "policy_version": "v2",
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "usage": ev.Usage(prompt_tokens=11, completion_tokens=22),
    }
    return [
        ev.ProblemPosed(**common, problem_id="p", question="1+1?", skills=["add"], difficulty={"d": 1.5}),
        ev.SolutionSubmitted(**common, problem_id="p", attempt_index=2, response="2", finish_reason="length"),
        ev.AttemptGraded(
            **common,
            problem_id="p",
            attempt_index=0,
            extracted_answer=None,
            correct=False,
            reward=-0.5,
            failure="no number",
        ),
        ev.ProblemRefined(
            **common,
            parent_problem_id="p",
            problem_id="q",
            question="2+2?",
            answer="4",
            success_rate=0.25,
            zone="learning",
        ),
        ev.Demonstration(
            **common,
            source_problem_id="p",
            failed_response="3",
            target_problem_id="q",
            target_question="2+2?",
        ),
        ev.ProblemProposed(
            **common, source_problem_id="p", problem_id="g", question="1+1?", answer="2", raw="r"
        ),
        ev.ProposalReviewed(**common, proposal_id="x", problem_id="g", accepted=True, reason="computed"),
        ev.Explanation(
            **common,
            problem_id="p",
            rationale="because ∑ — ünïcode",
            answer="2",
            exam=[ev.ExamItem(problem_id="a", question="1+2?")],
        ),
        ev.ExplanationScored(
            **common, explanation_id="e1", problem_id="p", correct=True, lbt_score=0.5, score=0.75, students=3
        ),
        ev.ExamResult(
            **common,
            explanation_id="e1",
            problem_id="p",
            exam_problem_ids=["a", "b"],
            correct=1,
            total=2,
        ),
        ev.CoachReport(
            **common,
            transcript_ids=["t1", "t2"],
            scores={"clarity": 0.5},
            highlights=["h"],
            missed=["m"],
            suggestions=["s"],
            raw="{}",
            parse_error="bad json",
        ),
        ev.RoundStarted(**common, episodes=4),
        ev.EvalFinished(
            **common, agent="solver", policy="v1", dataset="d", n=10, accuracy=0.5, ci_low=0.2, ci_high=0.8
        ),
        ev.RoundFinished(
            **common, attempts=8, correct=3, accuracy=0.375, per_skill={"add": 0.5}, tokens=99, seconds=1.5
        ),
        ev.TrainingStarted(**common, trainer="socratic_solver_dpo", agent="solver", examples=32),
        ev.TrainingStep(
            **common,
            trainer="socratic_solver_dpo",
            agent="solver",
            step=3,
            max_steps=15,
            metrics={"loss": 0.7},
        ),
        ev.TrainingFinished(
            **common,
            trainer="socratic_solver_dpo",
            agent="solver",
            ok=False,
            new_version=None,
            metrics={"loss": 0.25},
            error="boom",
        ),
        ev.AdapterLoaded(**common, agent="solver", version="v3", path="/runs/a/adapters/solver/v3"),
        ev.RunFinished(**common, rounds=5, summary={"accuracy": [0.1, 0.2], "nested": {"k": None}}),
    ]


def test_every_event_type_round_trips(store: Store) -> None:
    originals = _one_of_each_event()
    union = typing.get_args(typing.get_args(ev.Event)[0])
    assert {type(e) for e in originals} == set(union), "add an example for each new event type"
    run_id = new_run(store)
    batch = store.round_batch(run_id, 0)
    for original in originals:
        batch.add_event(original)  # type: ignore[arg-type]
    store.commit_round(batch)
    assert store.events(run_id) == originals
    assert [e.type for e in store.events(run_id, types={"CoachReport", "RunFinished"})] == [
        "CoachReport",
        "RunFinished",
    ]


def test_error_while_building_a_round_stores_nothing(store: Store) -> None:
    run_id = new_run(store)
    commit_rounds(store, run_id, 1)

    def broken_round() -> None:
        batch = fill_round(store.round_batch(run_id, 1))
        raise RuntimeError(f"episode crashed with {len(batch.attempts)} attempts collected")

    with pytest.raises(RuntimeError):
        broken_round()
    batch = store.round_batch(run_id, 1)
    with pytest.raises(StoreError, match="not JSON-serializable"):
        batch.set_state("rng", {"state": object()})
    assert store.last_committed_round(run_id) == 0
    assert store.rounds_summary(run_id) == [RoundSummary(0, 6, 3, 0.5)]


@pytest.mark.parametrize("where", ["after_messages", "before_commit"])
def test_failure_mid_commit_rolls_back_the_whole_round(
    store: Store, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    run_id = new_run(store)
    commit_rounds(store, run_id, 1)
    before = (len(store.events(run_id)), len(store.attempts(run_id)), len(store.problems(run_id)))

    def fail(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    if where == "after_messages":  # messages are already inserted when problems are written
        monkeypatch.setattr(store_module, "_write_problems", fail)
    else:  # everything is written, the transaction is about to commit
        event.listen(OrmSession, "before_commit", fail)
    try:
        with pytest.raises(RuntimeError, match="disk on fire"):
            store.commit_round(fill_round(store.round_batch(run_id, 1)))
    finally:
        monkeypatch.undo()
        if where == "before_commit":
            event.remove(OrmSession, "before_commit", fail)
    assert store.last_committed_round(run_id) == 0
    assert (len(store.events(run_id)), len(store.attempts(run_id)), len(store.problems(run_id))) == before
    assert store.get_state(run_id, "teacher:alp") == {"round": 0, "arms": [1.0, 2.5]}
    assert store.problem(run_id, "p100") is None
    store.commit_round(fill_round(store.round_batch(run_id, 1)))  # the round can be redone
    assert store.last_committed_round(run_id) == 1


def test_a_round_commits_once(store: Store) -> None:
    run_id = new_run(store)
    commit_rounds(store, run_id, 2)
    with pytest.raises(StoreError, match="not after the last committed round"):
        store.commit_round(fill_round(store.round_batch(run_id, 1)))
    with pytest.raises(StoreError, match="no run"):
        store.commit_round(store.round_batch("nope", 0))


async def test_commit_round_async_leaves_the_loop_free(store: Store) -> None:
    run_id = new_run(store)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await store.commit_round_async(fill_round(store.round_batch(run_id, 0), problems=200, attempts=8))
    task.cancel()
    assert ticks > 1
    assert store.last_committed_round(run_id) == 0
    assert len(store.attempts(run_id)) == 1600


def test_curriculum_flags_update_stored_problems(store: Store) -> None:
    run_id = new_run(store)
    batch = store.round_batch(run_id, 0)
    batch.add_problem(problem(1), 0, in_curriculum=False)
    batch.add_problem(problem(2), 0, in_curriculum=True)
    batch.add_problem(problem(2), 0, in_curriculum=False)  # seen twice: stored once, last flag wins
    store.commit_round(batch)
    batch = store.round_batch(run_id, 1)
    batch.add_problem(problem(1), 1, in_curriculum=True)  # posed again in a later round
    batch.set_curriculum("p2", True)
    store.commit_round(batch)
    rows = store.problems(run_id)
    assert [(r.problem_id, r.round_created, r.in_curriculum) for r in rows] == [
        ("p1", 0, True),
        ("p2", 0, True),
    ]
    assert [r.problem_id for r in store.problems(run_id, in_curriculum=False)] == []
    batch = store.round_batch(run_id, 2)
    batch.set_curriculum("never-stored", True)
    with pytest.raises(StoreError, match="never stored"):
        store.commit_round(batch)
    assert store.last_committed_round(run_id) == 1


def test_discard_after_drops_rows_past_a_round(store: Store) -> None:
    run_id = new_run(store)
    commit_rounds(store, run_id, 3)
    store.discard_after(run_id, 1)
    assert store.last_committed_round(run_id) == 1
    assert {a.round for a in store.attempts(run_id)} == {0, 1}
    assert {e.round for e in store.events(run_id)} == {0, 1}
    assert store.problem(run_id, "p200") is None and store.problem(run_id, "p100") is not None
    assert store.skill_profile(run_id, "solver")[0].round == 1
    # The state was last written by round 2, so it is gone with it; round 2 can run again.
    assert store.get_state(run_id, "teacher:alp") is None
    store.commit_round(fill_round(store.round_batch(run_id, 2)))
    assert store.rounds_summary(run_id)[-1] == RoundSummary(2, 6, 3, 0.5)


def test_events_journaled_after_a_resume_get_ids_a_follower_has_not_passed(store: Store) -> None:
    from coevo.memory.batch import event_row
    from coevo.memory.journal import EventCursor

    run_id = new_run(store)
    commit_rounds(store, run_id, 1)
    killed = [ev.RoundStarted(run_id=run_id, round=1, sender="scheduler", episodes=3) for _ in range(3)]
    store.append_events(run_id, [event_row(run_id, e, provisional=True) for e in killed])
    follower = EventCursor(store, run_id)
    seen = follower.poll()
    store.discard_after(run_id, 0)  # the resume deletes the killed round's provisional events
    again = ev.RoundStarted(run_id=run_id, round=1, sender="scheduler", episodes=3)
    store.append_events(run_id, [event_row(run_id, again, provisional=True)])
    # The re-run round's event comes after everything the follower saw (ids are never reused).
    assert [e.event.id for e in follower.poll()] == [again.id]
    assert seen[-1].row_id < store.event_records(run_id, 0, None, 100)[-1][0]


def test_policy_versions(store: Store) -> None:
    run_id = new_run(store)
    assert store.latest_policy(run_id, "solver") is None
    store.add_policy_version(run_id, "solver", 0)
    store.add_policy_version(
        run_id, "solver", 2, adapter_path="/a/v2", trainer="dpo", created_round=5, metrics={"loss": 0.1}
    )
    store.add_policy_version(run_id, "solver", 1, adapter_path="/a/v1", trainer="dpo", created_round=2)
    store.add_policy_version(run_id, "teacher", 0)
    latest = store.latest_policy(run_id, "solver")
    assert latest is not None
    assert (latest.version, latest.adapter_path, latest.created_round, latest.metrics_json) == (
        2,
        "/a/v2",
        5,
        {"loss": 0.1},
    )
    assert [p.version for p in store.policy_versions(run_id, "solver")] == [0, 1, 2]
    with pytest.raises(StoreError, match="already exists"):
        store.add_policy_version(run_id, "solver", 1)
    with pytest.raises(StoreError, match="no run"):
        store.add_policy_version("nope", "solver", 0)


def test_training_and_eval_records(store: Store) -> None:
    run_id = new_run(store)
    store.record_training(run_id, "solver", "dpo", 3, 0, False, error="no pairs", examples=0)
    store.record_training(
        run_id,
        "solver",
        "dpo",
        6,
        0,
        True,
        to_version=1,
        examples=40,
        metrics={"loss": 0.3},
        adapter_path="/a",
    )
    runs = store.training_runs(run_id, "solver")
    assert [(t.round, t.ok, t.to_version, t.error) for t in runs] == [
        (3, False, None, "no pairs"),
        (6, True, 1, None),
    ]
    store.record_eval("solver", "v1", "gsm8k", 50, 20, 0.27, 0.54, run_id=run_id, per_skill={"add": 0.5})
    store.record_eval("solver", "base", "gsm8k", 0, 0, 0.0, 0.0)
    assert [e.accuracy for e in store.evals(run_id)] == [0.4]
    assert [e.run for e in store.evals()] == [run_id, None]
    with pytest.raises(StoreError, match="no run"):
        store.record_training("nope", "solver", "dpo", 0, 0, True)


def test_schema_version_mismatch_is_refused(db_url: str) -> None:
    Store(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET schema_version = 999"))
    engine.dispose()
    with pytest.raises(
        SchemaVersionError, match=f"schema version 999, this coevo uses version {SCHEMA_VERSION}"
    ):
        Store(db_url)


def test_two_stores_share_one_database(db_url: str) -> None:
    writer, reader = Store(db_url), Store(db_url)
    run_id = new_run(writer)
    commit_rounds(writer, run_id, 1)
    assert reader.last_committed_round(run_id) == 0
    assert len(reader.attempts(run_id)) == 6
    writer.close()
    reader.close()


def test_curriculum_history_answers_what_the_curriculum_was_at_each_round(store: Store) -> None:
    run_id = new_run(store)
    batch = store.round_batch(run_id, 0)
    batch.add_problem(problem(1), 0, in_curriculum=True)
    batch.add_problem(problem(2), 0, in_curriculum=False)
    batch.add_attempt(
        problem_id="p1",
        agent="solver",
        policy_version="base",
        attempt_index=0,
        response="x",
        extracted_answer=None,
        correct=True,
        reward=1.0,
    )
    store.commit_round(batch)
    batch = store.round_batch(run_id, 1)
    batch.set_curriculum("p1", False)
    batch.add_problem(problem(2), 1, in_curriculum=True)
    store.commit_round(batch)
    assert store.curriculum_as_of(run_id, 0) == ["p1"]
    assert store.curriculum_as_of(run_id, 1) == ["p2"]
    first = [r for r in store.curriculum_history(run_id) if r.round == 0 and r.problem_id == "p1"]
    assert [(r.attempts, r.correct) for r in first] == [(1, 1)]
    store.discard_after(run_id, 0)  # a resumed run forgets the rolled-back round's history too
    assert store.curriculum_as_of(run_id, 5) == ["p1"]


OPENER_SCRIPT = """
import sys, time
from coevo.memory.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store(sys.argv[1]).close()
"""


def test_processes_opening_a_new_database_at_once_all_succeed(db_url: str) -> None:
    # A follower (`coevo watch`, `coevo runs`) may open the database while the run is still
    # creating its tables: the schema is created in one locked write transaction, so none fails.
    root = Path(__file__).resolve().parents[2]
    start = time.time() + 2.0  # past every child's imports, so they open together
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER_SCRIPT, db_url, str(start)],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    errors = [child.communicate(timeout=120)[1] for child in children]
    assert [child.returncode for child in children] == [0] * len(children), errors


async def test_the_heartbeat_logs_its_first_failure_and_each_change(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from coevo.memory.journal import Heartbeat

    run_id = new_run(store)
    outcomes = iter(
        [
            OSError("disk full"),
            OSError("disk full"),
            OSError("database is locked"),
            None,
            OSError("disk full"),
        ]
    )

    def beat(_: str) -> None:
        outcome = next(outcomes, None)  # then every beat succeeds
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(store, "heartbeat", beat)
    with caplog.at_level(logging.WARNING, logger="coevo.memory.journal"):
        async with Heartbeat(store, run_id, every=0.01):
            await asyncio.sleep(0.3)
    messages = [r.getMessage() for r in caplog.records]
    # A failure that repeats itself is not logged again, nor is each success.
    assert messages == [
        "the run's heartbeat failed; it keeps trying",
        "the run's heartbeat fails differently now: OSError: database is locked",
        "the run's heartbeat works again (it failed with OSError: database is locked)",
        "the run's heartbeat failed; it keeps trying",
        "the run's heartbeat works again (it failed with OSError: disk full)",
    ]
    assert caplog.records[0].exc_info is not None  # the first failure comes with its traceback
