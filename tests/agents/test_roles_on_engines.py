"""The roles run on coevo engines: the Coach and an LLM Teacher through autogen-agentchat's
AssistantAgent, the Solver and Generator straight on the engine (group sampling with n=k).
The replay engine stands in for a model; malformed outputs become recorded failures."""

from __future__ import annotations

import random
from collections.abc import Sequence

from coevo.agents.coach import Coach
from coevo.agents.drafts import DraftError
from coevo.agents.generator import Generator
from coevo.agents.solver import Solver
from coevo.agents.teacher import LLMTeacher
from coevo.engines.base import ChatMessage, SamplingParams
from coevo.engines.replay import ReplayEngine
from coevo.tasks.problem import Problem

PROBLEM = Problem(id="p1", question="What is 2 + 3?", answer="5", skills=["add_no_carry"])


async def test_coach_report_through_autogen() -> None:
    engine = ReplayEngine(lambda *a: '{"scores": {"positive_climate": 5}, "highlights": ["asked why"]}')
    fields, raw, prompt_tokens, completion_tokens = await Coach("coach", engine).review("T: why? S: because")
    assert fields.scores == {"positive_climate": 5.0} and fields.highlights == ["asked why"]
    assert raw.startswith("{") and prompt_tokens > 0 and completion_tokens > 0


async def test_solver_samples_k_attempts_in_one_request() -> None:
    outputs = iter(["The answer is 5.", "", "I think 6"])
    engine = ReplayEngine(lambda *a: next(outputs))
    solver = Solver("solver", engine, SamplingParams(temperature=0.7))
    attempts, _, _ = await solver.attempt(PROBLEM, k=3, seed=1)
    assert [a.grade.correct for a in attempts] == [True, False, False]
    assert [a.grade.failure for a in attempts] == [None, "empty", "wrong answer"]
    assert len(engine.served_adapters) == 1  # one request, n=3


async def test_llm_teacher_keeps_only_rederived_refinements() -> None:
    def teacher_engine(claimed: str) -> ReplayEngine:
        def respond(messages: Sequence[ChatMessage], *rest: object) -> str:
            if "Original problem" in messages[-1]["content"]:
                return f"Problem: What is 3 + 4?\nAnswer: {claimed}"
            return "3 + 4 = 7. The answer is 7."  # re-solving its own problem

        return ReplayEngine(respond)

    teacher = LLMTeacher("teacher", teacher_engine("7"))
    refined = await teacher.refine(PROBLEM, 0.5, "The answer is 6.", random.Random(0))
    assert refined is not None and refined.answer == "7" and refined.provenance.parent_id == "p1"

    wrong = LLMTeacher("teacher", teacher_engine("8"))  # claims an answer it cannot re-derive
    assert await wrong.refine(PROBLEM, 0.5, None, random.Random(0)) is None
    assert wrong.refine_failures == 1


async def test_generator_malformed_output_is_a_failure_not_a_crash() -> None:
    generator = Generator("generator", ReplayEngine(lambda *a: "x" * 50_000))
    result = await generator.propose(PROBLEM, "The answer is 6.", seed=0)
    assert isinstance(result, DraftError) and str(result) == "no 'Problem:' section"
