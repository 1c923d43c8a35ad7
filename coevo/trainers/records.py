"""Plain records the dataset builders take, and how training rows mix new and replayed data.

The society converts database rows into these dataclasses, so the builders stay pure functions
of plain data (easy to test, no database or model needed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class AttemptRec:
    """One graded Solver attempt at a problem."""

    problem_id: str
    question: str
    reference_answer: str
    reference_solution: str | None
    response: str
    correct: bool
    round: int
    skills: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DemoRec:
    """A Teacher refinement: the failed problem and attempt, the refined problem, and the updated
    Solver's success rate on the refined problem (the Generator's value weight is computed from it)."""

    source_question: str
    failed_response: str
    target_question: str
    target_answer: str
    target_success_rate: float


@dataclass(frozen=True)
class ProblemRec:
    """A problem with its reference answer, worked solution (when known) and skills."""

    problem_id: str
    question: str
    answer: str
    solution: str | None
    skills: list[str] = field(default_factory=list)


def with_replay(new: Sequence[T], old: Sequence[T], fraction: float, rng: random.Random) -> list[T]:
    """`new` plus a random sample of `old` so that the replayed rows are `fraction` of the result
    (Socratic-Zero replays 25% older problems), limited by how many old rows exist."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"replay fraction must be in [0, 1), got {fraction}")
    wanted = round(len(new) * fraction / (1.0 - fraction))
    replayed = rng.sample(list(old), min(wanted, len(old)))
    rows = [*new, *replayed]
    rng.shuffle(rows)
    return rows
