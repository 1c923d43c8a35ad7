"""Skill profiles (STAT's Missing-Skill-Profile): per skill, attempts, success rate, and how
often a failure lacked that skill.

An attempt record is a mapping with `skills` (the problem's skills) and `correct`, and
optionally `missing`: the skills a Teacher model diagnosed as missing from a failed attempt.
Without a diagnosis (procedural problems), a failure counts as missing every skill of its
problem. Records may also carry `agent` and `round`, which `profiles_by` groups on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class SkillStats:
    attempts: int = 0
    correct: int = 0
    # Failed attempts that lacked this skill.
    missing: int = 0

    @property
    def success_rate(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0

    @property
    def missing_rate(self) -> float:
        """Share of this skill's attempts that failed for lack of it."""
        return self.missing / self.attempts if self.attempts else 0.0


def skill_profile(records: Iterable[Mapping[str, Any]]) -> dict[str, SkillStats]:
    profile: dict[str, SkillStats] = defaultdict(SkillStats)
    for record in records:
        skills: Sequence[str] = record.get("skills") or []
        correct = bool(record["correct"])
        for skill in skills:
            stats = profile[skill]
            stats.attempts += 1
            stats.correct += correct
        if correct:
            continue
        diagnosis = record.get("missing")
        for skill in skills if diagnosis is None else diagnosis:
            profile[skill].missing += 1
    return dict(profile)


def missing_skill_profile(profile: Mapping[str, SkillStats]) -> dict[str, float]:
    """Each skill's share of all missing-skill counts (sums to 1; empty when nothing failed).
    STAT-Sel samples training questions per skill in these proportions."""
    total = sum(stats.missing for stats in profile.values())
    if total == 0:
        return {}
    return {skill: stats.missing / total for skill, stats in profile.items() if stats.missing}


def profiles_by(
    records: Iterable[Mapping[str, Any]], keys: Sequence[str] = ("agent", "round")
) -> dict[tuple[Hashable, ...], dict[str, SkillStats]]:
    """One profile per distinct value of `keys` (by default per agent and round)."""
    groups: dict[tuple[Hashable, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[tuple(record.get(k) for k in keys)].append(record)
    return {key: skill_profile(group) for key, group in groups.items()}
