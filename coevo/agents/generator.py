"""The Generator (Socratic-Zero): learns to pose problems the way the Teacher refines them. Shown a
demonstration (a failed problem and attempt), it writes a new problem ("Problem: … Answer: …")
and proposes it to a Teacher, which accepts it into the curriculum only once the answer is
verified. It is trained by value-weighted SFT on the Teacher's demonstrations
(coevo/trainers/socratic_generator_sft_*), whose prompts are `generator_messages` too."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from coevo.agents.base import LLMRole, Reply
from coevo.agents.drafts import DraftError, parse_problem_draft
from coevo.agents.registry import register_role
from coevo.agents.role import Context
from coevo.engines.base import ChatMessage
from coevo.messages import Demonstration, Message, ProblemProposed, Usage
from coevo.tasks.problem import Problem

GENERATOR_PROMPTS: dict[str, str] = {
    "v1": (
        "You write practice problems. Given a problem a student failed and the student's attempt, "
        "write one new problem that targets the student's error and keeps the mathematical essence. "
        "Reply exactly as:\nProblem: <the new problem>\nAnswer: <the final answer>"
    ),
}


def generator_messages(question: str, failed_response: str, version: str = "v1") -> list[ChatMessage]:
    """The Generator's input; the SFT trainer builds its prompts with this same function."""
    attempt = failed_response.strip()[:2000] or "(no answer)"
    return [
        {"role": "system", "content": GENERATOR_PROMPTS[version]},
        {"role": "user", "content": f"Failed problem: {question}\n\nStudent's attempt:\n{attempt}"},
    ]


@register_role(
    "generator",
    summary="Writes a new problem from each demonstration (failed problem and attempt) and "
    "proposes it; it counts only once a Teacher verifies its answer.",
    handles={"Demonstration": {"ProblemProposed"}},
    needs_reply={"Demonstration"},
    # A proposal is reviewed on its own merits, whenever it comes.
    holdable={"Demonstration"},
    prompts=GENERATOR_PROMPTS,
)
class Generator(LLMRole):
    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        demos = [m for m in inbox if isinstance(m, Demonstration)]
        await asyncio.gather(*(self.propose(ctx, d, i) for i, d in enumerate(demos)))

    async def propose(self, ctx: Context, demo: Demonstration, index: int) -> None:
        source = ctx.problem(demo.source_problem_id)
        question = source.question if source else demo.target_question
        system, user = generator_messages(question, demo.failed_response, self.prompt_version)
        reply: Reply[Any] = await self.converse(system["content"], user["content"], seed=ctx.seed(index))
        usage = Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens)
        try:
            draft = parse_problem_draft(reply.text)
        except DraftError as exc:
            ctx.emit(
                ProblemProposed(
                    source_problem_id=demo.source_problem_id,
                    raw=reply.text,
                    parse_error=str(exc),
                    usage=usage,
                ),
                reply_to=[demo],
            )
            return
        ctx.emit(
            ProblemProposed(
                source_problem_id=demo.source_problem_id,
                problem_id=Problem.make_id(draft.question, draft.answer),
                question=draft.question,
                answer=draft.answer,
                raw=reply.text,
                usage=usage,
            ),
            reply_to=[demo],
        )
