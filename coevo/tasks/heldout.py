"""The built-in procedural held-out set: a fixed evaluation set that no training run can contain.

Isolation is by construction, twice over: held-out problems come from the generator's held-out
content partition (which `split="train"` never produces, see `procedural.py`), and their seeds
come from a namespace ("heldout") that training never uses. `assert_disjoint` checks ids against
a concrete training set as well.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from coevo.tasks.problem import Problem
from coevo.tasks.procedural import PartitionExhaustedError, derive_seed, generate
from coevo.tasks.skills import get_skill, resolve_skills


def heldout_set(
    n: int = 300,
    skills: Sequence[str] | None = None,
    seed: int = 0,
    levels: Mapping[str, Sequence[int]] | None = None,
) -> list[Problem]:
    """`n` problems spread evenly over `skills` (default: all) and over each skill's difficulty
    levels, bounded by `levels` ({"digits": (1, 3), ...}; default: every level)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    names = resolve_skills(skills)
    specs = {name: get_skill(name).restrict(levels) for name in names}
    problems: list[Problem] = []
    seen: set[str] = set()
    attempt = 0
    while len(problems) < n:
        if attempt > 50 * n:
            raise RuntimeError(f"could not build {n} distinct held-out problems for skills {names}")
        skill = names[attempt % len(names)]
        spec = specs[skill]
        rng = random.Random(derive_seed("heldout-levels", seed, attempt))
        drawn = {
            "digits": rng.randint(*spec.digits),
            "steps": rng.randint(*spec.steps),
            "distractors": rng.randint(*spec.distractors),
        }
        attempt += 1
        try:
            problem = generate(skill, drawn, seed=derive_seed("heldout", seed, attempt), split="heldout")
        except PartitionExhaustedError:
            continue  # a level with too few distinct problems to spare any for evaluation
        if problem.id not in seen:
            seen.add(problem.id)
            problems.append(problem)
    return problems


def assert_disjoint(heldout: Iterable[Problem], training: Iterable[Problem]) -> None:
    """Raise if any held-out problem id also appears in a training set."""
    shared = {p.id for p in heldout} & {p.id for p in training}
    if shared:
        raise ValueError(
            f"{len(shared)} held-out problems also appear in training, e.g. {sorted(shared)[:3]}"
        )
