"""Procedural curricula: ALP-GMM concentrates on learning progress, baselines, refinement, resume."""

from __future__ import annotations

import json
import random

import pytest

from coevo.tasks.curriculum import (
    CURRICULA,
    ALPGMMTeacher,
    FixedTeacher,
    StaticTeacher,
    UniformTeacher,
    make_curriculum,
    problem_task,
)
from coevo.tasks.problem import Problem
from coevo.tasks.procedural import generate


def synthetic_reward(vector: list[float], rng: random.Random) -> float:
    """Mastered below 0.35 digits, hopeless above 0.65, noisy (learning) in between."""
    d = vector[0]
    if d < 0.35:
        return 1.0
    if d > 0.65:
        return 0.0
    return sum(rng.random() < 0.5 for _ in range(8)) / 8


def _run(teacher: ALPGMMTeacher | UniformTeacher, episodes: int, seed: int = 0) -> list[float]:
    rng, env = random.Random(seed), random.Random(seed + 1)
    digits: list[float] = []
    for _ in range(episodes):
        (problem,) = teacher.sample(1, rng)
        task = problem_task(problem)
        assert task is not None
        digits.append(task[1][0])
        teacher.update(problem, synthetic_reward(task[1], env))
    return digits


def _share_in_band(values: list[float]) -> float:
    return sum(0.35 <= v <= 0.65 for v in values) / len(values)


def test_alp_gmm_concentrates_on_learning_progress() -> None:
    teacher = ALPGMMTeacher(skills=["add_carry"], seed=0, bootstrap=48, refit_every=16)
    digits = _run(teacher, 400)
    assert teacher.mixtures["add_carry"].means  # it fitted after the bootstrap
    after = digits[200:]
    # Uniform sampling puts ~30% in the band; ALP-GMM (with 20% uniform exploration) far more.
    assert _share_in_band(after) > 0.5
    assert _share_in_band(_run(UniformTeacher(skills=["add_carry"]), 400)[200:]) < 0.4


def test_alp_gmm_prefers_skills_with_progress() -> None:
    teacher = ALPGMMTeacher(skills=["add_carry", "rounding"], seed=0, bootstrap=32, refit_every=16)
    rng, env = random.Random(0), random.Random(1)
    late: list[str] = []
    for episode in range(300):
        (problem,) = teacher.sample(1, rng)
        skill = problem.skills[0]
        # rounding is always solved (no progress); add_carry is noisy (progress to be made).
        reward = 1.0 if skill == "rounding" else sum(env.random() < 0.5 for _ in range(8)) / 8
        teacher.update(problem, reward)
        if episode >= 150:
            late.append(skill)
    assert late.count("add_carry") / len(late) > 0.7


def test_state_dict_round_trip_continues_identically() -> None:
    a = ALPGMMTeacher(skills=["add_carry", "fractions"], seed=3, bootstrap=24, refit_every=8)
    _run(a, 60)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-serialisable
    b = make_curriculum("alp-gmm", skills=["add_carry"], seed=99)
    b.load_state_dict(state)
    assert b.state_dict() == a.state_dict()
    ra, rb = random.Random(7), random.Random(7)
    assert [p.id for p in a.sample(20, ra)] == [p.id for p in b.sample(20, rb)]


def test_load_state_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="uniform"):
        ALPGMMTeacher().load_state_dict(UniformTeacher().state_dict())


def test_sampling_is_seeded() -> None:
    a = [p.id for p in UniformTeacher(seed=1).sample(10, random.Random(5))]
    b = [p.id for p in UniformTeacher(seed=1).sample(10, random.Random(5))]
    assert a == b


def test_fixed_teacher_stays_at_its_level() -> None:
    teacher = FixedTeacher(skills=["add_carry", "multiplication"], level=0.0)
    for problem in teacher.sample(20, random.Random(0)):
        assert problem.difficulty == {"digits": 1.0, "steps": 1.0, "distractors": 0.0}
    assert FixedTeacher(level=[1, 0, 0]).level == [1.0, 0.0, 0.0]


def test_refine_moves_by_zone() -> None:
    teacher = UniformTeacher(skills=["add_carry"], refine_step=0.5)
    rng = random.Random(0)
    base = teacher.make_problem("add_carry", [0.5, 0.5, 0.5], rng)
    for _ in range(10):
        harder = teacher.refine(base, 1.0, rng)
        assert sum(harder.difficulty.values()) > sum(base.difficulty.values())
        easier = teacher.refine(base, 0.0, rng)
        assert sum(easier.difficulty.values()) < sum(base.difficulty.values())
        nearby = teacher.refine(base, 0.5, rng)
        assert all(abs(nearby.difficulty[k] - base.difficulty[k]) <= 1 for k in base.difficulty)
        for refined in (harder, easier, nearby):
            assert refined.skills == ["add_carry"]
            assert refined.id != base.id
            assert refined.provenance.source == "refined"
            assert refined.provenance.parent_id == base.id


def test_refine_a_plain_generated_problem_and_reject_foreign_ones() -> None:
    teacher = UniformTeacher()
    plain = generate("fractions", {"digits": 1, "steps": 1}, 0)  # no "vector" in its details
    assert teacher.refine(plain, 1.0, random.Random(0)).skills == ["fractions"]
    foreign = Problem(id="x", question="What is 2+2?", answer="4")
    with pytest.raises(ValueError, match="procedural skill"):
        teacher.refine(foreign, 0.5, random.Random(0))
    teacher.update(foreign, 1.0)  # ignored, not an error
    ALPGMMTeacher().update(foreign, 1.0)


def test_make_curriculum_errors() -> None:
    assert isinstance(make_curriculum("uniform"), UniformTeacher)
    with pytest.raises(ValueError, match="known"):
        make_curriculum("nope")
    with pytest.raises(ValueError, match="allowed"):
        make_curriculum("alp-gmm", bootstrapp=3)
    with pytest.raises(ValueError, match="random_fraction"):
        make_curriculum("alp-gmm", random_fraction=2.0)
    with pytest.raises(ValueError, match="known skills"):
        make_curriculum("uniform", skills=["calculus"])


LEVELS = {"digits": (1, 3), "steps": (1, 2), "distractors": (0, 0)}


def within(problem: Problem, levels: dict[str, tuple[int, int]]) -> bool:
    return all(low <= problem.difficulty[dim] <= high for dim, (low, high) in levels.items())


@pytest.mark.parametrize("kind", sorted(CURRICULA))
def test_levels_bound_every_posed_and_refined_problem(kind: str) -> None:
    params = {"bootstrap": 8, "refit_every": 8} if kind == "alp-gmm" else {}
    params |= {"level": 1.0} if kind == "fixed" else {}
    teacher = make_curriculum(kind, skills=["add_carry", "sub_borrow"], seed=1, levels=LEVELS, **params)
    rng = random.Random(0)
    seen_digits: set[float] = set()
    for _ in range(4):
        for problem in teacher.sample(12, rng):
            assert within(problem, LEVELS), problem.difficulty
            seen_digits.add(problem.difficulty["digits"])
            teacher.update(problem, rng.random())
            for rate in (0.0, 0.5, 1.0):
                assert within(teacher.refine(problem, rate, rng), LEVELS)
    if kind in ("uniform", "alp-gmm"):
        assert seen_digits == {1.0, 2.0, 3.0}  # the whole bounded range is reachable
    # sub_borrow starts at 2 digits: the bound intersects its own range
    assert teacher.specs["sub_borrow"].digits == (2, 3)
    restored = make_curriculum(kind, skills=["fractions"])
    restored.load_state_dict(json.loads(json.dumps(teacher.state_dict())))
    assert restored.levels == teacher.levels and restored.specs == teacher.specs


def test_bad_levels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown difficulty dimension 'digit'"):
        UniformTeacher(levels={"digit": (1, 2)})
    with pytest.raises(ValueError, match="low <= high"):
        UniformTeacher(levels={"digits": (3, 1)})
    with pytest.raises(ValueError, match="sub_borrow: digits levels 1-1 leave nothing"):
        UniformTeacher(skills=["sub_borrow"], levels={"digits": (1, 1)})


def test_static_teacher_poses_alp_gmm_bootstrap_problems_every_round() -> None:
    skills = ["add_no_carry", "sub_borrow"]
    static = StaticTeacher(skills=skills, seed=0)
    adaptive = ALPGMMTeacher(skills=skills, seed=0, bootstrap=32)
    first = [p.id for p in static.sample(8, random.Random(11))]
    assert first == [p.id for p in adaptive.sample(8, random.Random(11))]
    assert [p.id for p in static.sample(8, random.Random(12))] == first  # whatever the generator
    assert [p.id for p in static.sample(3, random.Random(13))] == first[:3]  # cycles in order
    resumed = make_curriculum("static", skills=skills)
    resumed.load_state_dict(json.loads(json.dumps(static.state_dict())))
    assert [p.id for p in resumed.sample(5, random.Random(0))] == [
        p.id for p in static.sample(5, random.Random(1))
    ]
