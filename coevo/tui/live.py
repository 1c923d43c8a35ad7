"""`coevo run` on a terminal: the society runs in a worker thread with its own event loop, and the
app follows it from the main thread through the journal, exactly as `coevo watch` follows a run of
another process (one read path, so what the screen shows is what the database holds).

The app opens with the run's first event, so a bad run directory or an engine that cannot start
is reported as plain text before any screen is drawn. Quitting while the run goes on (after a
confirmation) cancels it, as Ctrl+C does without the UI; `coevo run --resume` continues it. While
the app is on screen, log records go to `coevo.log` in the run directory instead of the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from coevo.memory.store import Store
from coevo.messages import Event
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig
from coevo.society.session import RunOutcome, memory_url, run_id_for
from coevo.tui.source import RunTarget

LOG_NAME = "coevo.log"
Start = Callable[[EventBus], Awaitable[RunOutcome]]


class SocietyThread(threading.Thread):
    """Runs `start(bus)` on an event loop of its own; `begun` is set by the run's first event (or
    its end, whichever comes first)."""

    def __init__(self, start: Start) -> None:
        super().__init__(name="coevo-society", daemon=True)
        self._start = start
        self.begun = threading.Event()
        self.outcome: RunOutcome | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[RunOutcome] | None = None
        self._stopped = False

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        bus = EventBus()

        def first(_event: Event) -> None:
            self.begun.set()

        bus.listen(first)
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(self._start(bus))
        if self._stopped:  # stopped before the task existed
            self._task.cancel()
        try:
            self.outcome = await self._task
        except BaseException as exc:  # handed to the main thread, which reports or re-raises it
            self._error = exc
        finally:
            self.begun.set()

    @property
    def done(self) -> bool:
        return not self.is_alive()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stop(self) -> None:
        """Cancel the run (its cleanup — engines, status — runs in its own thread)."""
        self._stopped = True
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Send what logging would print on the terminal to `path` while the app owns the screen."""
    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    moved: list[tuple[logging.Logger, logging.Handler, logging.FileHandler]] = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and handler.stream in terminal:
                replacement = logging.FileHandler(path, delay=True)
                replacement.setLevel(handler.level)
                replacement.setFormatter(handler.formatter)
                logger.removeHandler(handler)
                logger.addHandler(replacement)
                moved.append((logger, handler, replacement))
    try:
        yield
    finally:
        for logger, handler, replacement in moved:
            logger.removeHandler(replacement)
            replacement.close()
            logger.addHandler(handler)


def run_with_tui(config: SocietyConfig, run_dir: Path, start: Start) -> RunOutcome:
    """The `coevo run` front end on a terminal (see the module docstring)."""
    from coevo.tui.app import CoevoApp

    society = SocietyThread(start)
    society.start()
    print(f"run directory: {run_dir} (the UI opens with the run's first event)", file=sys.stderr)
    try:
        while not society.begun.wait(0.2):
            pass
        if society.error is None:
            target = RunTarget(Store(memory_url(config, run_dir)), run_id_for(run_dir), run_dir)
            try:
                with log_to_file(run_dir / LOG_NAME):
                    CoevoApp(target, live=society).run()
            finally:
                target.close()
    finally:
        if society.is_alive():
            society.stop()  # the app was quit mid-run (confirmed), or failed, or Ctrl+C came early
        society.join()
    if isinstance(society.error, asyncio.CancelledError):
        print(f"run stopped; continue it with: coevo run --resume {run_dir}", file=sys.stderr)
        raise KeyboardInterrupt
    if society.error is not None:
        raise society.error
    assert society.outcome is not None
    return society.outcome
