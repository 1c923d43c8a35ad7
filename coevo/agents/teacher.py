"""The Teacher: poses problems, grades attempts, and refines failed problems (Socratic-Zero).

Two policies share one interface:
- `ProceduralTeacher` draws problems from the procedural generator through a curriculum
  (ALP-GMM, uniform or fixed) and refines by moving to neighbouring parameters of the same
  skill. Every answer is computed, so grading is exact — this is what makes a CPU run with a
  135M Solver meaningful, since such a model cannot author correct problems.
- `LLMTeacher` rewrites a failed problem with a language model ("Problem: ... Answer: ...") and
  keeps the new problem only if it can re-derive the answer it claimed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from coevo.agents.base import LLMRole
from coevo.agents.drafts import DraftError, ProblemDraft, parse_problem_draft
from coevo.tasks.answers import grade
from coevo.tasks.curriculum import CurriculumTeacher
from coevo.tasks.problem import Problem, Provenance
from coevo.tasks.prompts import solver_messages

Zone = Literal["mastered", "learning", "too_hard"]


def zone(success_rate: float) -> Zone:
    """Socratic-Zero's zones over the k attempts at one problem."""
    if success_rate >= 1.0:
        return "mastered"
    if success_rate <= 0.0:
        return "too_hard"
    return "learning"


@dataclass
class ProceduralTeacher:
    name: str
    curriculum: CurriculumTeacher

    def pose(self, n: int, rng: random.Random) -> list[Problem]:
        return self.curriculum.sample(n, rng)

    def observe(self, problem: Problem, success_rate: float) -> None:
        """Feed the Solver's success back to the curriculum (ALP-GMM's learning progress)."""
        self.curriculum.update(problem, success_rate)

    async def refine(
        self, problem: Problem, success_rate: float, failed_response: str | None, rng: random.Random
    ) -> Problem | None:
        refined = self.curriculum.refine(problem, success_rate, rng)
        provenance = refined.provenance.model_copy(
            update={"source": "refined", "parent_id": problem.id, "author": self.name}
        )
        return refined.model_copy(update={"provenance": provenance})

    def state_dict(self) -> dict[str, Any]:
        return self.curriculum.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state)


TEACHER_REFINE_PROMPTS: dict[str, str] = {
    "v1": (
        "You are a mathematics teacher. A student failed the problem below. Write ONE new problem that "
        "targets the student's error while keeping the mathematical essence of the original. Reply "
        "exactly in this format:\nProblem: <the new problem>\nSolution: <a worked solution>\n"
        "Answer: <the final answer, a number>"
    ),
}


def refine_task(problem: Problem, failed_response: str | None) -> str:
    attempt = (failed_response or "(no answer)").strip()[:2000]
    return (
        f"Original problem: {problem.question}\nCorrect answer: {problem.answer}\n\n"
        f"Student's attempt:\n{attempt}"
    )


@dataclass
class LLMTeacher(LLMRole):
    """A language-model Teacher (a strong external model behind the `openai` engine, typically)."""

    pool: tuple[Problem, ...] = ()
    refine_failures: int = 0

    def pose(self, n: int, rng: random.Random) -> list[Problem]:
        if not self.pool:
            return []
        return [self.pool[rng.randrange(len(self.pool))] for _ in range(n)]

    def observe(self, problem: Problem, success_rate: float) -> None:
        """An LLM Teacher keeps no curriculum model; zones drive refinement instead."""

    async def refine(
        self, problem: Problem, success_rate: float, failed_response: str | None, rng: random.Random
    ) -> Problem | None:
        text, _, _ = await self.converse(
            TEACHER_REFINE_PROMPTS[self.prompt_version], refine_task(problem, failed_response)
        )
        try:
            draft = parse_problem_draft(text)
        except DraftError:
            self.refine_failures += 1
            return None
        if not await self._rederives(draft, rng):
            self.refine_failures += 1
            return None
        return Problem(
            id=Problem.make_id(draft.question, draft.answer),
            question=draft.question,
            answer=draft.answer,
            solution=draft.solution,
            skills=list(problem.skills),
            difficulty=dict(problem.difficulty),
            provenance=Provenance(source="refined", parent_id=problem.id, author=self.name),
        )

    async def _rederives(self, draft: ProblemDraft, rng: random.Random) -> bool:
        """Socratic-Zero discards a refinement whose answer the Teacher cannot re-derive."""
        result = await self.complete(solver_messages(draft.question), n=1, seed=rng.randrange(2**31))
        return grade(result.completions[0].text, draft.answer).correct

    def state_dict(self) -> dict[str, Any]:
        return {"refine_failures": self.refine_failures}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refine_failures = int(state.get("refine_failures", 0))
