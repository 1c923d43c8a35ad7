"""Learning by Teaching (LbT, arXiv 2406.14629): the score of a Teacher's rationale and the
preference pairs its M2 trains on, as pure functions (no engine, no memory).

A rationale is judged twice: whether its own final answer is right, and how well Students taught
with it (the rationale as their worked example) answer exam problems like the one it explains —
the LbT score, their exam accuracy in [0, 1]. The paper's M2 ranks a problem's rationales by
`w * correctness + (1 - w) * LbT score` (w = 0.5) and trains the Teacher by DPO on pairs whose
scores differ by more than a gap; its ablation ranks by correctness alone (w = 1).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations


def explanation_score(correct: bool, lbt_score: float, weight: float) -> float:
    """`weight * correctness + (1 - weight) * LbT score`."""
    return weight * float(correct) + (1.0 - weight) * lbt_score


@dataclass(frozen=True)
class ScoredRationale:
    """One rationale as M2 reads it: the exact prompt the Teacher was given, the text it wrote,
    and the two halves of its score."""

    problem_id: str
    prompt: tuple[tuple[str, str], ...]  # (role, content) per chat message
    completion: str
    correct: bool
    lbt_score: float
    weight: float  # the w its Teacher scored it with

    def score(self, correctness_only: bool = False) -> float:
        return explanation_score(self.correct, self.lbt_score, 1.0 if correctness_only else self.weight)


def preference_pairs(
    rationales: Sequence[ScoredRationale],
    gap: float,
    max_per_problem: int,
    rng: random.Random,
    *,
    correctness_only: bool = False,
) -> list[tuple[ScoredRationale, ScoredRationale]]:
    """(chosen, rejected) pairs of rationales for the same problem and prompt whose scores differ
    by more than `gap`, at most `max_per_problem` per problem (drawn at random from all such pairs
    when there are more). Two rationales with the same text never pair (nothing to prefer).

    Differences are compared rounded to 9 places, so a difference of exactly the gap (0.8 - 0.5
    is 0.30000000000000004 in floats) is not "more than" it."""
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[ScoredRationale]] = {}
    for rationale in rationales:
        groups.setdefault((rationale.problem_id, rationale.prompt), []).append(rationale)
    by_problem: dict[str, list[tuple[ScoredRationale, ScoredRationale]]] = {}
    for group in groups.values():
        for a, b in combinations(group, 2):
            if a.completion == b.completion:
                continue
            difference = round(a.score(correctness_only) - b.score(correctness_only), 9)
            if abs(difference) > gap:
                pair = (a, b) if difference > 0 else (b, a)
                by_problem.setdefault(a.problem_id, []).append(pair)
    pairs: list[tuple[ScoredRationale, ScoredRationale]] = []
    for candidates in by_problem.values():
        if len(candidates) > max_per_problem:
            candidates = rng.sample(candidates, max_per_problem)
        pairs.extend(candidates)
    return pairs
