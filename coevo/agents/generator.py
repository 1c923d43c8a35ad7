"""The Generator: learns to pose problems the way the Teacher refines them (Socratic-Zero).
It sees a failed problem and the failed attempt and writes a new problem; it is trained by
value-weighted SFT on the Teacher's demonstrations (coevo/trainers/socratic_generator_sft_*)."""

from __future__ import annotations

from dataclasses import dataclass

from coevo.agents.base import LLMRole
from coevo.agents.drafts import DraftError, ProblemDraft, parse_problem_draft
from coevo.engines.base import ChatMessage
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


@dataclass
class Generator(LLMRole):
    async def propose(
        self, problem: Problem, failed_response: str, seed: int | None
    ) -> ProblemDraft | DraftError:
        """A new problem draft, or the reason the output could not be used (kept as a failure)."""
        result = await self.complete(
            generator_messages(problem.question, failed_response, self.prompt_version), seed=seed
        )
        try:
            return parse_problem_draft(result.completions[0].text)
        except DraftError as exc:
            return exc
