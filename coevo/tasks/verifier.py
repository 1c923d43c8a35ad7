"""`Verifier`: grades answers in worker processes that can be killed, so that no model output can
stall or crash the caller (a round of a society, an evaluation).

Every grade runs in a worker process started with multiprocessing's "spawn" context (never fork:
the parent has threads, and vLLM). Each worker runs with an address-space limit (RLIMIT_AS,
`memory_mb`) and every grade with a wall-clock limit (`timeout_s`): a worker that stalls is killed
and replaced, and its grade becomes `Grade(failure="timeout")`; a grade that runs out of memory is
`"out of memory"`, and one whose grader raises, or whose worker dies, is `"grader error"`. None of
these is a verdict (`Grade.graded` is False): each carries its cause in `Grade.detail` (the
grader's traceback, the limit it passed, the worker's exit code) and is logged with it, so that
the caller can keep the attempt out of accuracies and training labels. The caller always gets one
Grade per item.

Items travel to a worker in batches (one message per batch keeps IPC small) and grades come back one
by one as they finish, so the time limit applies to each grade, and when a worker stalls, the item
it was grading is known: only that item gets "timeout", the ones it finished keep their grades, and
the rest of the batch goes to a fresh worker.

Workers start on first use (importing sympy takes a second or two; a worker warms up and reports
ready before it is given work, so start-up never counts against a grade's time limit). A Verifier
can be used from many asyncio tasks of one event loop at a time; when it is first used from another
loop, its workers are kept and its queue rebuilt. `close()` ends the workers after the grades in
flight (a grade still waiting for a worker then raises VerifierError); a later grade starts new ones.

"spawn" starts each worker as a fresh interpreter that imports the program's main module, so a
script that grades must keep its top-level code under `if __name__ == "__main__":` (as with vLLM).
POSIX only (RLIMIT_AS, and the event loop watches the workers' pipes).

Whoever creates a Verifier owns its workers and closes it (`async with Verifier() as v:`); a run
and an evaluation each start their own. The workers are daemon processes, so they also end with
the process.

The cheap checks of `coevo.tasks.answers` (response length, power towers, huge exponents, ...)
keep normal grades far below the time limit; the limit is the last line of defence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import resource
import signal
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Protocol

from coevo.tasks.answers import MAX_QUESTION_CHARS, Grade, failed, grade, precheck

log = logging.getLogger(__name__)

Item = tuple[str, str, str | None]
GradeFn = Callable[[str, str, str | None], Grade]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_MB = 1024
# Most items per message to a worker.
MAX_BATCH = 32
# A worker imports sympy and math-verify before it reports ready: seconds on a loaded machine.
START_TIMEOUT_S = 120.0

_READY = "ready"
_DEAD = object()
# Graded once in each new worker, so the first real grade does not pay for lazy imports.
_WARMUP: Item = ("so \\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", None)


class Grader(Protocol):
    """What grades attempts: a Verifier, or a test's stand-in. One Grade per (response, reference
    answer, question) item, in order."""

    async def grade_many(self, items: Sequence[Item]) -> list[Grade]: ...


class VerifierError(RuntimeError):
    """A grading worker could not be started, or the Verifier was closed while a grade waited."""


def _serve(conn: Connection, memory_mb: int, grader: GradeFn) -> None:
    """A worker's main loop: grade each item of each batch, sending each Grade as soon as it is done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which ends the workers
    grade(*_WARMUP)  # imports sympy and math-verify's parser
    limit = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    conn.send(_READY)
    while True:
        try:
            batch = conn.recv()
        except EOFError:  # the parent is gone
            return
        if batch is None:
            return
        for item in batch:
            try:
                result = grader(*item)
            except MemoryError:  # over RLIMIT_AS: the allocation failed, and its memory is freed
                result = failed("out of memory", detail=f"the grade passed the {memory_mb} MiB limit")
            except Exception:  # a grading bug leaves its item ungraded, not the worker dead
                result = failed("grader error", detail=traceback.format_exc(limit=8))
            conn.send(result)


class _Worker:
    """One grading process and the parent's end of its pipe; (re)started on demand."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    async def ensure_started(self) -> None:
        if self.alive:
            return
        self.stop()
        v = self._verifier
        parent, child = v._context.Pipe()
        process = v._context.Process(
            target=_serve, args=(child, v.memory_mb, v.grader), name="coevo-verifier", daemon=True
        )
        self.process, self.conn = process, parent
        try:
            await asyncio.to_thread(process.start)
        finally:
            child.close()  # the child holds its own copy; EOF must reach us when it dies
        received, failure = await self._receive(1, START_TIMEOUT_S)
        if failure is not None or received != [_READY]:
            self.stop()
            raise VerifierError(f"a grading worker did not start ({failure or received})")

    async def run(self, items: Sequence[Item], timeout_s: float) -> tuple[list[Grade], Grade | None]:
        """Grade items in order: the grades received, and the ungraded Grade of the next item when
        the worker stalled or died on it (None when all were graded)."""
        assert self.conn is not None
        try:
            await asyncio.to_thread(self.conn.send, list(items))
        except (OSError, ValueError):  # the worker died since its last batch
            return [], failed("grader error", detail=f"the grading process died ({self._exit()})")
        received, failure = await self._receive(len(items), timeout_s)
        if failure == "timeout":
            return received, failed("timeout", detail=f"the grade ran past its {timeout_s:g} s limit")
        if failure is not None:
            return received, failed("grader error", detail=f"the grading process died ({self._exit()})")
        return received, None

    def _exit(self) -> str:
        if self.process is not None:
            self.process.join(timeout=0.5)  # its pipe closed: it is exiting, if not yet reaped
        code = None if self.process is None else self.process.exitcode
        if code is None:
            return "no exit code yet"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    async def _receive(self, count: int, timeout_s: float) -> tuple[list[Any], str | None]:
        """Up to `count` messages, each within timeout_s of the previous one (of the call, for the
        first); stops early on a timeout or a dead worker."""
        assert self.conn is not None
        conn, loop = self.conn, asyncio.get_running_loop()
        inbox: asyncio.Queue[object] = asyncio.Queue()

        def readable() -> None:
            try:
                while conn.poll():
                    inbox.put_nowait(conn.recv())
            except (EOFError, OSError):
                loop.remove_reader(conn.fileno())
                inbox.put_nowait(_DEAD)

        loop.add_reader(conn.fileno(), readable)
        received: list[Any] = []
        try:
            while len(received) < count:
                try:
                    message = await asyncio.wait_for(inbox.get(), timeout_s)
                except TimeoutError:
                    return received, "timeout"
                if message is _DEAD:
                    return received, "grader error"
                received.append(message)
            return received, None
        finally:
            if not conn.closed:
                loop.remove_reader(conn.fileno())

    def stop(self) -> None:
        """Kill the process (it holds no state worth a graceful exit) and reap it."""
        if self.process is not None and self.process.pid is not None:
            self.process.kill()
            self.process.join(timeout=10)
            if self.process.exitcode is not None:
                self.process.close()
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None


class Verifier:
    """Grades (response, reference, question) items in killable, memory-limited worker processes."""

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        *,
        grader: GradeFn = grade,
    ) -> None:
        """`grader` replaces `coevo.tasks.answers.grade` in the workers (tests use it to stall or
        exhaust a worker); it must be a module-level function, so that it can be sent to them."""
        if workers < 1 or timeout_s <= 0 or memory_mb < 64:
            raise ValueError(
                f"need workers >= 1, timeout_s > 0, memory_mb >= 64; got {workers}, {timeout_s}, {memory_mb}"
            )
        self.workers, self.timeout_s, self.memory_mb, self.grader = workers, timeout_s, memory_mb, grader
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def grade(self, response: str, reference: str, question: str | None = None) -> Grade:
        (result,) = await self.grade_many([(response, reference, question)])
        return result

    async def grade_many(self, items: Sequence[Item]) -> list[Grade]:
        """One Grade per item, in order. Items are split into batches, one per worker at a time."""
        early = [precheck(response) for response, _, _ in items]  # empty or too long: no IPC
        todo = [
            (response, reference, None if question is None else question[:MAX_QUESTION_CHARS])
            for (response, reference, question), grade in zip(items, early, strict=True)
            if grade is None
        ]
        size = max(1, min(MAX_BATCH, math.ceil(len(todo) / self.workers)))
        batches = await asyncio.gather(
            *(self._grade_batch(todo[i : i + size]) for i in range(0, len(todo), size))
        )
        graded = iter([result for batch in batches for result in batch])  # in the order of `todo`
        return [grade if grade is not None else next(graded) for grade in early]

    async def _grade_batch(self, items: list[Item]) -> list[Grade]:
        results: list[Grade] = []
        while len(results) < len(items):
            pending = items[len(results) :]
            worker = await self._acquire()
            try:
                grades, failure = await worker.run(pending, self.timeout_s)
                if failure is not None:
                    # Stalled or dead: the exit code is read before the kill, and the next use starts
                    # a fresh process.
                    worker.stop()
            except BaseException:  # cancelled mid-batch: its pipe may still carry our results
                worker.stop()
                raise
            finally:
                self._pool().put_nowait(worker)
            results += grades
            if failure is not None:
                results.append(failure)  # the item it was grading; the rest go on
        for (response, _, _), result in zip(items, results, strict=True):
            if not result.graded:
                log.warning(
                    "an attempt is ungraded (%s): %s; response starts %r",
                    result.failure,
                    result.detail,
                    response[:80],
                )
        return results

    def _pool(self) -> asyncio.Queue[_Worker]:
        """The idle workers, as a queue of the running loop (rebuilt when the loop changes: between
        loops every worker is idle, since a cancelled batch stops its worker)."""
        loop = asyncio.get_running_loop()
        if self._idle is None or self._loop is not loop:
            if not self._slots:
                self._slots = [_Worker(self) for _ in range(self.workers)]
            self._idle, self._loop = asyncio.Queue(), loop
            for worker in self._slots:
                self._idle.put_nowait(worker)
        return self._idle

    async def _acquire(self) -> _Worker:
        pool = self._pool()
        worker = await pool.get()
        if pool is not self._idle:  # closed while we waited: wake the next waiter, and give up
            pool.put_nowait(worker)
            raise VerifierError("the Verifier was closed while grading")
        try:
            await worker.ensure_started()
        except BaseException:
            self._pool().put_nowait(worker)
            raise
        return worker

    async def close(self) -> None:
        """Wait for grades in flight, then end every worker. The Verifier stays usable: a later grade
        starts new workers."""
        pool, slots = self._idle, self._slots
        if pool is not None and self._loop is asyncio.get_running_loop():
            for _ in slots:
                await pool.get()
        for worker in slots:
            worker.stop()
        self._slots, self._idle, self._loop = [], None, None
        if pool is not None and slots:
            pool.put_nowait(slots[0])  # grades that were waiting for a worker fail, instead of hanging

    async def __aenter__(self) -> Verifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
