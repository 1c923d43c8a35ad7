"""Edge conditions of the role graph: named predicates over the outcome of an episode.

A graph edge with `when: learning_zone` is taken only when the predicate holds for the
episode's k attempts. The zones follow Socratic-Zero: success rate 1 is mastered, 0 is too
hard, anything between is the learning zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coevo.society.config_errors import one_of


@dataclass(frozen=True)
class EpisodeOutcome:
    success_rate: float  # correct / attempts; 0 when there were no attempts
    attempts: int
    correct: int


Predicate = Callable[[EpisodeOutcome], bool]

PREDICATES: dict[str, Predicate] = {
    "always": lambda o: True,
    "has_failures": lambda o: o.correct < o.attempts,
    "any_correct": lambda o: o.correct > 0,
    "learning_zone": lambda o: 0.0 < o.success_rate < 1.0,
    "mastered": lambda o: o.attempts > 0 and o.success_rate >= 1.0,
    "too_hard": lambda o: o.success_rate <= 0.0,
}

# `when: always` is the same as no condition: it never stops a cycle.
UNCONDITIONAL = "always"


class UnknownPredicateError(ValueError):
    pass


def predicate(name: str) -> Predicate:
    try:
        return PREDICATES[name]
    except KeyError:
        raise UnknownPredicateError(f"unknown predicate '{name}'{one_of(name, PREDICATES)}") from None
