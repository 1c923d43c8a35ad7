"""Fixtures of the TUI tests: the fixed replay run (tests/tui/fixture_run.py), built once per session,
and small hand-made runs for what a replay cannot show (hostile model output, a dead process)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from textual.app import App

from coevo.memory.batch import event_row
from coevo.memory.store import Store, sqlite_url
from coevo.messages import Event
from tests.society.replay_society import replay_config
from tests.tui.fixture_run import build

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed replay run's directory (read-only: copy it to change anything)."""
    return build(tmp_path_factory.mktemp("fixed") / "run")


class HandMadeRun:
    """A run written event by event through the Store API (as the journal writes them)."""

    AGENTS: ClassVar[list[dict[str, object]]] = [
        {"name": "teacher", "role": "teacher", "engine": "procedural"},
        {"name": "solver", "role": "solver", "engine": "local", "model": "replay", "trainable": True},
    ]

    def __init__(self, run_dir: Path, run_id: str = "hand-made") -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = run_dir
        self.run_id = run_id
        self.store = Store(sqlite_url(run_dir))
        config = replay_config().model_dump_json()
        self.store.create_run("hand-made", config, 0, self.AGENTS, run_id=run_id)
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)

    def add(self, *events: Event, provisional: bool = True) -> None:
        for event in events:
            event.run_id = self.run_id
            event.created_at = self.clock
            self.clock += timedelta(milliseconds=10)
        self.store.append_events(
            self.run_id, [event_row(self.run_id, e, provisional=provisional) for e in events]
        )

    def running(self) -> None:
        """Mark the run as running in this process (alive, beating)."""
        self.store.set_status(self.run_id, "running")

    def killed(self) -> None:
        """Mark the run as running in a process that is gone (as after kill -9)."""
        store = f"Store({self.store.url!r})"
        code = f"from coevo.memory.store import Store; {store}.set_status({self.run_id!r}, 'running')"
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.fixture
def hand_made(tmp_path: Path) -> Iterator[HandMadeRun]:
    run = HandMadeRun(tmp_path / "hand")
    yield run
    run.store.close()


def screen_lines(app: App[None]) -> list[str]:
    """What the app's screen shows, line by line (from its SVG screenshot, as a person would see it):
    each text span of the SVG put back at its column."""
    spans = [
        (float(x), float(y), float(length), html.unescape(text).replace("\xa0", " "))
        for x, y, length, text in re.findall(
            r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)" textLength="([\d.]+)"[^>]*>(.*?)</text>',
            app.export_screenshot(),
        )
    ]
    cell = spans[0][2] / len(spans[0][3])  # every cell is as wide as the first span's
    rows: dict[float, dict[int, str]] = {}
    for x, y, _, text in spans:
        rows.setdefault(y, {})[round(x / cell)] = text
    lines = []
    for _, row in sorted(rows.items()):
        line = ""
        for column, text in sorted(row.items()):
            line = line.ljust(column) + text
        lines.append(line.rstrip())
    return lines
