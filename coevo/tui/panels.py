"""The TUI's panels, one per view of a run: graph, messages, metrics, skills, curriculum, training.

Each panel draws from what the app holds — the run model (coevo.tui.model, fed by the journal)
and the committed tables (coevo.tui.source.Committed) — in `show()`, which the app calls when the
panel is on screen and its data changed. Panels never read the database themselves, except the
message panel's paging and lookups, which go through coevo.tui.source in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar, Protocol, cast

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Select, Static
from textual_plotext import PlotextPlot

from coevo.memory.journal import EventCursor, JournalEntry
from coevo.memory.tables import AgentRecord, CurriculumHistory, ProblemRecord, SkillProfileRecord
from coevo.messages import LIFECYCLE_TYPES, MESSAGE_TYPES, AttemptGraded, SolutionSubmitted, accuracy_text
from coevo.society.config import SocietyConfig
from coevo.tui.model import MessageFilter, RunModel, zone_of
from coevo.tui.source import Committed, RunTarget, page_before
from coevo.tui.text import inert, one_line
from coevo.tui.widgets import StreamView, render_detail, render_graph, render_heatmap

PAGE = 500
ZONES = ("mastered", "learning", "too_hard")


class RunView(Protocol):
    """What a panel reads from the app that holds it (coevo.tui.app.CoevoApp)."""

    target: RunTarget
    model: RunModel
    config: SocietyConfig | None
    agents: list[AgentRecord]
    committed: Committed | None
    profiles: dict[str, dict[int, list[SkillProfileRecord]]]

    def agent_names(self) -> list[str]: ...


@contextmanager
def keeping_cursor(table: DataTable[Text]) -> Iterator[None]:
    """Empty a table for refilling, then put the cursor back on the row it was on (by key): a
    live run redraws its tables every time events arrive, and the selection must not jump."""
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key if table.row_count else None
    table.clear()
    yield
    if key is not None and key in table.rows:
        table.move_cursor(row=table.get_row_index(key), animate=False)


class RunPanel(Vertical):
    """A view of the run; `show()` redraws it from the app's data."""

    @property
    def run_app(self) -> RunView:
        return cast(RunView, self.app)

    def show(self) -> None:
        raise NotImplementedError


class GraphPanel(RunPanel):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="graph-view")

    def show(self) -> None:
        app = self.run_app
        committed = app.committed
        view = render_graph(app.config, app.agents, committed.policies if committed else {}, app.model)
        self.query_one("#graph-view", Static).update(view)


class MessagesPanel(RunPanel):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "follow", "Follow"),
        Binding("slash", "app.focus('f-search')", "Search"),
        Binding("a", "app.focus('f-agent')", "Agent"),
        Binding("y", "app.focus('f-type')", "Type"),
        Binding("r", "app.focus('f-round')", "Round"),
        Binding("x", "cycle_verdict", "Correct?"),
        Binding("o", "older", "Older"),
        Binding("escape", "clear", "Clear filters"),
    ]
    VERDICTS: tuple[tuple[str, bool | None], ...] = (
        ("any verdict", None),
        ("correct", True),
        ("incorrect", False),
    )

    def compose(self) -> ComposeResult:
        app = self.run_app
        with Horizontal(id="filters"):
            agents = [(inert(name), name) for name in app.agent_names()]
            yield Select(agents, prompt="any agent", id="f-agent")
            types = [(t, t) for t in sorted(MESSAGE_TYPES)] + [(t, t) for t in sorted(LIFECYCLE_TYPES)]
            yield Select(types, prompt="any type", id="f-type")
            yield Input(placeholder="round", id="f-round", type="integer")
            yield Select(
                [(label, index) for index, (label, _) in enumerate(self.VERDICTS)],
                id="f-verdict",
                value=0,
                allow_blank=False,
            )
            yield Input(placeholder="search text", id="f-search")
        with Horizontal(id="stream-row"):
            yield StreamView(app.model, cap=app.model.window.maxlen or 1, id="stream")
            with VerticalScroll(id="detail-scroll"):
                yield Static(Text("select a message (↑/↓) to see it in full", style="dim"), id="detail")
        yield Static(id="stream-status")

    @property
    def stream(self) -> StreamView:
        return self.query_one(StreamView)

    def current_filter(self) -> MessageFilter:
        agent = self.query_one("#f-agent", Select).value
        kind = self.query_one("#f-type", Select).value
        round_text = self.query_one("#f-round", Input).value.strip()
        verdict = self.VERDICTS[int(self.query_one("#f-verdict", Select).value)][1]  # type: ignore[arg-type]
        return MessageFilter(
            agent=agent if isinstance(agent, str) else None,
            type=kind if isinstance(kind, str) else None,
            round=int(round_text) if round_text.lstrip("-").isdigit() and int(round_text) >= 0 else None,
            correct=verdict,
            search=self.query_one("#f-search", Input).value,
        )

    @on(Select.Changed)
    @on(Input.Changed)
    def _filters_changed(self) -> None:
        flt = self.current_filter()
        if flt != self.stream.filter:
            self.stream.set_filter(flt)
            self.show()

    @on(Input.Submitted)
    def _back_to_stream(self) -> None:
        self.stream.focus()

    def action_follow(self) -> None:
        self.stream.follow = not self.stream.follow
        self.show()

    def action_cycle_verdict(self) -> None:
        select = self.query_one("#f-verdict", Select)
        select.value = (int(select.value) + 1) % len(self.VERDICTS)  # type: ignore[arg-type]

    def action_clear(self) -> None:
        with self.prevent(Select.Changed, Input.Changed):
            self.query_one("#f-agent", Select).clear()
            self.query_one("#f-type", Select).clear()
            self.query_one("#f-verdict", Select).value = 0
            self.query_one("#f-round", Input).value = ""
            self.query_one("#f-search", Input).value = ""
        self.stream.set_filter(MessageFilter())
        self.stream.focus()
        self.show()

    def push(self, entries: list[JournalEntry]) -> None:
        self.stream.push(entries)

    def show(self) -> None:
        stream = self.stream
        model = self.run_app.model
        mode = "following newest" if stream.follow else "paused (f: follow)"
        parts = [
            mode,
            f"{len(stream.rows):,} shown",
            f"{model.events:,} read",
            f"filters: {stream.filter.describe()}",
        ]
        if not stream.at_head:
            parts.append(f"paged back, {stream.behind:,} new since (f: back to newest)")
        if stream.older_from == 0:
            parts.append("start of run reached")
        # One line high: no layout pass needed (a layout pass per poll is most of following's cost).
        self.query_one("#stream-status", Static).update(Text(one_line(" · ".join(parts))), layout=False)
        self.stream.refresh()

    # --- older pages and details (database reads in a worker thread) --------------------------

    @on(StreamView.WantsOlder)
    def action_older(self) -> None:
        if self.stream.older_from != 0:
            self.run_worker(self._older(), exclusive=True, group="older")

    async def _older(self) -> None:
        app, stream = self.run_app, self.stream
        flt = stream.filter
        entries, next_from = await asyncio.to_thread(
            page_before,
            app.target.store,
            app.target.run_id,
            stream.oldest_row_id(),
            lambda entry: app.model.matches(entry, flt),
            max(1, min(PAGE, stream.cap // 2)),  # half a view: the rows in sight stay in it
            types=[flt.type] if flt.type else None,
        )
        if flt == stream.filter:
            stream.add_older(entries, next_from)
            self.show()

    @on(StreamView.Highlighted)
    def _highlighted(self, message: StreamView.Highlighted) -> None:
        self.show()  # moving may have paused following
        if message.entry is None:
            self.query_one("#detail", Static).update(Text("nothing matches", style="dim"))
            return
        self.run_worker(self._detail(message.entry), exclusive=True, group="detail")

    async def _detail(self, entry: JournalEntry) -> None:
        app = self.run_app
        event = entry.event
        grade: AttemptGraded | None = None
        problem_id: str | None = getattr(event, "problem_id", None)
        if isinstance(event, SolutionSubmitted):
            grade = app.model.grade_of(event) or await asyncio.to_thread(self._find_grade, entry)
        question = None
        if isinstance(event, SolutionSubmitted | AttemptGraded) and problem_id:
            question = app.model.questions.get(problem_id)
            if question is None:
                record = await asyncio.to_thread(app.target.store.problem, app.target.run_id, problem_id)
                question = record.question if record else None
        self.query_one("#detail", Static).update(render_detail(entry, app.model, grade, question))

    def _find_grade(self, entry: JournalEntry) -> AttemptGraded | None:
        """The grade of an attempt outside the model's recent index: it follows the attempt."""
        solution = entry.event
        assert isinstance(solution, SolutionSubmitted)
        app = self.run_app
        cursor = EventCursor(
            app.target.store, app.target.run_id, after_id=entry.row_id, types=["AttemptGraded"]
        )
        for later in cursor.poll(PAGE):
            grade = later.event
            if (
                isinstance(grade, AttemptGraded)
                and grade.problem_id == solution.problem_id
                and grade.attempt_index == solution.attempt_index
                and grade.solver == solution.sender
                and grade.episode == solution.episode
            ):
                return grade
        return None


class MetricsPanel(RunPanel):
    TITLES = (
        "accuracy and reward",
        "zone sizes (problems)",
        "acceptance of refined/generated problems",
        "tokens per second",
        "training loss",
        "reward margins (DPO)",
    )

    def compose(self) -> ComposeResult:
        with Grid(id="plots"):
            for index, _ in enumerate(self.TITLES):
                yield PlotextPlot(id=f"plot-{index}")
        yield Static(id="latest-metrics")

    def show(self) -> None:
        app = self.run_app
        series = app.model.series()
        for index, title in enumerate(self.TITLES):
            widget = self.query_one(f"#plot-{index}", PlotextPlot)
            plt = widget.plt
            plt.clear_figure()
            lines = {label: points for label, points in series[title].items() if points}
            plt.title(title if lines else f"{title}: no data yet")
            plt.xlabel("round")
            rounds = sorted({int(x) for points in lines.values() for x, _ in points})
            if rounds:
                plt.xticks([float(r) for r in rounds])
            for label, points in lines.items():
                plt.plot([x for x, _ in points], [y for _, y in points], label=label, marker="dot")
            if index == 0:
                plt.ylim(0, 1)
            widget.refresh()
        self.query_one("#latest-metrics", Static).update(self._latest())

    def _latest(self) -> RenderableType:
        last = self.run_app.model.last_finished()
        if last is None:
            return Text("no round finished yet", style="dim")
        text = Text(f"round {last.round}: ", style="bold")
        text.append(f"{accuracy_text(last.correct, last.attempts, last.ungraded)}  ")
        text.append(f"{last.tokens:,} tokens in {last.seconds:.1f} s  ")
        text.append("  ".join(f"{k} {v:.4g}" for k, v in sorted(last.metrics.items())), style="dim")
        return text


class SkillsPanel(RunPanel):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(id="heatmap")

    def show(self) -> None:
        self.query_one("#heatmap", Static).update(render_heatmap(self.run_app.profiles))


class CurriculumPanel(RunPanel):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("z", "cycle_zone", "Zone")]
    zone: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="curriculum-summary")
        with Horizontal():
            table: DataTable[Text] = DataTable(id="problems", cursor_type="row", zebra_stripes=True)
            yield table
            with VerticalScroll(id="problem-scroll"):
                yield Static(
                    Text("select a problem to see its lineage and history", style="dim"), id="problem"
                )

    def on_mount(self) -> None:
        table = self.query_one("#problems", DataTable)
        for column in ("problem", "zone", "round", "source", "parent", "skills", "curriculum", "success"):
            table.add_column(column, key=column)

    def action_cycle_zone(self) -> None:
        order = [None, *ZONES]
        self.zone = order[(order.index(self.zone) + 1) % len(order)]
        self.show()

    def _latest(self) -> dict[str, CurriculumHistory]:
        """Each problem's latest row that had attempts (its zone), or its latest row at all."""
        committed = self.run_app.committed
        latest: dict[str, CurriculumHistory] = {}
        for row in committed.history if committed else []:
            if row.attempts or row.problem_id not in latest:
                latest[row.problem_id] = row
        return latest

    def show(self) -> None:
        committed = self.run_app.committed
        if committed is None:
            return
        latest = self._latest()
        zones = Counter(zone_of(row.attempts, row.correct) for row in latest.values() if row.attempts)
        refined = sum(1 for p in committed.problems if p.parent_id)
        inside = sum(1 for p in committed.problems if p.in_curriculum)
        summary = Text(
            f"{len(committed.problems)} problems · {inside} in the curriculum · {refined} refinements · "
            f"last seen as mastered {zones['mastered']}, learning {zones['learning']}, "
            f"too hard {zones['too_hard']} · showing {self.zone or 'every zone'} (z: zone)"
        )
        self.query_one("#curriculum-summary", Static).update(summary)
        table = self.query_one("#problems", DataTable)
        with keeping_cursor(table):
            self._fill(table, latest)

    def _fill(self, table: DataTable[Text], latest: dict[str, CurriculumHistory]) -> None:
        committed = self.run_app.committed
        assert committed is not None
        rows = []
        for problem in committed.problems:
            row = latest.get(problem.problem_id)
            zone = zone_of(row.attempts, row.correct) if row and row.attempts else "-"
            if self.zone is not None and zone != self.zone:
                continue
            rate = f"{row.correct}/{row.attempts}" if row and row.attempts else "-"
            rows.append((zone, problem, rate))
        rank = {zone: i for i, zone in enumerate(ZONES)}
        for zone, problem, rate in sorted(rows, key=lambda r: (rank.get(r[0], 9), r[1].id or 0)):
            cells = (
                problem.problem_id,
                zone,
                str(problem.round_created),
                problem.source,
                problem.parent_id or "",
                ", ".join(problem.skills),
                "yes" if problem.in_curriculum else "no",
                rate,
            )
            table.add_row(*(Text(inert(c)) for c in cells), key=problem.problem_id)

    @on(DataTable.RowHighlighted, "#problems")
    def _problem(self, message: DataTable.RowHighlighted) -> None:
        committed = self.run_app.committed
        if committed is None or message.row_key.value is None:
            return
        problems = {p.problem_id: p for p in committed.problems}
        problem = problems.get(message.row_key.value)
        if problem is not None:
            self.query_one("#problem", Static).update(_problem_detail(problem, problems, committed.history))


def _problem_detail(
    problem: ProblemRecord, problems: dict[str, ProblemRecord], history: list[CurriculumHistory]
) -> RenderableType:
    """A problem, the refinements it came from and led to, and how each round saw it."""
    ancestors: list[str] = []
    parent = problem.parent_id
    while parent is not None and parent not in ancestors and len(ancestors) < 50:
        ancestors.append(parent)
        parent = problems[parent].parent_id if parent in problems else None
    children = [p.problem_id for p in problems.values() if p.parent_id == problem.problem_id]
    lineage = " → ".join([*reversed(ancestors), f"[{problem.problem_id}]"])
    if children:
        lineage += " → " + ", ".join(children)
    header = Table.grid(padding=(0, 1))
    header.add_column(style="bold")
    header.add_column()
    for label, value in (
        ("problem", problem.problem_id),
        ("lineage", lineage),
        ("skills", ", ".join(problem.skills)),
        ("difficulty", ", ".join(f"{k} {v:g}" for k, v in sorted(problem.difficulty.items()))),
        ("source", f"{problem.source}, round {problem.round_created}"),
        ("answer", problem.answer),
    ):
        header.add_row(label, Text(inert(value)))
    rounds = Table(title="round by round", title_justify="left", box=None, padding=(0, 1))
    for column in ("round", "curriculum", "attempts", "correct", "zone"):
        rounds.add_column(column)
    for row in (h for h in history if h.problem_id == problem.problem_id):
        zone = zone_of(row.attempts, row.correct) if row.attempts else "-"
        rounds.add_row(
            str(row.round), "in" if row.in_curriculum else "out", str(row.attempts), str(row.correct), zone
        )
    parts: list[RenderableType] = [
        header,
        Text("question", style="bold underline"),
        Text(inert(problem.question)),
    ]
    if problem.solution:
        parts += [Text("solution", style="bold underline"), Text(inert(problem.solution))]
    return Group(*parts, Text(), rounds)


class TrainingPanel(RunPanel):
    COLUMNS = (
        "#",
        "agent",
        "trainer",
        "round",
        "version",
        "ok",
        "examples",
        "steps",
        "loss",
        "margin",
        "runtime",
    )

    def compose(self) -> ComposeResult:
        table: DataTable[Text] = DataTable(id="trainings", cursor_type="row", zebra_stripes=True)
        yield table
        with Horizontal(id="training-bottom"):
            with VerticalScroll():
                yield Static(Text("select a training run to see all its figures", style="dim"), id="training")
            with VerticalScroll():
                yield Static(id="engines")

    def on_mount(self) -> None:
        table = self.query_one("#trainings", DataTable)
        for column in self.COLUMNS:
            table.add_column(column, key=column)

    def show(self) -> None:
        table = self.query_one("#trainings", DataTable)
        with keeping_cursor(table):
            self._fill(table)
        self.query_one("#engines", Static).update(self._engines())

    def _fill(self, table: DataTable[Text]) -> None:
        committed = self.run_app.committed
        for run in committed.trainings if committed else []:
            metrics = run.metrics_json
            loss = metrics.get("train_loss", metrics.get("loss"))
            cells = (
                str(run.id),
                run.agent,
                run.trainer,
                str(run.round),
                f"v{run.from_version} → v{run.to_version}" if run.ok else f"v{run.from_version} (kept)",
                "yes" if run.ok else "FAILED",
                str(run.examples),
                _figure(metrics.get("step")),
                _figure(loss),
                _figure(metrics.get("rewards/margins")),
                _figure(metrics.get("train_runtime"), "s"),
            )
            table.add_row(*(Text(inert(c), style="" if run.ok else "red") for c in cells), key=str(run.id))

    def _engines(self) -> RenderableType:
        """Each engine, the agents it serves and the policy each is on, and training under way."""
        app = self.run_app
        config, model = app.config, app.model
        last = model.last_finished()
        title = "engines"
        if last is not None:
            title += f" · round {last.round}: {last.tokens / max(last.seconds, 1e-9):,.0f} tokens/s"
        table = Table(title=title, title_justify="left", box=None, padding=(0, 1))
        for column in ("engine", "kind", "model", "agent", "serving", "in flight", "status"):
            table.add_column(column)
        for name, engine in config.engines.items() if config else []:
            for agent, spec in config.agents.items() if config else []:
                if spec.engine != name:
                    continue
                loaded = model.adapters.get(agent)
                training = model.training_now.get(agent)
                status = f"training ({training.trainer})" if training else "serving"
                step = model.training_step.get(agent)
                if training and step is not None:
                    status = f"training ({training.trainer}), step {step.step}/{step.max_steps}"
                if loaded is not None:
                    status += f", adapter {loaded.version} loaded"
                serving = model.policies.get(agent, "base")
                in_flight = str(len(model.waiting.get(agent, ())))
                cells = (name, engine.kind, engine.model, agent, serving, in_flight, status)
                table.add_row(*(inert(c) for c in cells))
        return table

    @on(DataTable.RowHighlighted, "#trainings")
    def _training(self, message: DataTable.RowHighlighted) -> None:
        committed = self.run_app.committed
        chosen = [r for r in committed.trainings if str(r.id) == message.row_key.value] if committed else []
        if not chosen:
            return
        run = chosen[0]
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("agent", Text(inert(f"{run.agent} ({run.trainer}), round {run.round}")))
        grid.add_row("adapter", Text(inert(run.adapter_path or "none (the previous policy kept serving)")))
        grid.add_row("time", Text(f"{run.started_at:%H:%M:%S} → {run.finished_at:%H:%M:%S}"))
        if run.error:
            grid.add_row("error", Text(inert(run.error), style="red"))
        for key, value in sorted(run.metrics_json.items()):
            grid.add_row(inert(key), _figure(value))
        self.query_one("#training", Static).update(grid)


def _figure(value: object, unit: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.4g}{unit}"
    return "-" if value is None else f"{value}{unit}"
