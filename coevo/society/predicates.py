"""Edge conditions of the role graph: named predicates over the outcome a message is about.

An edge with `when: learning_zone` delivers a message only when the predicate holds on the
`Outcome` its sender attached (e.g. the k graded attempts behind a refinement). A message sent
without an outcome passes only unconditional edges, so `coevo check` refuses a condition on a type
its sender's role does not send with one (`outcomes` in the role registry, which the router also
holds roles to). The zones follow Socratic-Zero: success
rate 1 is mastered, 0 is too hard, anything between is the learning zone.
"""

from __future__ import annotations

from collections.abc import Callable

from coevo.messages import Outcome
from coevo.society.config_errors import one_of

Predicate = Callable[[Outcome], bool]

PREDICATES: dict[str, Predicate] = {
    "always": lambda o: True,
    "has_failures": lambda o: o.correct < o.attempts,
    "any_correct": lambda o: o.correct > 0,
    "learning_zone": lambda o: 0.0 < o.success_rate < 1.0,
    "mastered": lambda o: o.attempts > 0 and o.success_rate >= 1.0,
    "too_hard": lambda o: o.attempts > 0 and o.success_rate <= 0.0,
}

PREDICATE_DOCS: dict[str, str] = {
    "always": "always (the same as no condition)",
    "has_failures": "some attempt behind the message failed",
    "any_correct": "some attempt behind the message succeeded",
    "learning_zone": "the success rate is strictly between 0 and 1 (Socratic-Zero's learning zone)",
    "mastered": "every attempt succeeded",
    "too_hard": "every attempt failed",
}

# `when: always` is the same as no condition.
UNCONDITIONAL = "always"


class UnknownPredicateError(ValueError):
    pass


def predicate(name: str) -> Predicate:
    try:
        return PREDICATES[name]
    except KeyError:
        raise UnknownPredicateError(f"unknown predicate '{name}'{one_of(name, PREDICATES)}") from None


def holds(name: str | None, outcome: Outcome | None) -> bool:
    """Whether an edge with condition `name` passes a message about `outcome`."""
    if name is None or name == UNCONDITIONAL:
        return True
    return outcome is not None and predicate(name)(outcome)
