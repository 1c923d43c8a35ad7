"""Evaluation: accuracy of a policy on a problem set, with a Wilson 95% interval and a per-skill
table. Requests go through the `Engine` protocol concurrently (the engine batches them);
grading runs in the worker processes of a `Verifier` (the caller's, or one the evaluation starts
and closes), so the event loop never blocks on sympy and no output can stall the evaluation.

With `params.n > 1` every sample is graded and counted as one attempt (mean accuracy over
samples, i.e. pass@1 estimated from n samples). An answer the verifier could not grade (its time
limit, its memory limit, an error in the grader) is not counted at all: accuracy is over the
graded answers, and the ungraded ones are counted beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from coevo.engines.base import ChatMessage, Engine, GenerationRequest, SamplingParams
from coevo.messages import accuracy_text
from coevo.tasks.problem import Problem
from coevo.tasks.prompts import solver_messages
from coevo.tasks.verifier import Grader, Verifier

UNLABELLED = "(no skill)"

PromptFn = Callable[[str], Sequence[ChatMessage]]


@dataclass(frozen=True)
class EvalRecord:
    problem_id: str
    skills: list[str]
    reference: str
    response: str
    extracted: str | None
    correct: bool
    failure: str | None
    finish_reason: str
    graded: bool = True


@dataclass
class EvalReport:
    # Graded answers, of which `correct` were right; `ungraded` answers got no verdict.
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    # skill → (graded attempts, accuracy)
    per_skill: dict[str, tuple[int, float]]
    records: list[EvalRecord] = field(default_factory=list)
    ungraded: int = 0

    def to_dict(self, with_records: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["per_skill"] = {s: {"n": n, "accuracy": acc} for s, (n, acc) in self.per_skill.items()}
        if not with_records:
            del out["records"]
        return out


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(records: Sequence[EvalRecord]) -> EvalReport:
    graded = [r for r in records if r.graded]
    correct = sum(r.correct for r in graded)
    low, high = wilson_interval(correct, len(graded))
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in graded:
        for skill in record.skills or [UNLABELLED]:
            tally[skill][0] += 1
            tally[skill][1] += record.correct
    per_skill = {s: (n, c / n) for s, (n, c) in sorted(tally.items())}
    accuracy = correct / len(graded) if graded else 0.0
    return EvalReport(
        len(graded), correct, accuracy, low, high, per_skill, list(records), len(records) - len(graded)
    )


async def evaluate(
    engine: Engine,
    problems: Sequence[Problem],
    *,
    adapter: str | None = None,
    params: SamplingParams | None = None,
    prompt: PromptFn = solver_messages,
    concurrency: int = 64,
    progress: bool = True,
    verifier: Grader | None = None,
) -> EvalReport:
    """Generate an answer to every problem and grade it against the reference.

    `params` defaults to greedy decoding with 256 new tokens; `concurrency` bounds the requests
    in flight; `progress` prints a line to stderr about every tenth of the way; without a
    `verifier` the evaluation starts its own and closes it at the end.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    async with contextlib.AsyncExitStack() as stack:
        grader = verifier if verifier is not None else await stack.enter_async_context(Verifier())
        return await _evaluate(engine, problems, adapter, params, prompt, concurrency, progress, grader)


async def _evaluate(
    engine: Engine,
    problems: Sequence[Problem],
    adapter: str | None,
    params: SamplingParams | None,
    prompt: PromptFn,
    concurrency: int,
    progress: bool,
    grader: Grader,
) -> EvalReport:
    params = params or SamplingParams(temperature=0.0, max_tokens=256)
    gate = asyncio.Semaphore(concurrency)
    done = 0
    step = max(1, len(problems) // 10)
    started = time.perf_counter()

    async def one(problem: Problem) -> list[EvalRecord]:
        nonlocal done
        request = GenerationRequest(messages=list(prompt(problem.question)), params=params, adapter=adapter)
        async with gate:
            (result,) = await engine.generate([request])
        grades = await grader.grade_many(
            [(c.text, problem.answer, problem.question) for c in result.completions]
        )
        done += 1
        if progress and (done % step == 0 or done == len(problems)):
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (len(problems) - done)
            print(
                f"eval: {done}/{len(problems)} problems, {elapsed:.0f} s, ETA {eta:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        return [
            EvalRecord(
                problem.id,
                list(problem.skills),
                problem.answer,
                c.text,
                g.extracted,
                g.correct,
                g.failure,
                c.finish_reason,
                g.graded,
            )
            for c, g in zip(result.completions, grades, strict=True)
        ]

    batches = await asyncio.gather(*(one(p) for p in problems))
    return summarize([record for batch in batches for record in batch])


def format_report(report: EvalReport, title: str | None = None) -> str:
    """A plain-text table: overall accuracy with its interval, then one line per skill."""
    lines = [title] if title else []
    lines.append(
        f"{accuracy_text(report.correct, report.n, report.ungraded)}, "
        f"95% CI [{report.ci_low:.1%}, {report.ci_high:.1%}]"
    )
    if report.per_skill:
        width = max(len("skill"), *(len(s) for s in report.per_skill))
        lines.append(f"{'skill':<{width}}  {'n':>5}  {'accuracy':>8}")
        for skill, (n, acc) in report.per_skill.items():
            lines.append(f"{skill:<{width}}  {n:>5}  {acc:>8.1%}")
    return "\n".join(lines)
