"""One Socratic episode: the Teacher poses a problem, the Solver attempts it k times, each
attempt is graded, and — where the role graph says so — the Teacher refines the problem and
shows the refinement to the Generator.

An episode only produces data (events, attempts, a refined problem); the round collects the
data of all its episodes and commits them at once, so a kill leaves a round whole or absent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from coevo.agents.solver import Attempt, Solver
from coevo.agents.teacher import Zone, zone
from coevo.society.events import (
    AttemptGraded,
    Demonstration,
    Event,
    ProblemPosed,
    ProblemRefined,
    SolutionSubmitted,
    Usage,
)
from coevo.society.predicates import EpisodeOutcome, predicate
from coevo.tasks.problem import Problem


class Refiner(Protocol):
    name: str

    async def refine(
        self, problem: Problem, success_rate: float, failed_response: str | None, rng: random.Random
    ) -> Problem | None: ...


@dataclass(frozen=True)
class EpisodePlan:
    """What the role graph asks of an episode, resolved once per run from the config."""

    teacher: str
    solver: str
    attempts: int
    refine_when: str | None  # predicate name on the Teacher → Solver ProblemRefined edge; None = no edge
    generator: str | None  # recipient of Demonstration events, if the graph has that edge


@dataclass
class EpisodeResult:
    index: int
    problem: Problem
    attempts: list[Attempt]
    success_rate: float
    zone: Zone
    refined: Problem | None
    events: list[Event] = field(default_factory=list)
    tokens: int = 0


async def run_episode(
    plan: EpisodePlan,
    teacher: Refiner,
    solver: Solver,
    problem: Problem,
    *,
    run_id: str,
    round_index: int,
    index: int,
    seed: int,
) -> EpisodeResult:
    rng = random.Random(seed)
    common: dict[str, Any] = {"run_id": run_id, "round": round_index, "episode": index}
    events: list[Event] = [
        ProblemPosed(
            **common,
            sender=plan.teacher,
            recipients=[plan.solver],
            policy_version="procedural",
            problem_id=problem.id,
            question=problem.question,
            skills=problem.skills,
            difficulty=problem.difficulty,
        )
    ]
    attempts, prompt_tokens, completion_tokens = await solver.attempt(problem, plan.attempts, seed)
    version = solver.policy.label
    for attempt in attempts:
        events.append(
            SolutionSubmitted(
                **common,
                sender=plan.solver,
                recipients=[plan.teacher],
                policy_version=version,
                problem_id=problem.id,
                attempt_index=attempt.index,
                response=attempt.completion.text,
                finish_reason=attempt.completion.finish_reason,
                usage=Usage(completion_tokens=len(attempt.completion.token_ids)),
            )
        )
        events.append(
            AttemptGraded(
                **common,
                sender=plan.teacher,
                recipients=[plan.solver],
                problem_id=problem.id,
                attempt_index=attempt.index,
                extracted_answer=attempt.grade.extracted,
                correct=attempt.grade.correct,
                reward=attempt.grade.reward,
                failure=attempt.grade.failure,
            )
        )
    correct = sum(a.grade.correct for a in attempts)
    success = correct / len(attempts) if attempts else 0.0
    outcome = EpisodeOutcome(success_rate=success, attempts=len(attempts), correct=correct)
    refined: Problem | None = None
    if plan.refine_when is not None and predicate(plan.refine_when)(outcome):
        failed = next((a.completion.text for a in attempts if not a.grade.correct), None)
        refined = await teacher.refine(problem, success, failed, rng)
        if refined is not None:
            events.append(
                ProblemRefined(
                    **common,
                    sender=plan.teacher,
                    recipients=[plan.solver],
                    parent_problem_id=problem.id,
                    problem_id=refined.id,
                    question=refined.question,
                    answer=refined.answer,
                    success_rate=success,
                    zone=zone(success),
                )
            )
            if plan.generator is not None and failed is not None:
                events.append(
                    Demonstration(
                        **common,
                        sender=plan.teacher,
                        recipients=[plan.generator],
                        source_problem_id=problem.id,
                        failed_response=failed,
                        target_problem_id=refined.id,
                        target_question=refined.question,
                    )
                )
    return EpisodeResult(
        index=index,
        problem=problem,
        attempts=attempts,
        success_rate=success,
        zone=zone(success),
        refined=refined,
        events=events,
        tokens=prompt_tokens + completion_tokens,
    )
