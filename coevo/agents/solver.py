"""The Solver: answers each problem it receives with k attempts (`schedule.attempts_per_problem`).

The k attempts are ONE engine request with `n=k`, so the engine samples them together (and
batches them with every other episode's). With a user's autogen agent in the Solver's place
(`autogen:` in the config), the attempts are k runs of that agent, seeded seed, seed+1, ...,
because an agent's reply is one sample. Grading is not the Solver's: its attempts go to a
Teacher along the graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coevo.agents.base import LLMRole, Reply
from coevo.agents.registry import register_role
from coevo.agents.role import Context, RoleBuild
from coevo.messages import Message, ProblemPosed, ProblemRefined, SolutionSubmitted, Usage
from coevo.tasks.prompts import SOLVER_PROMPTS, solver_messages


@dataclass(frozen=True)
class Sample:
    text: str
    finish_reason: str
    completion_tokens: int


@register_role(
    "solver",
    summary="Answers each problem with k sampled attempts (one engine request, n=k).",
    handles={"ProblemPosed": {"SolutionSubmitted"}, "ProblemRefined": {"SolutionSubmitted"}},
    needs_reply={"ProblemPosed", "ProblemRefined"},
    holdable={"ProblemPosed", "ProblemRefined"},
    prompts=SOLVER_PROMPTS,
)
class Solver(LLMRole):
    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        self.attempts = build.attempts

    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        await self.answer(ctx, [m for m in inbox if isinstance(m, ProblemPosed | ProblemRefined)])

    async def answer(self, ctx: Context, problems: Sequence[ProblemPosed | ProblemRefined]) -> None:
        """k attempts at each problem, sent back as one batch of SolutionSubmitted per problem."""
        seeds = [ctx.seed(i) for i in range(len(problems))]
        results = await asyncio.gather(
            *(self.solve(p.question, self.attempts, seed) for p, seed in zip(problems, seeds, strict=True))
        )
        for problem, (samples, prompt_tokens) in zip(problems, results, strict=True):
            for index, sample in enumerate(samples):
                ctx.emit(
                    SolutionSubmitted(
                        problem_id=problem.problem_id,
                        attempt_index=index,
                        response=sample.text,
                        finish_reason=sample.finish_reason,
                        # The request's prompt is counted once, on the first sample.
                        usage=Usage(
                            prompt_tokens=prompt_tokens if index == 0 else 0,
                            completion_tokens=sample.completion_tokens,
                        ),
                    ),
                    reply_to=[problem],
                )

    async def solve(self, question: str, k: int, seed: int) -> tuple[list[Sample], int]:
        """k answers to a question and the prompt tokens spent."""
        if self.build.autogen_factory is None:
            result = await self.sample(solver_messages(question, self.prompt_version), n=k, seed=seed)
            samples = [Sample(c.text, c.finish_reason, len(c.token_ids)) for c in result.completions]
            return samples, result.prompt_tokens
        system = SOLVER_PROMPTS[self.prompt_version]
        replies: list[Reply[Any]] = await asyncio.gather(
            *[self.converse(system, question, seed=seed + i) for i in range(k)]
        )
        samples = [Sample(r.text, "stop", r.completion_tokens) for r in replies]
        return samples, sum(r.prompt_tokens for r in replies)
