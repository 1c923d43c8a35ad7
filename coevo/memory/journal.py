"""The live journal of a run, and the one documented way to read it from anywhere.

Writing (`JournalWriter`, used by the runtime): every event is queued when it happens and written
by a background task in small batches (every `interval` seconds or `max_batch` events), marked
provisional until its round commits; `flush()` is awaited before each round's commit.

Reading (`EventCursor`, used by `coevo show`, the TUI and tests — any process, any time):

    from coevo.memory.journal import EventCursor
    from coevo.memory.store import Store

    cursor = EventCursor(Store("sqlite:///runs/demo/coevo.db"), run_id)
    for entry in cursor.poll():          # everything so far, oldest first
        print(entry.event.type, "(provisional)" if entry.provisional else "")
    async for entry in cursor.follow():  # then new events as they are written, until the run ends
        ...

A provisional entry belongs to a round that has not committed; if the run is killed, resume
deletes it and runs the round again, so a follower should treat it as tentative.

Liveness: a running run's process writes a heartbeat every `HEARTBEAT_S` seconds (`Heartbeat`);
`liveness` tells running from interrupted (process gone, or heartbeat stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coevo.memory.batch import event_row
from coevo.memory.store import Store
from coevo.memory.tables import Run
from coevo.messages import Event

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
# A heartbeat older than this means the process is gone (it beats every HEARTBEAT_S seconds).
STALE_S = 30.0


class JournalWriter:
    """Queues events and writes them in batches from a background task (see module docstring)."""

    def __init__(self, store: Store, run_id: str, *, interval: float = 0.1, max_batch: int = 500) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self.max_batch = max_batch
        self._rows: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def add(self, event: Event) -> None:
        """Queue one event of a round in progress (provisional until the round commits)."""
        if self._error is not None:
            raise self._error
        self._rows.append(event_row(self.run_id, event, provisional=True))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self._rows) >= self.max_batch:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # surfaced on the next add() or flush()
                self._error = exc
                return

    async def flush(self) -> None:
        """Write everything queued so far (awaited before a round commits)."""
        if self._error is not None:
            raise self._error
        async with self._lock:
            rows, self._rows = self._rows, []
            if rows:
                await asyncio.to_thread(self.store.append_events, self.run_id, rows)

    async def close(self) -> None:
        """Stop the background task; anything still queued is dropped (its round never commits)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@dataclass(frozen=True)
class JournalEntry:
    row_id: int
    provisional: bool
    event: Event


class EventCursor:
    """Reads a run's events in stored order from where it last stopped (any process)."""

    def __init__(
        self, store: Store, run_id: str, *, after_id: int = 0, types: Iterable[str] | None = None
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.position = after_id
        self.types = list(types) if types is not None else None

    def poll(self, limit: int = 1000) -> list[JournalEntry]:
        """The next events written since the last poll (at most `limit`)."""
        rows = self.store.event_records(self.run_id, self.position, self.types, limit)
        if rows:
            self.position = rows[-1][0]
        return [JournalEntry(row_id, provisional, event) for row_id, provisional, event in rows]

    async def follow(self, interval: float = 0.2) -> AsyncIterator[JournalEntry]:
        """Every event from the cursor on, as it is written, until the run finishes, fails or its
        process is gone."""
        while True:
            batch = self.poll()
            for entry in batch:
                yield entry
            if batch:
                continue
            run = self.store.get_run(self.run_id)
            if run is None or liveness(run) != "running":
                for entry in self.poll():
                    yield entry
                return
            await asyncio.sleep(interval)


class Heartbeat:
    """Writes the run's heartbeat every `HEARTBEAT_S` seconds while the run's loop is alive."""

    def __init__(self, store: Store, run_id: str, every: float = HEARTBEAT_S) -> None:
        self.store = store
        self.run_id = run_id
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _beat(self) -> None:
        failing: str | None = None  # the error of the last beat, None while beats succeed
        while True:
            await asyncio.sleep(self.every)
            try:
                await asyncio.to_thread(self.store.heartbeat, self.run_id)
            except Exception as exc:  # a busy database must not kill the run, but it is told
                error = f"{type(exc).__name__}: {exc}"
                if failing is None:
                    log.warning("the run's heartbeat failed; it keeps trying", exc_info=True)
                elif error != failing:
                    log.warning("the run's heartbeat fails differently now: %s", error)
                failing = error
            else:
                if failing is not None:
                    log.warning("the run's heartbeat works again (it failed with %s)", failing)
                failing = None


def liveness(run: Run, now: datetime | None = None) -> str:
    """The run's status, with "running" turned into "interrupted" when its process is gone:
    a dead pid on this host, or no heartbeat for `STALE_S` seconds."""
    if run.status != "running":
        return run.status
    if run.host == socket.gethostname() and run.pid is not None and not _pid_alive(run.pid):
        return "interrupted"
    beat = run.heartbeat_at
    if beat is None:
        return "interrupted"
    if beat.tzinfo is None:  # SQLite hands timestamps back naive; they were written in UTC
        beat = beat.replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - beat).total_seconds()
    return "interrupted" if age > STALE_S else "running"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True
