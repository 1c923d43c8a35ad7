"""STAT: pick or write problems for the Solver's missing skills, then plain SFT on their
reference solutions (completion-only loss, coevo.trainers.sft_trainer.train_sft).

STAT-Sel weighs each problem by the *sum* of its skills' missing rates: a problem that
exercises two missing skills is worth more than one exercising either alone, and a problem with
no missing skill is never picked. Problems are drawn without replacement (Efraimidis–Spirakis
keys), so each is trained on once per selection.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coevo.engines.base import ChatMessage
from coevo.tasks.prompts import solution_text, solver_messages
from coevo.trainers.records import ProblemRec


def skill_weight(problem: ProblemRec, profile: Mapping[str, float]) -> float:
    return sum(profile.get(skill, 0.0) for skill in problem.skills)


def select_by_missing_skills(
    profile: Mapping[str, float], pool: Sequence[ProblemRec], n: int, rng: random.Random
) -> list[ProblemRec]:
    """STAT-Sel: up to `n` distinct problems, each drawn with probability ∝ the summed missing
    rates of its skills. Fewer come back when fewer problems need a missing skill."""
    bad = {skill: rate for skill, rate in profile.items() if rate < 0}
    if bad:
        raise ValueError(f"missing-skill rates must be ≥ 0, got {bad}")
    keyed: list[tuple[float, int]] = []
    for index, problem in enumerate(pool):
        weight = skill_weight(problem, profile)
        if weight > 0:
            # u^(1/w) with u uniform in (0, 1]: the n largest keys are a weighted sample without replacement.
            keyed.append(((1.0 - rng.random()) ** (1.0 / weight), index))
    keyed.sort(reverse=True)
    return [pool[index] for _, index in keyed[:n]]


def synthesize_for_skills(
    skills: Sequence[str],
    per_skill: int,
    make_problem: Callable[[str, random.Random], ProblemRec | None],
    rng: random.Random,
    max_tries: int = 3,
) -> list[ProblemRec]:
    """STAT-Syn: `per_skill` new problems for each skill from `make_problem` (the procedural
    generator, or an LLM Teacher that checks its own answers). `make_problem` returns None for a
    problem it discarded (e.g. fewer than 2 of 3 independent solutions agreed); each kept problem
    may take up to `max_tries` calls, after which that slot stays empty."""
    problems: list[ProblemRec] = []
    for skill in skills:
        for _ in range(per_skill):
            for _ in range(max_tries):
                problem = make_problem(skill, rng)
                if problem is not None:
                    problems.append(problem)
                    break
    return problems


def build_sft_rows(
    problems: Sequence[ProblemRec], messages_for: Callable[[str], list[ChatMessage]] = solver_messages
) -> list[dict[str, Any]]:
    """Conversational `{prompt, completion}` rows: the Solver's prompt, and the reference solution
    ending "The answer is X."."""
    return [
        {
            "prompt": messages_for(p.question),
            "completion": [{"role": "assistant", "content": solution_text(p.solution, p.answer)}],
        }
        for p in problems
    ]
