"""Builders shared by the memory tests: a run, and a round with events, problems and attempts."""

from __future__ import annotations

from typing import Any

from coevo.memory.batch import RoundBatch
from coevo.memory.store import Store
from coevo.messages import AttemptGraded, RoundStarted
from coevo.tasks.problem import Problem, Provenance

AGENTS: list[dict[str, Any]] = [
    {"name": "teacher", "role": "teacher", "engine": "main", "model": "builtin:smollm2-135m-instruct"},
    {"name": "solver", "role": "solver", "engine": "main", "trainable": True},
]


def new_run(store: Store, name: str = "test run") -> str:
    return store.create_run(name=name, config_json='{"seed": 7}', seed=7, agents=AGENTS)


def problem(index: int) -> Problem:
    return Problem(
        id=f"p{index}",
        question=f"What is {index} + 1?",
        answer=str(index + 1),
        skills=["addition"],
        difficulty={"digits": 1.0},
        provenance=Provenance(source="procedural", author="procedural:v1", details={"a": index}),
    )


def fill_round(batch: RoundBatch, problems: int = 3, attempts: int = 2) -> RoundBatch:
    """A round of `problems` problems with `attempts` graded attempts each (every even one right)."""
    batch.add_event(
        RoundStarted(run_id=batch.run_id, round=batch.round, sender="scheduler", episodes=problems)
    )
    for p in range(problems):
        batch.add_problem(problem(p + 100 * batch.round), batch.round, in_curriculum=True)
        for a in range(attempts):
            correct = a % 2 == 0
            batch.add_event(
                AttemptGraded(
                    run_id=batch.run_id,
                    round=batch.round,
                    episode=p,
                    sender="verifier",
                    recipients=["teacher"],
                    problem_id=f"p{p}",
                    attempt_index=a,
                    extracted_answer="1",
                    correct=correct,
                    reward=float(correct),
                )
            )
            batch.add_attempt(
                problem_id=f"p{p + 100 * batch.round}",
                agent="solver",
                policy_version="base",
                attempt_index=a,
                response="The answer is 1.",
                extracted_answer="1",
                correct=correct,
                reward=float(correct),
                finish_reason="stop",
                completion_tokens=5,
            )
    batch.add_skill_profile(
        agent="solver", skill="addition", attempts=problems * attempts, correct=problems, missing=0.5
    )
    batch.set_state("teacher:alp", {"round": batch.round, "arms": [1.0, 2.5]})
    return batch


def commit_rounds(store: Store, run_id: str, rounds: int, **sizes: int) -> None:
    for r in range(rounds):
        store.commit_round(fill_round(store.round_batch(run_id, r), **sizes))
