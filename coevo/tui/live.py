"""`coevo run` on a terminal: the society runs in this process exactly as it does without the UI,
and the app runs in a child process on the terminal — `coevo watch` attached to this run — following
it through the journal (one read path, so what the screen shows is what the database holds).

Why a child process: the app parses and draws thousands of events a second, and in the run's own
process it would take the interpreter from the society (measured on the replay society at full
speed: round time doubled). In a process of its own it costs the run only a second database
connection's reads (benchmarks/tui_follow.py measures it).

The app opens with the run's first event, so a bad run directory or an engine that cannot start is
reported as plain text before any screen is drawn. From then on this process's output (logging, and
whatever a library prints) goes to `coevo.log` in the run directory and the terminal is the app's.
Quitting the app while the run goes on (after a confirmation) sends this process SIGINT, which stops
the run as Ctrl+C does without the UI; `coevo run --resume` continues it. When the run is over this
process waits for the app to be quit, then reports as it does without the UI. Should the app exit on
its own mid-run, the terminal comes back and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import termios
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coevo.messages import Event
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig
from coevo.society.logs import LOG_NAME, quiet_terminal
from coevo.society.session import RunOutcome, run_id_for

# What an app that died without cleaning up leaves on: the alternate screen, a hidden cursor,
# mouse reporting and bracketed paste. Written to the terminal before it is handed back.
TERMINAL_RESET = "\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?2004l"
Start = Callable[[EventBus], Awaitable[RunOutcome]]


class AttachedApp:
    """The app in a child process on `terminal` (stdin, stdout, stderr descriptors), opened by the
    run's first event; while it is open, this process's stdout and stderr go to the run's log."""

    def __init__(self, run_dir: Path, terminal: tuple[int, int, int] = (0, 1, 2)) -> None:
        self.run_dir = run_dir
        self.terminal = terminal
        self.child: subprocess.Popen[bytes] | None = None
        self._saved: tuple[int, int] | None = None  # this process's own stdout and stderr
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._closing = False
        self._tty_modes: list[Any] | None = None  # the terminal's modes before the app set its own
        self._tty_out: int | None = None  # the terminal's output, kept for a reset

    def __call__(self, _event: Event) -> None:
        if self.child is None:
            self.open()

    def open(self) -> None:
        command = [
            sys.executable, "-m", "coevo.cli", "watch", str(self.run_dir),
            "--run-id", run_id_for(self.run_dir), "--attached", str(os.getpid()),
        ]  # fmt: skip
        stdin, stdout, stderr = self.terminal
        if os.isatty(stdin):
            self._tty_modes = termios.tcgetattr(stdin)
        self._tty_out = os.dup(stdout)  # stdout may be this process's, which goes to the log below
        sys.stdout.flush()
        sys.stderr.flush()
        self.child = subprocess.Popen(command, stdin=stdin, stdout=stdout, stderr=stderr)
        self._saved = (os.dup(1), os.dup(2))
        log = os.open(self.run_dir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        self._watcher = threading.Thread(target=self._watch, name="coevo-app", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        assert self.child is not None
        code = self.child.wait()
        if code != 0:
            self._reset_terminal()
        self._give_back_terminal()
        if code != 0 and not self._closing:
            print(
                f"the UI exited (code {code}); the run goes on. Ctrl+C stops it; "
                f"coevo watch {self.run_dir} opens the UI again",
                file=sys.stderr,
            )

    def _reset_terminal(self) -> None:
        """Undo what a killed app left on the terminal (raw mode, alternate screen, ...)."""
        with contextlib.suppress(OSError, termios.error):
            if self._tty_modes is not None:
                termios.tcsetattr(self.terminal[0], termios.TCSADRAIN, self._tty_modes)
            if self._tty_out is not None and os.isatty(self._tty_out):
                os.write(self._tty_out, TERMINAL_RESET.encode())

    def _give_back_terminal(self) -> None:
        with self._lock:
            if self._saved is None:
                return
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, saved in zip((1, 2), self._saved, strict=True):
                os.dup2(saved, fd)
                os.close(saved)
            self._saved = None
            if self._tty_out is not None:
                os.close(self._tty_out)
                self._tty_out = None

    def close(self) -> None:
        """Wait for the app to be quit (the run is over, or stopping), then take the terminal back."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.join()
        self._give_back_terminal()


def run_with_tui(config: SocietyConfig, run_dir: Path, start: Start) -> RunOutcome:
    """The `coevo run` front end on a terminal (see the module docstring)."""
    app = AttachedApp(run_dir)
    print(f"run directory: {run_dir} (the UI opens with the run's first event)", file=sys.stderr)

    async def main() -> RunOutcome:
        bus = EventBus()
        bus.listen(app)
        return await start(bus)

    # Quitting the app mid-run stops the run with SIGINT. A process started with SIGINT ignored
    # (inherited: a background job of a script, or a parent that ignores it) would run on after
    # the user was told it stops, so the run takes SIGINT as Ctrl+C here whatever it inherited.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with quiet_terminal():  # the app owns the terminal; coevo's records go to the run's log
            outcome = asyncio.run(main())
    except KeyboardInterrupt:
        app.close()
        print(f"run stopped; continue it with: coevo run --resume {run_dir}", file=sys.stderr)
        raise
    except BaseException:
        app.close()  # the app shows the run as failed until it is quit; then the error is reported
        raise
    # Over: a late quit from the app must not turn a finished run into an interrupted command.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        app.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    return outcome
