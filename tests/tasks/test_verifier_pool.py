"""The Verifier's worker pool: a stalled grade times out while the rest of its batch completes, a
grade over its memory limit, one whose grader raises and a worker that dies each give an ungraded
Grade with its cause (not a crash, and never a verdict), the pool recovers, and close() leaves no
worker behind.

The misbehaviour comes from `_hooked_grade`, a grader that the workers import from this module (a
test hook: monkeypatching the parent process would not reach them).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time

import psutil
import pytest

from coevo.tasks.answers import Grade, grade
from coevo.tasks.verifier import Verifier

TIMEOUT_S = 1.0
# Starting a replacement worker (a fresh interpreter importing sympy) on a busy 2-core machine.
RESTART_SLACK_S = 20.0


def _hooked_grade(response: str, reference: str, question: str | None) -> Grade:
    """`grade`, except that some responses stall, exhaust memory or kill the worker."""
    if response == "STALL":
        while True:  # a busy loop, as sympy would be: no signal or exception ends it
            pass
    if response == "HOG":
        bytearray(2**30)  # 1 GiB: fine for the machine, twice the worker's limit in the test
    if response == "RLIMIT":
        return Grade(str(resource.getrlimit(resource.RLIMIT_AS)[0]), False, 0.0, None)
    if response == "CRASH":
        os._exit(3)
    if response == "RAISE":
        raise KeyError("a bug in the grader")
    return grade(response, reference, question)


def _sums(n: int) -> list[tuple[str, str, str | None]]:
    return [(f"The answer is {i}.", str(i), None) for i in range(n)]


def _worker_pids(verifier: Verifier) -> set[int]:
    return {w.process.pid for w in verifier._slots if w.process is not None and w.process.pid is not None}


async def test_grades_in_order_with_prechecks() -> None:
    async with Verifier(workers=2) as verifier:
        items = [("", "1", None), *_sums(40), ("x" * 300_000, "1", None), ("\\boxed{9^{9^{9}}}", "1", None)]
        items.insert(20, ("The answer is 7.", "8", "What is 4 + 4?"))
        results = await verifier.grade_many(items)
        failures = [r.failure for r in results]
        assert failures == ["empty"] + [None] * 19 + ["wrong answer"] + [None] * 21 + [
            "too long",
            "too complex",
        ]
        assert [r.extracted for r in results[1:20]] == [str(i) for i in range(19)]
        assert await verifier.grade_many([]) == []
        single = await verifier.grade("\\boxed{\\text{(C)}}", "C")
        assert single.correct


async def test_a_stalled_grade_times_out_and_its_batch_completes() -> None:
    async with Verifier(workers=1, timeout_s=TIMEOUT_S, grader=_hooked_grade) as verifier:
        await verifier.grade("The answer is 1.", "1")  # start the worker outside the timing
        items = [*_sums(5), ("STALL", "1", None), *_sums(5)]
        start = time.perf_counter()
        results = await verifier.grade_many(items)
        elapsed = time.perf_counter() - start
        assert [r.failure for r in results] == [None] * 5 + ["timeout"] + [None] * 5
        assert results[5] == Grade(
            None, False, 0.0, "timeout", f"the grade ran past its {TIMEOUT_S:g} s limit"
        )
        assert [r.graded for r in results] == [True] * 5 + [False] + [True] * 5
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + RESTART_SLACK_S


async def test_many_concurrent_callers_and_a_stall_among_them() -> None:
    async with Verifier(workers=2, timeout_s=TIMEOUT_S, grader=_hooked_grade) as verifier:
        calls = [verifier.grade(f"The answer is {i}.", str(i)) for i in range(30)]
        calls.insert(10, verifier.grade("STALL", "1"))
        results = await asyncio.gather(*calls)
        assert [r.failure for r in results].count("timeout") == 1
        assert results[10].failure == "timeout"
        assert sum(r.correct for r in results) == 30


async def test_memory_limit_errors_and_crash_leave_the_item_ungraded_not_the_pool(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Verifier(workers=1, memory_mb=512, grader=_hooked_grade) as verifier:
        with caplog.at_level(logging.WARNING, logger="coevo.tasks.verifier"):
            results = await verifier.grade_many(
                [*_sums(3), ("HOG", "1", None), ("RAISE", "1", None), ("CRASH", "1", None), *_sums(3)]
            )
        failures = [r.failure for r in results]
        assert failures == [None] * 3 + ["out of memory", "grader error", "grader error"] + [None] * 3
        hog, raised, crash = results[3:6]
        assert not (hog.graded or raised.graded or crash.graded)
        assert hog.detail == "the grade passed the 512 MiB limit"
        # The grader's own traceback is the cause, and it is logged with the attempt.
        assert raised.detail is not None and "KeyError: 'a bug in the grader'" in raised.detail
        assert "_hooked_grade" in raised.detail
        assert crash.detail == "the grading process died (exit code 3)"
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "KeyError: 'a bug in the grader'" in logged and "exit code 3" in logged
        assert logged.count("an attempt is ungraded") == 3
        assert all(r.correct for r in await verifier.grade_many(_sums(10)))  # recovered
        assert (await verifier.grade("RLIMIT", "1")).extracted == str(512 * 2**20)


async def test_recovers_after_a_timeout() -> None:
    async with Verifier(workers=1, timeout_s=TIMEOUT_S, grader=_hooked_grade) as verifier:
        await verifier.grade("The answer is 1.", "1")
        (before,) = _worker_pids(verifier)
        assert (await verifier.grade("STALL", "1")).failure == "timeout"
        assert not psutil.pid_exists(before)  # the stalled worker was killed and reaped
        assert (await verifier.grade("The answer is 2.", "2")).correct
        assert _worker_pids(verifier) and before not in _worker_pids(verifier)


async def test_a_cancelled_grade_leaves_a_working_pool() -> None:
    async with Verifier(workers=1, timeout_s=30.0, grader=_hooked_grade) as verifier:
        await verifier.grade("The answer is 1.", "1")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(verifier.grade("STALL", "1"), 0.5)
        assert (await verifier.grade("The answer is 2.", "2")).correct


async def test_close_leaves_no_child_processes() -> None:
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    verifier = Verifier(workers=2)
    await verifier.grade_many(_sums(4))
    pids = _worker_pids(verifier)
    assert len(pids) == 2 and pids <= {p.pid for p in me.children()}
    await verifier.close()
    assert not any(psutil.pid_exists(pid) for pid in pids)
    # Only multiprocessing's own resource tracker (one per process, shared) may remain.
    left = [p for p in me.children(recursive=True) if p.pid not in before]
    assert all("resource_tracker" in " ".join(p.cmdline()) for p in left)
    assert (await verifier.grade("The answer is 3.", "3")).correct  # usable again: lazy restart
    await verifier.close()


def test_used_from_successive_event_loops() -> None:
    verifier = Verifier(workers=1)
    assert asyncio.run(verifier.grade("The answer is 1.", "1")).correct
    pids = _worker_pids(verifier)
    assert asyncio.run(verifier.grade("The answer is 2.", "2")).correct
    assert _worker_pids(verifier) == pids  # the workers outlive a loop
    asyncio.run(verifier.close())
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        Verifier(workers=0)
    with pytest.raises(ValueError):
        Verifier(timeout_s=0)
