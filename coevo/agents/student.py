"""The Student (Learning by Teaching): takes the exam of an explanation, solving each exam problem
`exam_tries` times with the Teacher's rationale as its in-context worked example; its exam
accuracy is that rationale's LbT score. Posed a problem directly, it answers like a Solver.
Its exam answers are graded by the verifier and stored as its attempts (so it has a skill
profile of its own)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from coevo.agents.registry import register_role
from coevo.agents.role import AttemptData, Context, RoleBuild
from coevo.agents.solver import Solver
from coevo.engines.base import ChatMessage, GenerationResult
from coevo.messages import ExamItem, ExamResult, Explanation, Message, ProblemPosed
from coevo.tasks.answers import Grade
from coevo.tasks.problem import Problem
from coevo.tasks.prompts import SOLVER_PROMPTS

STUDENT_PROMPTS: dict[str, str] = {
    "v1": (
        "Solve the math problem. Follow the worked example's style. "
        "End with a line 'The answer is N.' where N is the final answer."
    ),
}


class StudentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Samples per exam problem (LbT: 3 tries on each of 3 exam problems).
    exam_tries: int = Field(default=3, ge=1)


def exam_messages(
    example_question: str, rationale: str, exam_question: str, version: str = "v1"
) -> list[ChatMessage]:
    return [
        {"role": "system", "content": STUDENT_PROMPTS[version]},
        {"role": "user", "content": example_question},
        {"role": "assistant", "content": rationale},
        {"role": "user", "content": exam_question},
    ]


@register_role(
    "student",
    summary="Takes the exam of each explanation it is given (the rationale as its worked example); "
    "answers posed problems like a Solver.",
    handles={"Explanation": {"ExamResult"}, "ProblemPosed": {"SolutionSubmitted"}},
    needs_reply={"Explanation", "ProblemPosed"},
    # An exam is scored by the Teacher that explained, in the round it explained: not holdable.
    holdable={"ProblemPosed"},
    params=StudentParams,
    # It answers posed problems with the Solver's prompts and exams with its own.
    prompts=STUDENT_PROMPTS.keys() & SOLVER_PROMPTS.keys(),
)
class Student(Solver):
    def __init__(self, build: RoleBuild) -> None:
        super().__init__(build)
        assert isinstance(build.params, StudentParams)
        self.params = build.params

    async def handle(self, ctx: Context, inbox: Sequence[Message]) -> None:
        explanations = [m for m in inbox if isinstance(m, Explanation)]
        _, exams = await asyncio.gather(
            self.answer(ctx, [m for m in inbox if isinstance(m, ProblemPosed)]),
            asyncio.gather(*(self.sit(ctx, e) for e in explanations)),
        )
        # Recorded and reported in the order the explanations came, whichever exam finished first.
        for explanation, exam in zip(explanations, exams, strict=True):
            self.report(ctx, explanation, *exam)

    async def sit(
        self, ctx: Context, explanation: Explanation
    ) -> tuple[list[tuple[ExamItem, Problem]], list[GenerationResult], list[Grade]]:
        """The exam of one explanation: `exam_tries` samples per exam problem, graded."""
        tries = self.params.exam_tries
        items = [(item, ctx.problem(item.problem_id)) for item in explanation.exam]
        known = [(item, problem) for item, problem in items if problem is not None]
        results = await asyncio.gather(
            *(
                self.sample(
                    exam_messages(
                        explanation.question, explanation.rationale, item.question, self.prompt_version
                    ),
                    n=tries,
                    seed=ctx.seed(explanation.id, item.problem_id),
                )
                for item, _ in known
            )
        )
        grades = await ctx.grader.grade_many(
            [
                (c.text, problem.answer, problem.question)
                for (_, problem), result in zip(known, results, strict=True)
                for c in result.completions
            ]
        )
        return known, list(results), grades

    def report(
        self,
        ctx: Context,
        explanation: Explanation,
        known: list[tuple[ExamItem, Problem]],
        results: list[GenerationResult],
        grades: list[Grade],
    ) -> None:
        answers: list[str | None] = []
        correct = judged = 0
        graded = iter(grades)
        for (item, problem), result in zip(known, results, strict=True):
            for index, completion in enumerate(result.completions):
                grade = next(graded)
                # An answer the verifier could not judge is in neither count of the exam.
                judged += grade.graded
                correct += grade.correct and grade.graded
                answers.append(grade.extracted)
                ctx.record_attempt(
                    AttemptData(
                        problem_id=item.problem_id,
                        agent=self.name,
                        policy_version=self.policy.label,
                        attempt_index=index,
                        response=completion.text,
                        extracted_answer=grade.extracted,
                        correct=grade.correct,
                        reward=grade.reward,
                        failure=grade.failure,
                        finish_reason=completion.finish_reason,
                        completion_tokens=len(completion.token_ids),
                        skills=tuple(problem.skills),
                        graded=grade.graded,
                        detail=grade.detail,
                    )
                )
        ctx.emit(
            ExamResult(
                explanation_id=explanation.id,
                problem_id=explanation.problem_id,
                exam_problem_ids=[item.problem_id for item, _ in known],
                correct=correct,
                total=judged,
                ungraded=len(grades) - judged,
                answers=answers,
            ),
            reply_to=[explanation],
        )
