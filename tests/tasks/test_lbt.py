"""Learning by Teaching's score and M2's pair builder on hand-made rationales: the weight, the gap
(strictly more than it, also where floats round 0.8 - 0.5 above 0.3), ties, the cap per problem,
and pairs only within one problem's prompt."""

from __future__ import annotations

import random

import pytest

from coevo.tasks.lbt import ScoredRationale, explanation_score, preference_pairs

PROMPT = (("system", "Explain."), ("user", "What is 2 + 3?"))


def rationale(
    text: str, correct: bool, lbt: float, *, weight: float = 0.5, problem: str = "p"
) -> ScoredRationale:
    return ScoredRationale(problem, PROMPT, text, correct, lbt, weight)


def texts(pairs: list[tuple[ScoredRationale, ScoredRationale]]) -> list[tuple[str, str]]:
    return [(chosen.completion, rejected.completion) for chosen, rejected in pairs]


def test_the_score_weighs_correctness_against_the_students_accuracy() -> None:
    assert explanation_score(True, 0.2, 0.5) == pytest.approx(0.6)
    assert explanation_score(False, 0.8, 0.5) == pytest.approx(0.4)
    assert explanation_score(False, 0.8, 1.0) == 0.0  # correctness only
    assert explanation_score(True, 0.0, 0.0) == 0.0  # LbT score only


def test_pairs_need_more_than_the_gap_and_put_the_higher_score_first() -> None:
    low, mid, high = rationale("low", False, 0.2), rationale("mid", False, 0.6), rationale("high", True, 0.6)
    # Scores 0.1, 0.3, 0.8: only (high, low) and (high, mid) differ by more than 0.3.
    pairs = preference_pairs([low, mid, high], 0.3, 8, random.Random(0))
    assert sorted(texts(pairs)) == [("high", "low"), ("high", "mid")]
    # 0.8 - 0.5 is 0.30000000000000004 in floats: exactly the gap, so no pair.
    exact = [rationale("a", True, 0.6), rationale("b", False, 1.0)]
    assert [a.score() - b.score() for a, b in [exact]] == [pytest.approx(0.3)]
    assert preference_pairs(exact, 0.3, 8, random.Random(0)) == []


def test_ties_and_identical_texts_make_no_pair() -> None:
    tied = [rationale("a", True, 0.4), rationale("b", True, 0.4)]
    assert preference_pairs(tied, 0.0, 8, random.Random(0)) == []
    same_text = [rationale("a", True, 1.0), rationale("a", False, 0.0)]
    assert preference_pairs(same_text, 0.3, 8, random.Random(0)) == []


def test_the_weight_is_each_rationale_s_own_and_correctness_only_overrides_it() -> None:
    # Right but unteachable against wrong but teachable: 0.5 vs 0.5 at w = 0.5 (no pair), the right
    # one preferred at w = 1 (the paper's ablation), the teachable one at w = 0.
    right, teachable = rationale("right", True, 0.0), rationale("teachable", False, 1.0)
    assert preference_pairs([right, teachable], 0.3, 8, random.Random(0)) == []
    only = preference_pairs([right, teachable], 0.3, 8, random.Random(0), correctness_only=True)
    assert texts(only) == [("right", "teachable")]
    lbt_only = [rationale("right", True, 0.0, weight=0.0), rationale("teachable", False, 1.0, weight=0.0)]
    assert texts(preference_pairs(lbt_only, 0.3, 8, random.Random(0))) == [("teachable", "right")]


def test_at_most_the_cap_per_problem_and_only_within_a_problem_s_prompt() -> None:
    # 5 right and 5 wrong rationales of one problem: 25 qualifying pairs, capped at 8, drawn at
    # random; another problem's rationales and another prompt's never pair with them.
    good = [rationale(f"good{i}", True, 1.0) for i in range(5)]
    bad = [rationale(f"bad{i}", False, 0.0) for i in range(5)]
    other_problem = [rationale("x", False, 0.0, problem="q")]
    other_prompt = [ScoredRationale("p", (("user", "Another prompt"),), "y", False, 0.0, 0.5)]
    pairs = preference_pairs([*good, *bad, *other_problem, *other_prompt], 0.3, 8, random.Random(0))
    assert len(pairs) == 8 and len(set(texts(pairs))) == 8
    assert all(c.completion.startswith("good") and r.completion.startswith("bad") for c, r in pairs)
    assert texts(pairs) != texts(preference_pairs([*good, *bad], 0.3, 8, random.Random(1)))
    assert len(preference_pairs([*good, *bad], 0.3, 30, random.Random(0))) == 25
