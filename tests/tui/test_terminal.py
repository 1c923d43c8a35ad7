"""The UI in a real terminal (tmux: send-keys to type, capture-pane to read the screen): `coevo watch`
following a replay society that runs in another process, and `coevo run`'s front end stopping a
run it started. Skipped, with the reason, where tmux is not installed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coevo.memory.store import Store
from coevo.society.session import run_id_for
from tests.society.replay_society import recorded, spawn, wait_for

ROOT = Path(__file__).resolve().parents[2]
LIVE = ROOT / "tests" / "tui" / "live_run.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]


class Tmux:
    """A private tmux server (its own socket) with one 160×48 session."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, env=self.env
        )

    def start(self, command: list[str]) -> None:
        shell = " ".join(f"'{part}'" for part in command)
        self.tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "48", shell)
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t").stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, *texts: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.2)
        pytest.fail(f"{texts} never all appeared; the screen:\n{screen}")

    def exit_status(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.tmux("display-message", "-p", "-t", "t", "#{pane_dead}:#{pane_dead_status}").stdout
            dead, _, code = status.strip().partition(":")
            if dead == "1" and code:
                return int(code)
            time.sleep(0.2)
        pytest.fail(f"the program did not exit; the screen:\n{self.screen()}")

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(tmp_path)
    yield terminal
    terminal.close()


def _events(screen: str) -> int:
    found = re.search(r"([\d,]+) events", screen)
    assert found, screen
    return int(found.group(1).replace(",", ""))


def test_coevo_watch_follows_a_run_of_another_process(tmux: Tmux, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "live"
    society = spawn(run_dir, delay=0.1)
    try:
        wait_for(lambda: recorded(run_dir), 120, society)
        tmux.start([sys.executable, "-m", "coevo.cli", "watch", str(run_dir)])
        screen = tmux.wait_for("running", "teacher (procedural)", "edges (messages carried)")
        assert "solver" in screen and "g Graph" in screen
        tmux.keys("m")
        first = tmux.wait_for("SolutionSubmitted", "following newest")
        time.sleep(2)
        later = tmux.screen()
        assert _events(later) > _events(first), "the screen did not follow the run"
        tmux.keys("p")
        tmux.wait_for("accuracy and reward", "tokens per second")
        tmux.keys("q")
        assert tmux.exit_status() == 0
    finally:
        society.kill()
        society.wait(timeout=30)


def test_coevo_run_front_end_stops_its_run_when_asked(tmux: Tmux, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "mine"
    tmux.start([sys.executable, str(LIVE), str(run_dir), "0.05"])
    tmux.wait_for("running", "edges (messages carried)", timeout=120)
    tmux.keys("q")
    tmux.wait_for("Quitting stops it", f"coevo run --resume {run_dir}")
    tmux.keys("y")
    assert tmux.exit_status() == 130
    assert f"run stopped; continue it with: coevo run --resume {run_dir}" in tmux.screen().replace("\n", "")
    store = Store.for_run_dir(run_dir)
    assert store.get_run(run_id_for(run_dir)).status == "failed"  # type: ignore[union-attr]
    store.close()


def test_coevo_run_front_end_waits_for_quit_when_the_run_is_over(tmux: Tmux, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "short"
    tmux.start([sys.executable, str(LIVE), str(run_dir), "0", "3"])
    screen = tmux.wait_for("finished", "round 3/3", "edges (messages carried)", timeout=120)
    # What the run's process printed while the app was up went to its log, not over the app.
    assert "mid-run" not in screen
    assert "a library's output, mid-run" in (run_dir / "coevo.log").read_text()
    tmux.keys("q")  # the run is over: no question asked
    assert tmux.exit_status() == 0
    assert "run stopped" not in tmux.screen()


def test_the_run_goes_on_when_its_app_dies(tmux: Tmux, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "orphan"
    tmux.start([sys.executable, str(LIVE), str(run_dir), "0.05", "20"])
    tmux.wait_for("running", "edges (messages carried)", timeout=120)
    # The app is the run process's child: a process the app forks for a moment (it has the same
    # command line until it execs) must not be taken for it.
    run = subprocess.run(["pgrep", "-f", f"live_run.py {run_dir}"], capture_output=True, text=True)
    app = subprocess.run(
        ["pgrep", "-P", run.stdout.strip(), "-f", f"watch {run_dir} .*--attached"],
        capture_output=True,
        text=True,
    )
    pids = [int(pid) for pid in app.stdout.split()]
    assert len(pids) == 1, app
    os.kill(pids[0], signal.SIGKILL)
    tmux.wait_for("the UI exited", "the run goes on", f"coevo watch {run_dir}")
    # The terminal was handed back as it was: off the alternate screen, cursor shown.
    modes = tmux.tmux("display-message", "-p", "-t", "t", "#{alternate_on}:#{cursor_flag}").stdout.strip()
    assert modes == "0:1", modes
    assert tmux.exit_status(timeout=120) == 0
    store = Store.for_run_dir(run_dir)
    assert store.get_run(run_id_for(run_dir)).status == "finished"  # type: ignore[union-attr]
    store.close()
