"""Evaluation through the Engine protocol with a tiny in-test engine, Wilson intervals, the report
table, and `coevo eval` end to end on that engine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from coevo.engines.base import Completion, Engine, GenerationRequest, GenerationResult, SamplingParams
from coevo.tasks.answers import Grade
from coevo.tasks.evaluate import EvalReport, evaluate, format_report, wilson_interval
from coevo.tasks.heldout import heldout_set
from coevo.tasks.problem import Problem
from coevo.tasks.verifier import Verifier


class ArithmeticEngine:
    """Test double: answers "What is a + b?" correctly and anything else with a fixed wrong number.
    Records the largest number of requests in flight at once, and the event loop's thread."""

    kind = "test"
    model = "arithmetic"

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.requests: list[GenerationRequest] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        results = []
        for request in requests:
            self.requests.append(request)
            sum_question = re.search(r"What is ([\d +]+)\?", request.messages[-1]["content"])
            if sum_question:
                value = sum(int(x) for x in sum_question.group(1).split("+"))
                text = f"Adding up. The answer is {value}."
            else:
                text = "I am sure the answer is correct: 123456789."
            completion = Completion(text=text, token_ids=(1, 2, 3), finish_reason="stop")
            results.append(GenerationResult((completion,) * request.params.n, 10, 3 * request.params.n))
        return results

    async def load_adapter(self, name: str, path: str | Path) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass


def _problem(question: str, answer: str, skill: str) -> Problem:
    return Problem(id=Problem.make_id(question, answer), question=question, answer=answer, skills=[skill])


PROBLEMS = [
    _problem("What is 2 + 3?", "5", "add"),
    _problem("What is 10 + 20 + 5?", "35", "add"),
    _problem("What is 4 × 5?", "20", "mul"),
    Problem(id="x", question="Name a prime.", answer="2"),
]


def test_engine_double_meets_the_protocol() -> None:
    assert isinstance(ArithmeticEngine(), Engine)


async def test_evaluate_scores_and_groups_by_skill() -> None:
    engine = ArithmeticEngine()
    report = await evaluate(engine, PROBLEMS, adapter="v1", progress=False)
    assert (report.n, report.correct, report.accuracy) == (4, 2, 0.5)
    assert report.per_skill == {"(no skill)": (1, 0.0), "add": (2, 1.0), "mul": (1, 0.0)}
    assert (report.ci_low, report.ci_high) == pytest.approx(wilson_interval(2, 4))
    request = engine.requests[0]
    assert request.adapter == "v1"
    assert request.params == SamplingParams(temperature=0.0, max_tokens=256)
    assert request.messages[0]["role"] == "system" and "The answer is" in request.messages[0]["content"]
    failed = [r for r in report.records if not r.correct]
    assert {r.extracted for r in failed} == {"123456789"}  # claims of correctness count for nothing
    assert json.loads(json.dumps(report.to_dict()))["per_skill"]["add"] == {"n": 2, "accuracy": 1.0}


async def test_evaluate_is_concurrent_and_bounded() -> None:
    engine = ArithmeticEngine()
    problems = heldout_set(n=40, skills=["add_no_carry"])
    report = await evaluate(engine, problems, concurrency=8, progress=False)
    assert report.accuracy == 1.0
    assert 1 < engine.peak <= 8


async def test_samples_are_each_graded() -> None:
    report = await evaluate(ArithmeticEngine(), PROBLEMS[:1], params=SamplingParams(n=3), progress=False)
    assert report.n == 3 and report.correct == 3


async def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    await evaluate(ArithmeticEngine(), PROBLEMS, progress=True)
    captured = capsys.readouterr()
    assert "eval: 4/4 problems" in captured.err and captured.out == ""


async def test_empty_set() -> None:
    report = await evaluate(ArithmeticEngine(), [], progress=False)
    assert (report.n, report.accuracy, report.ci_low, report.ci_high) == (0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (81, 263, 0.2553, 0.3662)],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


def test_format_report() -> None:
    report = EvalReport(4, 2, 0.5, 0.15, 0.85, {"add": (2, 1.0), "mul": (2, 0.0)})
    text = format_report(report, title="demo")
    assert text.splitlines()[0] == "demo"
    assert "accuracy 50.0% (2/4), 95% CI [15.0%, 85.0%]" in text
    assert "add" in text and "100.0%" in text


def _args(**overrides: object) -> argparse.Namespace:
    base: dict[str, object] = dict(
        run=None,
        agent="solver",
        policy="latest",
        dataset="procedural-heldout",
        split="test",
        limit=20,
        model="arithmetic",
        engine="test",
        skills="add_no_carry",
        levels=None,
        max_tokens=256,
        seed=0,
        json=True,
    )
    base.update(overrides)
    return argparse.Namespace(**base)


def test_eval_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from coevo.engines import factory
    from coevo.society.eval_command import eval_command

    monkeypatch.setattr(factory, "make_engine", lambda kind, model: ArithmeticEngine())
    assert eval_command(_args()) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 20 and result["accuracy"] == 1.0
    assert eval_command(_args(json=False)) == 0
    assert "accuracy 100.0% (20/20)" in capsys.readouterr().out
    assert eval_command(_args(levels="digits=1-2,steps=1-1")) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 20
    assert eval_command(_args(levels="digits=2-1")) == 2
    assert "low <= high" in capsys.readouterr().err
    assert eval_command(_args(dataset="no-such-set")) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert eval_command(_args(run="runs/x")) == 2
    assert eval_command(_args(skills="calculus")) == 2


class RecordingVerifier(Verifier):
    """A one-worker Verifier that records what it is asked to grade."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.items: list[tuple[str, str, str | None]] = []

    async def grade_many(self, items: Sequence[tuple[str, str, str | None]]) -> list[Grade]:
        self.items += items
        return await super().grade_many(items)


async def test_grading_runs_in_verifier_processes() -> None:
    """Grades come from a Verifier's worker processes (given here; the shared default otherwise),
    with the question, so that answers restated from it are ignored."""
    verifier = RecordingVerifier()
    try:
        report = await evaluate(ArithmeticEngine(), PROBLEMS, progress=False, verifier=verifier)
        workers = {w.process.pid for w in verifier._slots if w.process is not None}
    finally:
        await verifier.close()
    assert report.correct == 2
    assert {(reference, question) for _, reference, question in verifier.items} == {
        (p.answer, p.question) for p in PROBLEMS
    }
    assert workers and os.getpid() not in workers


def test_parse_levels() -> None:
    from coevo.society.eval_command import parse_levels

    assert parse_levels("digits=1-3, steps=2") == {"digits": (1, 3), "steps": (2, 2)}
    for bad in ("digits", "digits=a-b", "digits=3-1", "size=1-2"):
        with pytest.raises(ValueError):
            parse_levels(bad)
