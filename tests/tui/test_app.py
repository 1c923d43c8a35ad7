"""The app driven by Textual's Pilot: every panel and its keys, the stream's filters, follow mode and
paging, a message's detail, liveness, hostile model output, and `coevo run`'s UI stopping its run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable, Select, TabbedContent

from coevo.messages import AttemptGraded, ProblemPosed, RoundStarted, SolutionSubmitted
from coevo.tui.app import CoevoApp, ConfirmQuit, HelpScreen
from coevo.tui.model import MessageFilter
from coevo.tui.panels import CurriculumPanel, MessagesPanel
from coevo.tui.source import open_target
from coevo.tui.widgets import StreamView
from tests.society.replay_society import recorded, spawn, wait_for
from tests.tui.conftest import HandMadeRun, screen_lines

SIZE = (160, 48)


def _app(run_dir: Path, **kwargs: object) -> CoevoApp:
    return CoevoApp(open_target(str(run_dir)), poll_interval=0.05, **kwargs)  # type: ignore[arg-type]


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _text(lines: list[str]) -> str:
    return "\n".join(lines)


def _right_pane(lines: list[str]) -> str:
    """The text of the pane right of a vertical rule (a detail view), as one line."""
    return " ".join(" ".join(line.split("│ ", 1)[1] for line in lines if "│ " in line).split())


async def test_keys_switch_panels_and_help_lists_them(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        tabs = app.query_one(TabbedContent)
        for key, panel in (
            ("m", "messages"),
            ("p", "metrics"),
            ("s", "skills"),
            ("c", "curriculum"),
            ("t", "training"),
            ("g", "graph"),
        ):
            await pilot.press(key)
            assert tabs.active == panel
        footer = _text(screen_lines(app)[-1:])
        for key, title in (
            ("g", "Graph"),
            ("m", "Messages"),
            ("p", "Metrics"),
            ("s", "Skills"),
            ("c", "Curriculum"),
            ("t", "Training"),
            ("?", "Help"),
            ("q", "Quit"),
        ):
            assert f"{key} {title}" in footer
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = _text(screen_lines(app))
        assert "f  follow the newest" in shown and "z  cycle the zone" in shown
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")  # a run of another process: quits at once
    assert app.return_code == 0


async def test_graph_shows_agents_edges_counts_and_the_active_agent(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.pause()
        shown = _text(screen_lines(app))
    model = app.model
    assert "solver" in shown and "teacher (procedural)" in shown
    assert "engine  local: replay, replay" in shown and "policy  v3  (trainable)" in shown
    sender = model.active[0] if model.active else ""
    assert f"{sender}  ● active" in shown
    posed = model.edge_counts[("teacher", "solver", "ProblemPosed")]
    assert any("ProblemPosed" in line and line.rstrip().endswith(str(posed)) for line in shown.splitlines())
    assert f"teacher  AttemptGraded     {model.unsent[('teacher', 'AttemptGraded')]}" in shown


async def test_stream_filters_by_keys_and_shows_a_message_in_full(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("m")
        panel = app.query_one(MessagesPanel)
        stream = panel.stream
        assert len(stream.rows) == app.model.events
        # Round: r, type, Enter (back to the stream).
        await pilot.press("r", "1", "enter")
        assert stream.filter.round == 1 and app.focused is stream
        assert all(e.event.round == 1 for e in stream.rows)
        # Agent: a opens its list; the first option is the first agent.
        await pilot.press("a", "enter", "down", "enter")
        await pilot.pause()
        assert stream.filter.agent == "solver"
        # Verdict: x cycles any → correct → incorrect.
        await pilot.press("x", "x")
        assert stream.filter.correct is False
        assert stream.rows and all(app.model.grade_of(e.event).correct is False for e in stream.rows)  # type: ignore[arg-type, union-attr]
        # Search: / and type.
        await pilot.press("slash", *"not sure", "enter")
        assert stream.filter.search == "not sure"
        assert all("not sure" in e.event.response for e in stream.rows)  # type: ignore[union-attr]
        status = _text(screen_lines(app))
        assert "filters: agent solver, round 1, incorrect, search 'not sure'" in status
        # Escape clears every filter.
        await pilot.press("escape")
        assert stream.filter == MessageFilter() and len(stream.rows) == app.model.events
        # Type: set from its list, then the detail of a graded attempt.
        app.query_one("#f-type", Select).value = "SolutionSubmitted"
        await pilot.pause()
        await pilot.press("down")
        await _until(lambda: "extracted answer" in _text(screen_lines(app)))
        entry = stream.highlighted()
        assert entry is not None and isinstance(entry.event, SolutionSubmitted)
        grade = app.model.grade_of(entry.event)
        assert grade is not None
        shown = _text(screen_lines(app))
        assert f"policy: {entry.event.policy_version}" in shown
        assert f"extracted answer {grade.extracted_answer}" in shown
        assert ("grade            correct" if grade.correct else "grade            incorrect") in shown
        assert f"failure          {grade.failure or 'none'}" in shown
        assert entry.event.response in shown and "question" in shown
        assert not stream.follow and "paused (f: follow)" in shown  # reading stops the jumps
        await pilot.press("f")
        assert stream.follow and stream.cursor == 0


async def test_older_events_are_paged_from_the_database(fixed_run: Path) -> None:
    app = _app(fixed_run, window=40)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("m")
        stream = app.query_one(StreamView)
        assert len(stream.rows) == 40 and len(app.model.window) == 40
        newest = [e.row_id for e in stream.rows]
        await pilot.press("end", "down")  # past the oldest row held: the next page comes in
        await _until(lambda: stream.rows[-1].row_id < newest[-1])
        ids = [e.row_id for e in stream.rows]
        # The view holds at most the window: half a page of older rows in, the newest half out.
        assert len(ids) == 40 and ids[:20] == newest[20:] and ids == list(range(ids[0], ids[0] - 40, -1))
        assert stream.highlighted().row_id == newest[-1]  # type: ignore[union-attr]
        assert "paged back, 0 new since (f: back to newest)" in _text(screen_lines(app))
        while stream.older_from != 0:
            before = stream.rows[-1].row_id
            await pilot.press("o")
            await _until(lambda: stream.older_from == 0 or stream.rows[-1].row_id < before)  # noqa: B023
        assert [e.row_id for e in stream.rows] == list(range(40, 0, -1))
        assert "start of run reached" in _text(screen_lines(app))


async def test_follow_mode_shows_new_events_or_keeps_the_screen_still(hand_made: HandMadeRun) -> None:
    hand_made.running()
    hand_made.add(RoundStarted(round=0, episodes=1, sender="scheduler"))
    app = _app(hand_made.run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("m")
        stream = app.query_one(StreamView)
        hand_made.add(
            ProblemPosed(problem_id="p1", question="What is 40 + 2?", sender="teacher", recipients=["solver"])
        )
        await _until(lambda: len(stream.rows) == 2)
        assert stream.highlighted().event.type == "ProblemPosed"  # type: ignore[union-attr]
        assert "What is 40 + 2?" in _text(screen_lines(app)) and "running" in screen_lines(app)[0]
        await pilot.press("f")  # pause: new events arrive above, the highlighted one stays put
        hand_made.add(SolutionSubmitted(problem_id="p1", attempt_index=0, response="42", sender="solver"))
        await _until(lambda: len(stream.rows) == 3)
        assert stream.highlighted().event.type == "ProblemPosed"  # type: ignore[union-attr]
        await pilot.press("f")
        assert stream.highlighted().event.type == "SolutionSubmitted"  # type: ignore[union-attr]
        hand_made.add(
            AttemptGraded(
                problem_id="p1",
                attempt_index=0,
                solver="solver",
                extracted_answer="42",
                correct=True,
                reward=1.0,
                sender="teacher",
            ),
        )
        await _until(lambda: len(stream.rows) == 4)
        assert app.model.grade_of(stream.rows[1].event) is not None  # type: ignore[arg-type]
        assert "provisional" in _text(screen_lines(app))


async def test_a_killed_run_is_shown_interrupted_with_the_resume_command(hand_made: HandMadeRun) -> None:
    hand_made.add(RoundStarted(round=0, episodes=1, sender="scheduler"))
    hand_made.killed()
    app = _app(hand_made.run_dir)
    async with app.run_test(size=SIZE):
        await app.loaded.wait()
        lines = screen_lines(app)
    shown = _text(lines)
    assert "interrupted" in lines[0]
    assert f"Resume it with: coevo run --resume {hand_made.run_dir}" in shown.replace("\n", "")


async def test_model_output_is_shown_as_text_never_as_markup_or_escapes(hand_made: HandMadeRun) -> None:
    hostile = "\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 [bold red]markup[/] [link=http://x]y[/link] \x9b2J"
    hand_made.add(
        SolutionSubmitted(
            problem_id="p1",
            attempt_index=0,
            response=hostile,
            sender="solver",
            recipients=["teacher"],
            policy_version="[b]v9[/b]",
        )
    )
    hand_made.store.set_status(hand_made.run_id, "finished")
    app = _app(hand_made.run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("m")
        await _until(lambda: "response" in _text(screen_lines(app)))
        svg = app.export_screenshot()
        lines = screen_lines(app)
    assert "\x1b" not in svg and "\x07" not in svg and "\x9b" not in svg
    written = "\\x1b[31mRED\\x1b[0m \\x1b]0;pwned\\x07 [bold red]markup[/] [link=http://x]y[/link] \\x9b2J"
    stream_row = next(line for line in lines if "SolutionSubmitted" in line and "│" in line)
    assert "[b]v9[/b]    #0 \\x1b[31mRED\\x1b[0m" in stream_row
    detail = _right_pane(lines)
    assert "policy: [b]v9[/b]" in detail
    assert written in detail  # the whole response, as written (wrapped on screen)


async def test_curriculum_zones_lineage_and_history(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("c")
        panel = app.query_one(CurriculumPanel)
        table = app.query_one("#problems", DataTable)
        assert table.row_count == len(app.committed.problems)  # type: ignore[union-attr]
        await pilot.press("z")
        assert panel.zone == "mastered"
        await pilot.press("z")
        assert panel.zone == "learning" and table.row_count > 0
        assert {table.get_row_at(i)[1].plain for i in range(table.row_count)} == {"learning"}
        refined = next(p for p in app.committed.problems if p.parent_id)  # type: ignore[union-attr]
        table.move_cursor(row=table.get_row_index(refined.problem_id))
        await _until(lambda: f"problem {refined.problem_id}" in _right_pane(screen_lines(app)))
        lines = screen_lines(app)
        assert f"{refined.parent_id} → [{refined.problem_id}]" in _right_pane(lines)
        assert "showing learning (z: zone)" in _text(lines)


async def test_training_runs_their_figures_and_engines(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("t")
        table = app.query_one("#trainings", DataTable)
        assert table.row_count == 3
        assert [table.get_row_at(i)[4].plain for i in range(3)] == ["v0 → v1", "v1 → v2", "v2 → v3"]
        await pilot.press("down")
        await _until(lambda: "train_loss" in _text(screen_lines(app)))
        shown = _text(screen_lines(app))
        assert "adapters/solver/v2" in shown and "local   replay  replay  solver  v3" in shown


async def test_metrics_plot_every_figure(fixed_run: Path) -> None:
    app = _app(fixed_run)
    async with app.run_test(size=SIZE) as pilot:
        await app.loaded.wait()
        await pilot.press("p")
        await pilot.pause()
        shown = _text(screen_lines(app))
    for title in (
        "accuracy and reward",
        "zone sizes",
        "acceptance of refined",
        "tokens per second",
        "training loss",
        "reward margins",
    ):
        assert title in shown and f"{title}: no data yet" not in shown
    assert "round 2: accuracy" in shown


@pytest.mark.slow
async def test_the_ui_of_coevo_run_asks_before_quitting_stops_the_run(tmp_path: Path) -> None:
    # `coevo run`'s UI is this app attached to the process running the society (another process).
    run_dir = tmp_path / "live"
    proc = spawn(run_dir, delay=0.5)
    try:
        await asyncio.to_thread(wait_for, lambda: recorded(run_dir), 60, proc)
        app = CoevoApp(open_target(str(run_dir)), attached_to=proc.pid, poll_interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await app.loaded.wait()
            await _until(lambda: app.model.rounds.get(0) is not None, 60)
            assert "running" in screen_lines(app)[0]
            await pilot.press("q")
            # Until the question is on screen: a key pressed before the modal is pushed would go
            # to the main screen.
            await _until(lambda: isinstance(app.screen, ConfirmQuit))
            assert f"coevo run --resume {run_dir} continues it" in _text(screen_lines(app)).replace("\n", "")
            await pilot.press("n")
            await _until(lambda: not isinstance(app.screen, ConfirmQuit))
            assert proc.poll() is None
            await pilot.press("q")
            await _until(lambda: isinstance(app.screen, ConfirmQuit))
            assert proc.poll() is None, "the run ended before the test could stop it"
            await pilot.press("y")
        assert await asyncio.to_thread(proc.wait, 60) != 0  # stopped by the SIGINT, as Ctrl+C does
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store = open_target(str(run_dir)).store
    assert store.get_run(app.target.run_id).status == "failed"  # type: ignore[union-attr]
    store.close()
