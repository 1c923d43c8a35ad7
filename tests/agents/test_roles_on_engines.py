"""The built-in roles as message handlers on the replay engine, through a recording context:
the Solver samples k attempts in one request, the Teacher grades and refines, an LLM Teacher keeps
only refinements it re-derives, the Generator's malformed output is a failed proposal, the Coach's
report comes through autogen with structured output, and the Student's exam is scored."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from coevo.agents.catalog import role_spec
from coevo.agents.coach import Coach
from coevo.agents.generator import Generator
from coevo.agents.role import AttemptData, RoleBuild
from coevo.agents.solver import Solver
from coevo.agents.student import Student, StudentParams
from coevo.agents.teacher import LLMTeacher, LLMTeacherParams, ProceduralTeacher, ProceduralTeacherParams
from coevo.engines.base import ChatMessage, SamplingParams
from coevo.engines.replay import ReplayEngine, Responder
from coevo.messages import (
    AttemptGraded,
    CoachReport,
    Demonstration,
    ExamItem,
    ExamResult,
    Explanation,
    Message,
    Outcome,
    ProblemPosed,
    ProblemProposed,
    ProblemRefined,
    SolutionSubmitted,
)
from coevo.tasks.answers import Grade, failed, grade
from coevo.tasks.curriculum import make_curriculum
from coevo.tasks.problem import Problem

PROBLEM = Problem(id="p1", question="What is 2 + 3?", answer="5", skills=["add_no_carry"])


class InlineGrader:
    async def grade_many(self, items: Sequence[tuple[str, str, str | None]]) -> list[Grade]:
        return [grade(response, reference) for response, reference, _ in items]


@dataclass
class RecordingContext:
    """A stand-in for the router: records what a role emits and routes every type to `routes`."""

    problems: dict[str, Problem] = field(default_factory=lambda: {PROBLEM.id: PROBLEM})
    route_to: dict[str, list[str]] = field(default_factory=dict)
    emitted: list[Message] = field(default_factory=list)
    attempts: list[AttemptData] = field(default_factory=list)
    round: int = 0
    episode: int = 0
    episode_seed: int = 11
    opening: bool = False
    order: tuple[Any, ...] = (0, 1, "k")
    grader: InlineGrader = field(default_factory=InlineGrader)

    def seed(self, *parts: object) -> int:
        return hash((self.episode_seed, *map(str, parts))) % 2**31

    def routes(self, message_type: str, outcome: Outcome | None = None) -> list[str]:
        return self.route_to.get(message_type, [])

    def emit(
        self, message: Message, *, outcome: Outcome | None = None, reply_to: Sequence[Message] | None = None
    ) -> Message:
        message.id = f"m{len(self.emitted)}"
        self.emitted.append(message)
        return message

    def problem(self, problem_id: str) -> Problem | None:
        return self.problems.get(problem_id)

    def add_problem(self, problem: Problem, *, in_curriculum: bool = False) -> None:
        self.problems[problem.id] = problem

    def record_attempt(self, attempt: AttemptData) -> None:
        self.attempts.append(attempt)

    def policy_of(self, agent: str) -> str:
        return "base"


def build(
    name: str, role: str, responder: Responder | None, policy: str | None = None, **extra: Any
) -> RoleBuild:
    spec = role_spec(role, policy)
    return RoleBuild(
        name=name,
        role=role,
        policy=policy,
        engine=ReplayEngine(responder) if responder else None,
        params=extra.pop("params", spec.params()),
        grader=InlineGrader(),
        **extra,
    )


async def test_solver_samples_k_attempts_in_one_request() -> None:
    outputs = iter(["The answer is 5.", "", "I think 6"])
    solver = Solver(
        build(
            "solver", "solver", lambda *a: next(outputs), attempts=3, sampling=SamplingParams(temperature=0.7)
        )
    )
    ctx = RecordingContext()
    await solver.handle(ctx, [ProblemPosed(problem_id="p1", question=PROBLEM.question)])  # type: ignore[arg-type]
    assert [m.response for m in ctx.emitted if isinstance(m, SolutionSubmitted)] == [
        "The answer is 5.",
        "",
        "I think 6",
    ]
    assert (
        isinstance(solver.engine, ReplayEngine) and len(solver.engine.served_adapters) == 1
    )  # one request, n=3


def procedural_teacher(success_band: tuple[float, float]) -> ProceduralTeacher:
    return ProceduralTeacher(
        build(
            "teacher",
            "teacher",
            None,
            policy="procedural",
            params=ProceduralTeacherParams(),
            curriculum=make_curriculum("uniform", skills=["add_no_carry"]),
            success_band=success_band,
        )
    )


async def test_procedural_teacher_grades_records_and_refines_in_the_learning_zone() -> None:
    teacher = procedural_teacher((0.0, 0.75))
    ctx = RecordingContext(route_to={"ProblemRefined": ["solver"], "AttemptGraded": []})
    attempts = [
        SolutionSubmitted(sender="solver", problem_id="p1", attempt_index=i, response=r)
        for i, r in enumerate(["The answer is 5.", "The answer is 6."])
    ]
    await teacher.handle(ctx, attempts)  # type: ignore[arg-type]
    graded = [m for m in ctx.emitted if m.type == "AttemptGraded"]
    assert [g.correct for g in graded] == [True, False]  # type: ignore[attr-defined]
    assert [a.failure for a in ctx.attempts] == [None, "wrong answer"]
    [refined] = [m for m in ctx.emitted if m.type == "ProblemRefined"]
    assert refined.parent_problem_id == "p1" and refined.zone == "learning"  # type: ignore[attr-defined]
    assert teacher.end_round(0)["refinements"] == 1


async def test_procedural_teacher_accepts_only_proposals_it_can_compute() -> None:
    teacher = ProceduralTeacher(
        build("teacher", "teacher", None, policy="procedural", params=ProceduralTeacherParams())
    )
    ctx = RecordingContext()
    proposals = [
        ProblemProposed(sender="generator", source_problem_id="p1", question="What is 12 + 9?", answer="21"),
        ProblemProposed(sender="generator", source_problem_id="p1", question="What is 12 + 9?", answer="22"),
        ProblemProposed(sender="generator", source_problem_id="p1", question="How old is Tom?", answer="9"),
        ProblemProposed(
            sender="generator", source_problem_id="p1", raw="???", parse_error="no 'Problem:' section"
        ),
    ]
    for p in proposals:
        p.id = f"prop{proposals.index(p)}"
    await teacher.handle(ctx, proposals)  # type: ignore[arg-type]
    verdicts = [(m.accepted, m.reason) for m in ctx.emitted if m.type == "ProposalReviewed"]  # type: ignore[attr-defined]
    assert [a for a, _ in verdicts] == [True, False, False, False]
    assert "the answer is 21" in verdicts[1][1] and "unreadable" in verdicts[3][1]
    figures = teacher.end_round(0)
    assert figures["acceptance_rate"] == 0.25
    assert [p.question for p in teacher.queue] == ["What is 12 + 9?"]  # posed in a later round


def _teacher_engine(claimed: str) -> Responder:
    def respond(messages: Sequence[ChatMessage], params: SamplingParams, *rest: object) -> str:
        if params.json_schema is not None:
            return json.dumps({"problem": "What is 3 + 4?", "solution": "3 + 4 = 7", "answer": claimed})
        return "3 + 4 = 7. The answer is 7."  # re-solving its own problem

    return respond


async def test_llm_teacher_keeps_only_rederived_refinements() -> None:
    def teacher(claimed: str) -> LLMTeacher:
        return LLMTeacher(
            build("teacher", "teacher", _teacher_engine(claimed), policy="llm", params=LLMTeacherParams())
        )

    ctx = RecordingContext()
    refined = await teacher("7").refine(ctx, PROBLEM, 0.5, "The answer is 6.", random.Random(0))  # type: ignore[arg-type]
    assert refined is not None and refined.answer == "7" and refined.provenance.parent_id == "p1"
    assert await teacher("8").refine(ctx, PROBLEM, 0.5, None, random.Random(0)) is None  # type: ignore[arg-type]


async def test_generator_malformed_output_is_a_failed_proposal_not_a_crash() -> None:
    generator = Generator(build("generator", "generator", lambda *a: "x" * 50_000))
    ctx = RecordingContext()
    demo = Demonstration(
        source_problem_id="p1", failed_response="6", target_problem_id="p2", target_question="q"
    )
    await generator.handle(ctx, [demo])
    [proposal] = ctx.emitted
    assert isinstance(proposal, ProblemProposed) and proposal.parse_error == "no 'Problem:' section"


async def test_coach_report_through_autogen_structured_output() -> None:
    review = {
        "scores": {
            "positive_climate": 5,
            "behavior_management": 6,
            "instructional_dialogue": 4,
            "explanations": 2,
            "remediation_of_student_errors": 2,
            "imprecise_language": 1,
            "student_questioning_and_reasoning": 3,
        },
        "highlights": ["asked why"],
        "missed": [],
        "suggestions": ["press for reasoning"],
    }
    seen: list[SamplingParams] = []

    def respond(messages: Sequence[ChatMessage], params: SamplingParams, *rest: object) -> str:
        seen.append(params)
        return json.dumps(review)

    coach = Coach(build("coach", "coach", respond))
    ctx = RecordingContext()
    explanation = Explanation(
        sender="teacher", problem_id="p1", question="2 + 3?", rationale="2 + 3 = 5", answer="5"
    )
    explanation.id = "e1"
    await coach.handle(ctx, [explanation])
    [report] = ctx.emitted
    assert isinstance(report, CoachReport) and report.parse_error is None
    assert report.scores["positive_climate"] == 5.0 and report.suggestions == ["press for reasoning"]
    assert report.transcript_ids == ["e1"]
    assert seen[0].json_schema is not None and seen[0].json_schema["title"] == "CoachReview"
    assert seen[0].seed == ctx.seed()  # the run's seed reaches the engine


async def test_coach_unparseable_reply_is_a_report_with_a_parse_error() -> None:
    coach = Coach(build("coach", "coach", lambda *a: "Great lesson!"))
    ctx = RecordingContext()
    await coach.handle(ctx, [Explanation(sender="t", problem_id="p1", rationale="r", answer=None)])
    [report] = ctx.emitted
    assert isinstance(report, CoachReport) and report.parse_error and report.raw == "Great lesson!"


async def test_student_takes_the_exam_and_reports_its_score() -> None:
    exam = [Problem(id=f"x{i}", question=f"What is {i} + 1?", answer=str(i + 1)) for i in range(2)]
    student = Student(
        build("student", "student", lambda m, *a: "The answer is 2.", params=StudentParams(exam_tries=3))
    )
    ctx = RecordingContext(problems={p.id: p for p in exam})
    explanation = Explanation(
        sender="teacher",
        problem_id="p1",
        question="What is 2 + 3?",
        rationale="2 + 3 = 5",
        answer="5",
        exam=[ExamItem(problem_id=p.id, question=p.question) for p in exam],
    )
    explanation.id = "e1"
    await student.handle(ctx, [explanation])
    [result] = ctx.emitted
    assert isinstance(result, ExamResult) and result.explanation_id == "e1"
    assert (result.correct, result.total) == (3, 6)  # "2" is right for x1 only
    assert len(ctx.attempts) == 6 and {a.agent for a in ctx.attempts} == {"student"}


class StallingGrader:
    """Grades inline, except that answers containing STALL get what a Verifier gives a grade that
    ran past its time limit."""

    async def grade_many(self, items: Sequence[tuple[str, str, str | None]]) -> list[Grade]:
        return [
            failed("timeout", detail="the grade ran past its 5 s limit") if "STALL" in r else grade(r, ref)
            for r, ref, _ in items
        ]


async def test_teacher_counts_an_ungraded_attempt_neither_way_and_never_refines_from_it() -> None:
    teacher = procedural_teacher((0.0, 1.0))
    ctx = RecordingContext(route_to={"ProblemRefined": ["solver"]}, grader=StallingGrader())  # type: ignore[arg-type]
    attempts = [
        SolutionSubmitted(sender="solver", problem_id="p1", attempt_index=i, response=r)
        for i, r in enumerate(["The answer is 6. STALL", "The answer is 5."])
    ]
    await teacher.handle(ctx, attempts)  # type: ignore[arg-type]
    graded = [m for m in ctx.emitted if isinstance(m, AttemptGraded)]
    assert [(g.graded, g.failure) for g in graded] == [(False, "timeout"), (True, None)]
    assert graded[0].detail == "the grade ran past its 5 s limit"
    assert [(a.graded, a.detail) for a in ctx.attempts] == [(False, graded[0].detail), (True, None)]
    # One verdict, and it is correct: mastered (the stalled wrong answer, counted, would have put
    # the problem in the learning zone).
    [refined] = [m for m in ctx.emitted if isinstance(m, ProblemRefined)]
    assert (refined.success_rate, refined.zone) == (1.0, "mastered")
    ctx = RecordingContext(route_to={"ProblemRefined": ["solver"]}, grader=StallingGrader())  # type: ignore[arg-type]
    await teacher.handle(ctx, attempts[:1])  # type: ignore[arg-type]
    assert not [m for m in ctx.emitted if m.type == "ProblemRefined"]  # nothing judged: no zone


async def test_student_exam_counts_only_graded_answers() -> None:
    exam = [Problem(id="x1", question="What is 1 + 1?", answer="2")]
    answers = iter(["The answer is 2.", "The answer is 2. STALL", "The answer is 3."])
    student = Student(
        build("student", "student", lambda *a: next(answers), params=StudentParams(exam_tries=3))
    )
    ctx = RecordingContext(problems={"x1": exam[0]}, grader=StallingGrader())  # type: ignore[arg-type]
    explanation = Explanation(
        sender="teacher", problem_id="p1", rationale="1 + 1 = 2", answer="2",
        exam=[ExamItem(problem_id="x1", question=exam[0].question)],
    )  # fmt: skip
    explanation.id = "e1"
    await student.handle(ctx, [explanation])
    [result] = ctx.emitted
    assert isinstance(result, ExamResult)
    assert (result.correct, result.total, result.ungraded) == (1, 2, 1)


async def test_errors_that_are_not_the_model_s_output_raise_instead_of_becoming_a_parse_error() -> None:
    def broken(*args: object) -> str:
        raise ValueError("the client broke")  # not a reply of the model: nothing to record

    coach = Coach(build("coach", "coach", broken))
    with pytest.raises(ValueError, match="the client broke"):
        await coach.handle(
            RecordingContext(), [Explanation(sender="t", problem_id="p1", rationale="r", answer=None)]
        )
