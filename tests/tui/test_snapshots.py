"""SVG snapshots of every panel on the fixed replay run (pytest-textual-snapshot). The run's every
volatile value is fixed (tests/tui/fixture_run.py), so a difference is a change in what the screen
shows. After an intended change: `pytest tests/tui/test_snapshots.py --snapshot-update`, then look
at the new SVGs in tests/tui/__snapshots__/ before committing them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from coevo.tui.app import CoevoApp
from coevo.tui.source import open_target
from coevo.tui.widgets import StreamView
from tests.tui.conftest import screen_lines

SIZE = (160, 48)


def _text(app: CoevoApp) -> str:
    return "\n".join(screen_lines(app))


def _row_key(app: CoevoApp, table_id: str) -> str:
    table = app.query_one(table_id, DataTable)
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


def _messages_ready(app: CoevoApp) -> bool:
    entry = app.query_one(StreamView).highlighted()
    return entry is not None and f"#{entry.row_id}  round" in _text(app)


def _training_ready(app: CoevoApp) -> bool:
    chosen = _row_key(app, "#trainings")
    run = next(r for r in app.committed.trainings if str(r.id) == chosen)  # type: ignore[union-attr]
    return f"({run.trainer}), round {run.round}" in _text(app)


# (panel, keys, when the screen is drawn)
SCREENS: list[tuple[str, list[str], Callable[[CoevoApp], bool]]] = [
    ("graph", [], lambda app: "edges (messages carried)" in _text(app)),
    ("messages", ["m", *["down"] * 5], _messages_ready),
    ("metrics", ["p"], lambda app: "round 2: accuracy" in _text(app)),
    ("skills", ["s"], lambda app: "legend" in _text(app)),
    (
        "curriculum",
        ["c", "down", "down"],
        lambda app: f"problem    {_row_key(app, '#problems')}" in _text(app),
    ),
    ("training", ["t", "down"], _training_ready),
    ("help", ["question_mark"], lambda app: "this help" in _text(app)),
]


async def _settled(pilot: Pilot[None]) -> None:
    """Wait until the screen has stopped changing (the same text on three looks in a row)."""
    assert isinstance(pilot.app, CoevoApp)
    seen: list[str] = []
    for _ in range(200):
        await pilot.pause()
        seen.append(_text(pilot.app))
        if len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]:
            return
        await asyncio.sleep(0.05)


def _driver(keys: list[str], ready: Callable[[CoevoApp], bool]) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, CoevoApp)
        await app.loaded.wait()
        # The panel's key first; the moves only once the panel has drawn its tables (a table
        # filled after a move resets its cursor, and how soon it fills depends on the machine).
        panel_key, *moves = keys or [""]
        if panel_key:
            await pilot.press(panel_key)
        await _settled(pilot)
        if moves:
            await pilot.press(*moves)
        for _ in range(200):
            await pilot.pause()
            if ready(app):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the screen after {keys} never got ready")

    return run_before


@pytest.mark.parametrize(("panel", "keys", "ready"), SCREENS, ids=[s[0] for s in SCREENS])
def test_panel_snapshot(
    panel: str,
    keys: list[str],
    ready: Callable[[CoevoApp], bool],
    fixed_run: Path,
    snap_compare: Callable[..., bool],
) -> None:
    app = CoevoApp(open_target(str(fixed_run)))
    assert snap_compare(app, terminal_size=SIZE, run_before=_driver(keys, ready))
