"""The skill taxonomy of the procedural generator: each skill's name, description and
difficulty space.

Every skill has the same three difficulty dimensions, in this order: `digits` (size of the
numbers), `steps` (operations to chain) and `distractors` (irrelevant sentences with numbers).
A skill gives each an integer range; a range of one value means the dimension does not apply.
Curricula work in the normalised space [0, 1]^3, which `Skill.denormalize` maps to integer
levels in equal-width bins (so every level is reachable with equal probability).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

DIM_NAMES: tuple[str, str, str] = ("digits", "steps", "distractors")


class UnknownSkillError(ValueError):
    """A skill name that is not in the taxonomy (the message lists the known ones)."""


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    # Inclusive integer ranges for digits, steps and distractors.
    digits: tuple[int, int]
    steps: tuple[int, int]
    distractors: tuple[int, int] = (0, 2)
    # Word problems carry their surface (names, objects) through templates.
    word_problem: bool = False

    def ranges(self) -> tuple[tuple[int, int], ...]:
        return (self.digits, self.steps, self.distractors)

    def denormalize(self, vector: Sequence[float]) -> dict[str, int]:
        """[0, 1]^3 → integer levels; values outside [0, 1] are clipped."""
        if len(vector) != len(DIM_NAMES):
            raise ValueError(f"a difficulty vector has {len(DIM_NAMES)} values, got {len(vector)}")
        params: dict[str, int] = {}
        for name, (low, high), v in zip(DIM_NAMES, self.ranges(), vector, strict=True):
            width = high - low + 1
            params[name] = low + min(width - 1, max(0, math.floor(float(v) * width)))
        return params

    def normalize(self, params: Mapping[str, float]) -> list[float]:
        """Integer levels → the centre of their bin in [0, 1] (inverse of `denormalize`)."""
        clipped = self.clip(params)
        return [
            (clipped[name] - low + 0.5) / (high - low + 1)
            for name, (low, high) in zip(DIM_NAMES, self.ranges(), strict=True)
        ]

    def clip(self, params: Mapping[str, float]) -> dict[str, int]:
        """Raw levels rounded and clipped into range; a missing dimension takes its lowest level."""
        unknown = set(params) - set(DIM_NAMES)
        if unknown:
            raise ValueError(
                f"unknown difficulty dimensions {sorted(unknown)}; known: {', '.join(DIM_NAMES)}"
            )
        return {
            name: min(high, max(low, round(float(params.get(name, low)))))
            for name, (low, high) in zip(DIM_NAMES, self.ranges(), strict=True)
        }

    def restrict(self, levels: Mapping[str, Sequence[int]] | None) -> Skill:
        """This skill with each dimension's range intersected with inclusive `levels` bounds
        ({"digits": (1, 3)}; a missing dimension keeps its range; None: the skill itself)."""
        if not levels:
            return self
        check_levels(levels)
        bounded: list[tuple[int, int]] = []
        for name, (low, high) in zip(DIM_NAMES, self.ranges(), strict=True):
            if name not in levels:
                bounded.append((low, high))
                continue
            want_low, want_high = (int(v) for v in levels[name])
            new = (max(low, want_low), min(high, want_high))
            if new[0] > new[1]:
                raise ValueError(
                    f"skill {self.name}: {name} levels {want_low}-{want_high} leave nothing of its "
                    f"range {low}-{high}"
                )
            bounded.append(new)
        digits, steps, distractors = bounded
        return replace(self, digits=digits, steps=steps, distractors=distractors)


def check_levels(levels: Mapping[str, Sequence[int]]) -> None:
    """Raise a clear ValueError unless `levels` maps known dimensions to [low, high] with low <= high."""
    for name, bounds in levels.items():
        if name not in DIM_NAMES:
            raise ValueError(f"unknown difficulty dimension {name!r}; known: {', '.join(DIM_NAMES)}")
        if len(bounds) != 2 or int(bounds[0]) > int(bounds[1]):
            raise ValueError(f"{name} levels must be [low, high] with low <= high, got {list(bounds)}")


_SKILLS: tuple[Skill, ...] = (
    Skill("add_no_carry", "Add whole numbers whose column sums stay below ten.", (1, 6), (1, 3)),
    Skill("add_carry", "Add whole numbers with carrying.", (1, 6), (1, 3)),
    Skill("sub_no_borrow", "Subtract whole numbers without borrowing.", (1, 6), (1, 2)),
    Skill("sub_borrow", "Subtract whole numbers with borrowing.", (2, 6), (1, 2)),
    Skill("multiplication", "Multiply multi-digit whole numbers.", (1, 4), (1, 2)),
    Skill("division_remainder", "Divide whole numbers; give a quotient or a remainder.", (2, 5), (1, 2)),
    Skill("order_of_operations", "Evaluate expressions with +, -, × and brackets in order.", (1, 2), (2, 5)),
    Skill("fractions", "Add and subtract fractions; answer in lowest terms.", (1, 2), (1, 3)),
    Skill("decimals", "Add and subtract decimal numbers.", (1, 4), (1, 3)),
    Skill("percentages", "Percent of a quantity, and percent increase or decrease.", (2, 4), (1, 2)),
    Skill("ratios", "Use a ratio to find a part or a total.", (1, 3), (1, 2)),
    Skill("unit_conversion", "Convert between units of length, mass, time and volume.", (1, 3), (1, 2)),
    Skill("rounding", "Round a whole number to a given place value.", (2, 7), (1, 1)),
    Skill("comparison", "Pick the largest or smallest of several numbers.", (1, 3), (1, 4)),
    Skill("linear_equations", "Solve a one-variable linear equation.", (1, 3), (1, 3)),
    Skill("word_two_step", "A word problem that needs two operations.", (1, 3), (2, 2), (0, 3), True),
    Skill("word_multi_step", "A word problem of three or more operations.", (1, 3), (3, 6), (0, 3), True),
)

SKILLS: dict[str, Skill] = {skill.name: skill for skill in _SKILLS}


def get_skill(name: str) -> Skill:
    try:
        return SKILLS[name]
    except KeyError:
        raise UnknownSkillError(f"unknown skill {name!r}; known skills: {', '.join(SKILLS)}") from None


def resolve_skills(names: Sequence[str] | None) -> list[str]:
    """Validated skill names; None or empty means every skill."""
    if not names:
        return list(SKILLS)
    return [get_skill(name).name for name in names]
