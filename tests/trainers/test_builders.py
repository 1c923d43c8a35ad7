"""Dataset builders on hand-made records: DPO pairs, generator weights, STAT selection."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from coevo.tasks.prompts import solution_text
from coevo.trainers.records import AttemptRec, DemoRec, ProblemRec, with_replay
from coevo.trainers.socratic_generator_sft_trainer import build_generator_sft, generator_weight
from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs
from coevo.trainers.stat_sft_trainer import build_sft_rows, select_by_missing_skills, synthesize_for_skills


def attempt(pid: str, response: str, correct: bool, solution: str | None = "7 + 5 = 12.") -> AttemptRec:
    return AttemptRec(pid, f"question {pid}", "12", solution, response, correct, round=1, skills=["add"])


def contents(pairs: list[dict], side: str) -> list[str]:
    return [p[side][0]["content"] for p in pairs]


def test_pairs_chosen_correct_rejected_incorrect() -> None:
    attempts = [attempt("a", "right 1", True), attempt("a", "wrong 1", False), attempt("a", "wrong 2", False)]
    pairs = build_dpo_pairs(attempts, max_pairs_per_problem=10, rng=random.Random(0))
    assert sorted(contents(pairs, "rejected")) == ["wrong 1", "wrong 2"]
    assert set(contents(pairs, "chosen")) == {"right 1"}
    assert pairs[0]["prompt"][-1] == {"role": "user", "content": "question a"}


def test_pairs_fall_back_to_reference_solution_when_all_fail() -> None:
    pairs = build_dpo_pairs([attempt("b", "wrong", False)], 4, random.Random(0))
    assert contents(pairs, "chosen") == ["7 + 5 = 12.\nThe answer is 12."]
    no_solution = build_dpo_pairs([attempt("b", "wrong", False, solution=None)], 4, random.Random(0))
    assert contents(no_solution, "chosen") == ["The answer is 12."]


def test_no_pair_when_all_correct_and_cap_per_problem() -> None:
    assert build_dpo_pairs([attempt("c", "r1", True), attempt("c", "r2", True)], 4, random.Random(0)) == []
    many = [attempt("d", f"right {i}", True) for i in range(3)] + [
        attempt("d", f"wrong {i}", False) for i in range(3)
    ]
    pairs = build_dpo_pairs(many, max_pairs_per_problem=4, rng=random.Random(0))
    assert len(pairs) == 4
    assert len({(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs}) == 4


def test_solution_text_keeps_an_existing_answer_line() -> None:
    assert solution_text("2 + 2 = 4.\nThe answer is 4.", "4") == "2 + 2 = 4.\nThe answer is 4."


@pytest.mark.parametrize(("successes", "expected"), [(4, 1.0), (2, 0.46), (0, 0.04), (8, 0.04), (6, 0.46)])
def test_generator_weight(successes: int, expected: float) -> None:
    assert round(generator_weight(successes / 8), 2) == expected


def test_generator_rows_carry_weight_and_parseable_completion() -> None:
    from coevo.agents.drafts import parse_problem_draft

    rows = build_generator_sft([DemoRec("What is 7+5?", "The answer is 13.", "What is 17+5?", "22", 0.25)])
    assert round(rows[0]["weight"], 2) == 0.46
    assert "What is 7+5?" in rows[0]["prompt"][-1]["content"]
    draft = parse_problem_draft(rows[0]["completion"][0]["content"])
    assert (draft.question, draft.answer) == ("What is 17+5?", "22")
    with pytest.raises(ValueError, match="success rate"):
        generator_weight(1.5)


def test_stat_selection_follows_the_profile() -> None:
    pool = [ProblemRec(f"{s}{i}", f"q {s}{i}", "1", None, [s]) for s in "ABCD" for i in range(200)]
    profile = {"A": 0.6, "B": 0.3, "C": 0.1}  # D is never missing: never picked
    rng = random.Random(1234)
    counts: Counter[str] = Counter()
    for _ in range(200):
        chosen = select_by_missing_skills(profile, pool, n=20, rng=rng)
        assert len({p.problem_id for p in chosen}) == 20
        counts.update(p.skills[0] for p in chosen)
    total = sum(counts.values())
    assert counts["D"] == 0
    for skill, rate in profile.items():
        assert abs(counts[skill] / total - rate) < 0.03, (skill, counts)


def test_stat_selection_sums_skills_and_rejects_negative_rates() -> None:
    pool = [ProblemRec("x", "q", "1", None, ["A", "B"]), ProblemRec("y", "q", "1", None, ["A"])]
    picks = Counter(
        select_by_missing_skills({"A": 0.5, "B": 0.5}, pool, 1, random.Random(i))[0].problem_id
        for i in range(2000)
    )
    assert abs(picks["x"] / 2000 - 2 / 3) < 0.04
    with pytest.raises(ValueError, match="≥ 0"):
        select_by_missing_skills({"A": -0.1}, pool, 1, random.Random(0))


def test_synthesis_retries_discarded_problems() -> None:
    calls: list[str] = []

    def make(skill: str, rng: random.Random) -> ProblemRec | None:
        calls.append(skill)
        if len(calls) % 2:  # every other problem fails its agreement check
            return None
        return ProblemRec(f"{skill}{len(calls)}", f"q {skill}", "3", "1 + 2 = 3.", [skill])

    problems = synthesize_for_skills(["A", "B"], per_skill=2, make_problem=make, rng=random.Random(0))
    assert [p.skills[0] for p in problems] == ["A", "A", "B", "B"]
    rows = build_sft_rows(problems)
    assert rows[0]["completion"][0]["content"] == "1 + 2 = 3.\nThe answer is 3."


def test_replay_fraction() -> None:
    rows = with_replay(list(range(30)), list(range(100, 200)), 0.25, random.Random(0))
    assert len(rows) == 40
    assert sum(r >= 100 for r in rows) == 10
