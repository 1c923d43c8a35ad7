"""The Student (Learning by Teaching): solves "exam" problems with one of the Teacher's
rationales as its in-context example; its exam accuracy is that rationale's LbT score."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from coevo.agents.base import LLMRole
from coevo.engines.base import ChatMessage
from coevo.tasks.answers import grade
from coevo.tasks.problem import Problem

STUDENT_PROMPTS: dict[str, str] = {
    "v1": (
        "Solve the math problem. Follow the worked example's style. "
        "End with a line 'The answer is N.' where N is the final answer."
    ),
}


def exam_messages(
    example_question: str, rationale: str, exam_question: str, version: str = "v1"
) -> list[ChatMessage]:
    return [
        {"role": "system", "content": STUDENT_PROMPTS[version]},
        {"role": "user", "content": example_question},
        {"role": "assistant", "content": rationale},
        {"role": "user", "content": exam_question},
    ]


@dataclass
class Student(LLMRole):
    async def take_exam(
        self, example: Problem, rationale: str, exam: list[Problem], tries: int, seed: int | None
    ) -> tuple[int, int]:
        """(correct, total) over `tries` samples on each exam problem."""
        results = await asyncio.gather(
            *(
                self.complete(
                    exam_messages(example.question, rationale, p.question, self.prompt_version),
                    n=tries,
                    seed=None if seed is None else seed + i,
                )
                for i, p in enumerate(exam)
            )
        )
        correct = 0
        for problem, result in zip(exam, results, strict=True):
            grades = await asyncio.gather(
                *(asyncio.to_thread(grade, c.text, problem.answer) for c in result.completions)
            )
            correct += sum(g.correct for g in grades)
        return correct, tries * len(exam)
