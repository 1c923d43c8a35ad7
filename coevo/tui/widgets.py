"""The TUI's own widgets and renderings: the message stream (a line-API view that draws only the
rows on screen, so a window of thousands of events costs what forty cost), the role graph, the
skill heatmap and an event's detail.

Every string that may come from a model is turned into `rich.text.Text` or a `Segment` through
coevo.tui.text, never parsed as markup.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from coevo.memory.journal import JournalEntry
from coevo.memory.tables import AgentRecord, PolicyVersion, SkillProfileRecord
from coevo.messages import LIFECYCLE_TYPES, AttemptGraded, SolutionSubmitted
from coevo.society.config import SocietyConfig
from coevo.tui.describe import fields, summary, texts, verdict
from coevo.tui.model import WINDOW, MessageFilter, RunModel
from coevo.tui.text import inert, one_line

LIFECYCLE_STYLE = Style(color="magenta")
TYPE_STYLE = Style(color="cyan")
OK_STYLE = Style(color="green", bold=True)
BAD_STYLE = Style(color="red", bold=True)
DIM = Style(dim=True)
ACTIVE = "bold yellow"
SELECTED = Style(bgcolor="rgb(38,79,120)", bold=True)


def _mark(correct: bool | None) -> tuple[str, Style]:
    if correct is None:
        return " ", DIM
    return ("✓", OK_STYLE) if correct else ("✗", BAD_STYLE)


class StreamView(ScrollView, can_focus=True):
    """Events newest first. Following, new events appear on top; otherwise the rows on screen stay
    put while new ones arrive above them. Moving past the oldest row pages older events in from the
    database (the view then holds at most `cap` rows, dropping the newest)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "move(-20)", "Page up", show=False),
        Binding("pagedown", "move(20)", "Page down", show=False),
        Binding("home", "top", "Newest", show=False),
        Binding("end", "bottom", "Oldest", show=False),
    ]

    follow: reactive[bool] = reactive(True)

    class Highlighted(Message):
        """The highlighted row changed (None: the view is empty)."""

        def __init__(self, entry: JournalEntry | None) -> None:
            super().__init__()
            self.entry = entry

    class WantsOlder(Message):
        """The user moved past the oldest row held: page older events in."""

    def __init__(self, model: RunModel, *, cap: int = WINDOW, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model
        self.cap = cap
        self.filter = MessageFilter()
        self.rows: deque[JournalEntry] = deque(maxlen=cap)
        self.cursor = 0
        # Whether rows[0] is the newest matching event read (false once paging dropped newer ones).
        self.at_head = True
        # Matching events that arrived while the view was away from the head.
        self.behind = 0
        # Where the next older page starts (a row id; 0 = the run's start was reached).
        self.older_from: int | None = None
        self._lines: OrderedDict[int, list[Segment]] = OrderedDict()

    # --- data --------------------------------------------------------------------------------

    def set_filter(self, flt: MessageFilter) -> None:
        """Show the model's window through `flt`, newest on top."""
        self.filter = flt
        self.rows = deque(self.model.filtered(flt), maxlen=self.cap)
        self.at_head, self.behind, self.older_from = True, 0, None
        self.cursor = 0
        self.scroll_to(y=0, animate=False, immediate=True)
        self._changed(highlight=True)

    def push(self, entries: Sequence[JournalEntry]) -> None:
        """Entries just read (oldest first)."""
        new = [entry for entry in entries if self.model.matches(entry, self.filter)]
        if not new:
            return
        if not self.at_head:
            self.behind += len(new)
            return
        self.rows.extendleft(new)  # extendleft reverses: the newest ends up first
        if self.follow:
            self.cursor = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        else:
            # Keep the same rows on screen: everything moved down by len(new).
            self.cursor = min(self.cursor + len(new), len(self.rows) - 1)
            self.scroll_to(y=self.scroll_offset.y + len(new), animate=False, immediate=True)
        self._changed(highlight=self.follow)

    def add_older(self, entries: Sequence[JournalEntry], next_from: int) -> None:
        """A page of older entries (newest first) to append below the oldest row."""
        self.older_from = next_from
        dropped = max(0, len(self.rows) + len(entries) - self.cap)
        self.rows.extend(entries)
        if dropped:
            self.at_head = False
            self.follow = False
            self.cursor = max(0, self.cursor - dropped)
            self.scroll_to(y=max(0, self.scroll_offset.y - dropped), animate=False, immediate=True)
        self._changed(highlight=False)

    def oldest_row_id(self) -> int:
        if self.older_from is not None:
            return self.older_from
        return self.rows[-1].row_id if self.rows else self.model.last_row_id + 1

    def highlighted(self) -> JournalEntry | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    def _changed(self, *, highlight: bool) -> None:
        self.virtual_size = Size(self.size.width, len(self.rows))
        self.refresh()
        if highlight:
            self.post_message(self.Highlighted(self.highlighted()))

    def watch_follow(self, follow: bool) -> None:
        if follow and not self.at_head:
            self.set_filter(self.filter)
        elif follow:
            self.action_top()

    # --- keys and mouse ----------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        if not self.rows:
            return
        target = self.cursor + delta
        if target >= len(self.rows):
            self.post_message(self.WantsOlder())
        self._select(max(0, min(target, len(self.rows) - 1)))

    def action_top(self) -> None:
        self._select(0)

    def action_bottom(self) -> None:
        self._select(max(0, len(self.rows) - 1))

    def _select(self, index: int) -> None:
        if index != 0 and self.follow:
            self.follow = False  # reading something: stop jumping to the newest
        self.cursor = index
        self.scroll_to_region_of(index)
        self.refresh()
        self.post_message(self.Highlighted(self.highlighted()))

    def scroll_to_region_of(self, index: int) -> None:
        top, height = self.scroll_offset.y, self.scrollable_content_region.height
        if index < top:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= top + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self.rows):
            self._select(index)

    # --- drawing -----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        if index >= len(self.rows):
            return Strip.blank(width)
        entry = self.rows[index]
        segments = self._segments(entry, width)
        if index == self.cursor:
            segments = [Segment(s.text, (s.style or Style()) + SELECTED) for s in segments]
        return Strip(segments).adjust_cell_length(width)

    def _segments(self, entry: JournalEntry, width: int) -> list[Segment]:
        key = entry.row_id
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        event = entry.event
        mark, mark_style = _mark(verdict(event, self.model.grade_of))
        to = event.recipients[0] if event.recipients else "-"
        if len(event.recipients) > 1:
            to += f"+{len(event.recipients) - 1}"
        head = (
            f"{entry.row_id:>7} r{event.round:<3} {one_line(event.sender, 10):>10} → {one_line(to, 10):<10} "
        )
        kind = f"{event.type:<18} "
        policy = f"{one_line(event.policy_version or '', 10):<10} "
        rest = max(10, width - len(head) - len(kind) - len(policy) - 2)
        provisional = entry.provisional and event.round > self.model.committed_round
        segments = [
            Segment(head, DIM + Style(italic=True) if provisional else DIM),
            Segment(kind, LIFECYCLE_STYLE if event.type in LIFECYCLE_TYPES else TYPE_STYLE),
            Segment(policy, DIM),
            Segment(mark + " ", mark_style),
            Segment(one_line(summary(event), rest)),
        ]
        # A SolutionSubmitted's mark appears when its grade arrives: cache only settled lines.
        if not (isinstance(event, SolutionSubmitted) and mark == " "):
            self._lines[key] = segments
            if len(self._lines) > 2000:
                self._lines.popitem(last=False)
        return segments


# --- detail of one event -------------------------------------------------------------------------


def render_detail(
    entry: JournalEntry, model: RunModel, grade: AttemptGraded | None, question: str | None
) -> RenderableType:
    """Everything about one event: who, when, which policy, its fields, its full texts."""
    event = entry.event
    head = Text()
    head.append(event.type, style="bold cyan")
    head.append(f"  #{entry.row_id}  round {event.round}")
    if event.episode is not None:
        head.append(f"  episode {event.episode}")
    if entry.provisional and event.round > model.committed_round:
        head.append("  provisional", style="italic yellow")
    lines: list[RenderableType] = [head]
    who = Text(f"{inert(event.sender)} → {inert(', '.join(event.recipients) or '(stored only)')}")
    lines.append(who)
    lines.append(Text(f"policy: {inert(event.policy_version or 'n/a')}", style="bold"))
    lines.append(Text(f"created: {event.created_at:%Y-%m-%d %H:%M:%S.%f}"[:-3], style="dim"))
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    for label, value in fields(event, grade):
        style = ""
        if label == "grade":
            style = "green" if value == "correct" else "red"
        table.add_row(label, Text(inert(value), style=style))
    lines.append(table)
    if question is not None:
        lines += [Text("question", style="bold underline"), Text(inert(question))]
    for label, text in texts(event):
        if text:
            lines += [Text(label, style="bold underline"), Text(inert(text))]
    return Group(*lines)


# --- the role graph ------------------------------------------------------------------------------


def render_graph(
    config: SocietyConfig | None,
    agents: Sequence[AgentRecord],
    policies: dict[str, list[PolicyVersion]],
    model: RunModel,
) -> RenderableType:
    """Agents as boxes (role, engine, the policy serving it, traffic) and the graph's edges with
    the messages each has carried; the sender of the latest message and its edge highlighted."""
    active = model.active
    boxes = []
    for agent in agents:
        spec = config.agents.get(agent.name) if config else None
        role = agent.role + (f" ({spec.policy})" if spec and spec.policy else "")
        engine = "no engine"
        if spec is not None and spec.engine and config is not None and spec.engine in config.engines:
            engine_spec = config.engines[spec.engine]
            engine = f"{spec.engine}: {engine_spec.kind}, {engine_spec.model}"
        versions = policies.get(agent.name) or []
        serving = model.policies.get(agent.name) or (f"v{versions[-1].version}" if versions else "base")
        if agent.engine == "procedural":
            serving = "procedural"
        body = Text()
        body.append(f"{inert(role)}\n", style="bold")
        body.append(f"engine  {inert(engine)}\n")
        body.append("policy  ")
        body.append(f"{inert(serving)}{'  (trainable)' if agent.trainable else ''}\n", style="green")
        training = model.training_now.get(agent.name)
        if training is not None:
            body.append(f"training ({training.trainer}, {training.examples} examples)\n", style="yellow")
        body.append(f"sent {model.sent[agent.name]:,}  received {model.received[agent.name]:,}", style="dim")
        is_active = active is not None and active[0] == agent.name
        title = Text(
            inert(agent.name) + ("  ● active" if is_active else ""), style=ACTIVE if is_active else "bold"
        )
        boxes.append(
            Panel(body, title=title, title_align="left", border_style=ACTIVE if is_active else "blue")
        )
    edges = Table(expand=False, box=None, padding=(0, 1))
    for column in ("from", "", "to", "message", "condition", "carried"):
        edges.add_column(column, justify="right" if column == "carried" else "left")
    for edge in config.graph if config else []:
        count = model.edge_counts[(edge.source, edge.target, edge.message)]
        notes = [edge.when or "always"] + (["next round"] if edge.deliver == "next_round" else [])
        on = active is not None and active == (edge.source, edge.target, edge.message)
        style = ACTIVE if on else ""
        edges.add_row(
            inert(edge.source),
            "──▶",
            inert(edge.target),
            inert(edge.message),
            ", ".join(notes),
            f"{count:,}",
            style=style,
        )
    stored = Table(box=None, padding=(0, 1))
    stored.add_column("from")
    stored.add_column("message")
    stored.add_column("count", justify="right")
    for (sender, kind), count in sorted(model.unsent.items()):
        stored.add_row(inert(sender), kind, f"{count:,}")
    parts: list[RenderableType] = [_grid(boxes), Text("edges (messages carried)", style="italic"), edges]
    if model.unsent:
        parts += [Text("stored only (no edge carries them)", style="italic"), stored]
    return Group(*parts)


def _grid(panels: list[Panel], per_row: int = 3) -> Table:
    grid = Table.grid(padding=(0, 2), expand=True)
    for _ in range(min(per_row, max(1, len(panels)))):
        grid.add_column(ratio=1)
    for start in range(0, len(panels), per_row):
        grid.add_row(*panels[start : start + per_row])
    return grid


# --- the skill heatmap -----------------------------------------------------------------------------

HEAT = ((0.0, (190, 50, 50)), (0.5, (215, 175, 40)), (1.0, (40, 165, 80)))


def heat_color(rate: float) -> str:
    """Red (0%) through yellow (50%) to green (100%)."""
    for (low, a), (high, b) in pairwise(HEAT):
        if rate <= high:
            t = (rate - low) / (high - low)
            r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
            return f"rgb({r},{g},{bl})"
    return "rgb(40,165,80)"


def render_heatmap(
    profiles: dict[str, dict[int, list[SkillProfileRecord]]], last: int = 16
) -> RenderableType:
    """Agent × skill rows, round columns (the last `last` rounds), each cell the success rate."""
    if not profiles:
        return Text("no skill profiles yet: they are written when a round commits", style="dim")
    rounds = sorted({index for per_round in profiles.values() for index in per_round})[-last:]
    table = Table(box=None, padding=(0, 1), title="success rate per skill and round", title_justify="left")
    table.add_column("agent", style="bold")
    table.add_column("skill")
    for index in rounds:
        table.add_column(f"r{index}", justify="center")
    for agent, per_round in sorted(profiles.items()):
        skills = sorted({row.skill for rows in per_round.values() for row in rows})
        for position, skill in enumerate(skills):
            cells: list[Text] = []
            for index in rounds:
                row = next((r for r in per_round.get(index, []) if r.skill == skill), None)
                if row is None or row.attempts == 0:
                    cells.append(Text(" · ", style="dim"))
                else:
                    rate = row.correct / row.attempts
                    cells.append(Text(f"{rate:>4.0%}", style=f"black on {heat_color(rate)}"))
            table.add_row(inert(agent) if position == 0 else "", inert(skill), *cells)
    return Group(table, Text(), _legend())


def _legend() -> Text:
    legend = Text("legend  ")
    for step in range(11):
        rate = step / 10
        legend.append(f"{rate:>4.0%}", style=f"black on {heat_color(rate)}")
    legend.append("   ·  no attempts that round", style="dim")
    return legend


def plain_table_rows(rows: Iterable[Sequence[str]]) -> list[tuple[Text, ...]]:
    """Table cells as inert Text (DataTable would parse plain strings as markup)."""
    return [tuple(Text(inert(cell)) for cell in row) for row in rows]
