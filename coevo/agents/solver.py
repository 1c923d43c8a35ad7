"""The Solver: attempts a problem k times in one engine request (`n=k`), and each attempt is
graded against the reference answer. An unparseable attempt is a graded failure with its raw
text kept, never an exception."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from coevo.agents.base import LLMRole
from coevo.engines.base import Completion
from coevo.tasks.answers import Grade, grade
from coevo.tasks.problem import Problem
from coevo.tasks.prompts import solver_messages


@dataclass(frozen=True)
class Attempt:
    index: int
    completion: Completion
    grade: Grade


@dataclass
class Solver(LLMRole):
    async def attempt(self, problem: Problem, k: int, seed: int | None) -> tuple[list[Attempt], int, int]:
        """k graded attempts and the request's (prompt, completion) token usage."""
        messages = solver_messages(problem.question, version=self.prompt_version)
        result = await self.complete(messages, n=k, seed=seed)
        # Verification can be slow (sympy); it runs in worker threads so the loop keeps batching.
        grades = await asyncio.gather(
            *(asyncio.to_thread(grade, c.text, problem.answer) for c in result.completions)
        )
        attempts = [Attempt(i, c, g) for i, (c, g) in enumerate(zip(result.completions, grades, strict=True))]
        return attempts, result.prompt_tokens, result.completion_tokens
