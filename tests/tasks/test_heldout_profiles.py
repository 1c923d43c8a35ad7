"""The built-in held-out set (disjoint from any training draw) and skill profiles."""

from __future__ import annotations

import random

import pytest

from coevo.tasks.curriculum import UniformTeacher
from coevo.tasks.heldout import assert_disjoint, heldout_set
from coevo.tasks.profiles import SkillStats, missing_skill_profile, profiles_by, skill_profile
from coevo.tasks.skills import SKILLS


def test_heldout_is_reproducible_and_spans_skills_and_levels() -> None:
    problems = heldout_set(n=170)
    assert [p.id for p in problems] == [p.id for p in heldout_set(n=170)]
    assert len({p.id for p in problems}) == 170
    assert {p.skills[0] for p in problems} == set(SKILLS)
    assert len({p.difficulty["digits"] for p in problems}) >= 5
    assert all(p.provenance.details["split"] == "heldout" for p in problems)
    assert [p.id for p in heldout_set(n=20, seed=1)] != [p.id for p in heldout_set(n=20, seed=0)]


def test_heldout_restricted_to_skills() -> None:
    problems = heldout_set(n=30, skills=["add_no_carry", "sub_no_borrow"])
    assert {p.skills[0] for p in problems} == {"add_no_carry", "sub_no_borrow"}


def test_heldout_restricted_to_levels() -> None:
    levels = {"digits": (1, 2), "steps": (2, 2), "distractors": (0, 0)}
    problems = heldout_set(n=40, skills=["add_carry", "sub_borrow"], levels=levels)
    assert len({p.id for p in problems}) == 40
    assert {
        (p.difficulty["digits"], p.difficulty["steps"], p.difficulty["distractors"]) for p in problems
    } <= {
        (1.0, 2.0, 0.0),
        (2.0, 2.0, 0.0),
    }
    assert {p.difficulty["digits"] for p in problems if p.skills == ["sub_borrow"]} == {2.0}
    # Without levels the set is what it always was (stored evaluations stay comparable).
    assert [p.id for p in heldout_set(n=30, levels=None)] == [p.id for p in heldout_set(n=30)]


def test_heldout_disjoint_from_a_large_training_draw() -> None:
    heldout = heldout_set(n=300)
    training = UniformTeacher(seed=0).sample(3000, random.Random(0))
    assert_disjoint(heldout, training)
    with pytest.raises(ValueError, match="also appear"):
        assert_disjoint(heldout, heldout[:2])


def test_heldout_rejects_bad_n() -> None:
    with pytest.raises(ValueError):
        heldout_set(n=0)


RECORDS = [
    {"agent": "solver", "round": 0, "skills": ["add_carry"], "correct": True},
    {"agent": "solver", "round": 0, "skills": ["add_carry"], "correct": False},
    {"agent": "solver", "round": 0, "skills": ["fractions", "add_carry"], "correct": False},
    {"agent": "solver", "round": 1, "skills": ["fractions"], "correct": True},
    # An LLM Teacher's diagnosis overrides the problem's skills for what was missing.
    {
        "agent": "solver",
        "round": 1,
        "skills": ["word_two_step"],
        "correct": False,
        "missing": ["multiplication"],
    },
]


def test_skill_profile() -> None:
    profile = skill_profile(RECORDS)
    assert profile["add_carry"] == SkillStats(attempts=3, correct=1, missing=2)
    assert profile["add_carry"].success_rate == pytest.approx(1 / 3)
    assert profile["fractions"] == SkillStats(attempts=2, correct=1, missing=1)
    assert profile["word_two_step"] == SkillStats(attempts=1, correct=0, missing=0)
    assert profile["multiplication"] == SkillStats(attempts=0, correct=0, missing=1)
    assert profile["multiplication"].success_rate == 0.0
    assert profile["fractions"].missing_rate == 0.5


def test_missing_skill_profile_is_normalised() -> None:
    shares = missing_skill_profile(skill_profile(RECORDS))
    assert shares == {"add_carry": 0.5, "fractions": 0.25, "multiplication": 0.25}
    assert missing_skill_profile(skill_profile(RECORDS[:1])) == {}


def test_profiles_by_agent_and_round() -> None:
    grouped = profiles_by(RECORDS)
    assert set(grouped) == {("solver", 0), ("solver", 1)}
    assert grouped[("solver", 1)]["fractions"].correct == 1
