"""The Textual app: one run on screen, followed live through its journal or browsed when it is over.

It reads the run only through the memory's read API: an `EventCursor` polled from a worker thread
every `poll_interval` seconds (everything new, in batches, into the run model), the run's record
every second (liveness, the last committed round) and the committed tables when a round commits.
Only the panel on screen is redrawn, and only when its data changed, so following a run costs
the run little (benchmarks/tui_follow.py measures both).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from coevo.memory.journal import EventCursor, JournalEntry, liveness
from coevo.memory.tables import AgentRecord, SkillProfileRecord
from coevo.society.config import SocietyConfig
from coevo.tui.model import WINDOW, RunModel
from coevo.tui.panels import (
    CurriculumPanel,
    GraphPanel,
    MessagesPanel,
    MetricsPanel,
    RunPanel,
    SkillsPanel,
    TrainingPanel,
)
from coevo.tui.source import Committed, RunTarget, read_committed, read_skill_profiles
from coevo.tui.text import inert

# Rows read per poll; while more are waiting the app reads again at once (catching up).
BATCH = 5000
STATUS_S = 1.0
# Plots redraw at most this often (plotext renders in Python).
METRICS_S = 1.0

PANELS: tuple[tuple[str, str, str, type[RunPanel]], ...] = (
    ("graph", "Graph", "g", GraphPanel),
    ("messages", "Messages", "m", MessagesPanel),
    ("metrics", "Metrics", "p", MetricsPanel),
    ("skills", "Skills", "s", SkillsPanel),
    ("curriculum", "Curriculum", "c", CurriculumPanel),
    ("training", "Training", "t", TrainingPanel),
)

HELP = """\
coevo watches one run. Panels (keys work anywhere except while typing in a field):
  g  graph       agents (role, engine, serving policy), edges with messages carried, the active one
  m  messages    the stream, newest first; ↑/↓ PgUp/PgDn Home/End move, the right side shows the
                 highlighted message in full (text, extracted answer, grade, failure, policy)
  p  metrics     per round: accuracy, reward, zone sizes, acceptance, tokens/s, training loss, margins
  s  skills      success rate per agent × skill × round (from committed skill profiles)
  c  curriculum  problems by zone, refinements (parent → child), each problem round by round
  t  training    training runs, their figures and adapters; engines and what they serve
In messages:
  f  follow the newest / pause       /  search text        a  agent   y  type   r  round
  x  cycle correct / incorrect / any  o  page older events  Esc  clear every filter
In curriculum:  z  cycle the zone shown
  ?  this help     q  quit (a run started by this process asks first: quitting stops it)
Model output is shown as plain text: markup and control characters appear as written.
"""


def _replies_expected(config: SocietyConfig | None) -> dict[str, frozenset[str]]:
    """Per agent, the message types its role answers (the role registry's `needs_reply`); an
    agent whose role is not registered here (a plugin this process has not loaded) is left out."""
    from coevo.agents.catalog import role_spec
    from coevo.agents.registry import RoleRegistryError

    expected: dict[str, frozenset[str]] = {}
    for name, agent in (config.agents if config else {}).items():
        try:
            expected[name] = role_spec(agent.role, agent.policy).needs_reply
        except RoleRegistryError:
            continue
    return expected


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close"),
        Binding("q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(Text(HELP))
            yield Footer()


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Stop the run and quit"),
        Binding("n", "answer(False)", "Keep watching"),
        Binding("escape", "answer(False)", "Keep watching", show=False),
    ]

    def __init__(self, hint: str) -> None:
        super().__init__()
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text(f"The run is still going. Quitting stops it;\n{self.hint} continues it."))
            yield Footer()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class CoevoApp(App[None]):
    """`coevo watch` and `coevo run` on a terminal."""

    TITLE = "coevo"
    CSS = """
    #status { height: 1; background: $panel; padding: 0 1; }
    #banner { height: auto; background: $error 30%; padding: 0 1; display: none; }
    #banner.shown { display: block; }
    TabbedContent, ContentSwitcher, TabPane { height: 1fr; }
    TabPane { padding: 0; }
    #filters { height: 3; }
    #filters Select { width: 24; }
    #f-round { width: 12; }
    #f-search { width: 1fr; }
    #f-verdict { width: 20; }
    #stream-row { height: 1fr; }
    #stream { width: 2fr; }
    #detail-scroll { width: 1fr; border-left: solid $primary; padding: 0 1; }
    #stream-status { height: 1; color: $text-muted; }
    #plots { grid-size: 3 2; height: 1fr; }
    #latest-metrics { height: auto; max-height: 3; }
    #curriculum-summary { height: auto; padding: 0 1; }
    #problems { width: 3fr; }
    #problem-scroll { width: 2fr; border-left: solid $primary; padding: 0 1; }
    #trainings { height: 1fr; }
    #training-bottom { height: 1fr; }
    #help, #confirm { width: auto; max-width: 110; height: auto; background: $panel; padding: 1 2;
                      border: thick $primary; }
    HelpScreen, ConfirmQuit { align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"panel('{panel}')", title) for panel, title, key, _ in PANELS),
        Binding("question_mark", "help", "Help"),
        Binding("q", "request_quit", "Quit"),
    ]

    def __init__(
        self,
        target: RunTarget,
        *,
        attached_to: int | None = None,
        poll_interval: float = 0.25,
        window: int = WINDOW,
    ) -> None:
        super().__init__()
        self.target = target
        # The process running the run when this is `coevo run`'s UI: quitting mid-run stops it.
        self.attached_to = attached_to
        self.poll_interval = poll_interval
        self.model = RunModel(window)
        self.cursor = EventCursor(target.store, target.run_id)
        run = target.store.get_run(target.run_id)
        assert run is not None  # open_target picked an existing run
        self.run_name = run.name
        self.config: SocietyConfig | None = _config(run.config_json)
        self.model.replies_expected = _replies_expected(self.config)
        self.agents: list[AgentRecord] = target.store.agents(target.run_id)
        self.status = liveness(run)
        self.committed: Committed | None = None
        self.profiles: dict[str, dict[int, list[SkillProfileRecord]]] = {}
        # What changed since each panel was drawn, by panel id.
        self._dirty: set[str] = {panel for panel, *_ in PANELS}
        self._reading = False
        self._metrics_drawn = 0.0
        self._committed_key: tuple[int, int] | None = None
        # Set once the run has been read to its current end and its committed tables loaded.
        self.loaded = asyncio.Event()
        # Worst lag seen after each read (seconds from an event's creation to its arrival here).
        self.lags: list[float] = []

    # --- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="banner")
        with TabbedContent(initial="graph", id="panels"):
            for panel, title, key, cls in PANELS:
                with TabPane(f"{title} ({key})", id=panel):
                    yield cls(id=f"{panel}-panel")
        yield Footer()

    def agent_names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    async def on_mount(self) -> None:
        self._draw_status()
        self.set_interval(self.poll_interval, self._read)
        self.set_interval(STATUS_S, self._check_run)
        await self._check_run()
        await self._read()
        self.loaded.set()

    # --- reading the run ----------------------------------------------------------------------

    async def _read(self) -> None:
        """Everything the journal has that the model has not, then the panel on screen."""
        if self._reading:
            return
        self._reading = True
        try:
            while True:
                entries: list[JournalEntry] = await asyncio.to_thread(self.cursor.poll, BATCH)
                if not entries:
                    break
                self.model.ingest(entries)
                self.lags.append(self.model.lag)
                self.query_one(MessagesPanel).push(entries)
                self._dirty |= {"graph", "messages", "metrics", "training"}
                if len(entries) < BATCH:
                    break
                self._draw_status()  # catching up: say how far
            self._draw()
        finally:
            self._reading = False

    async def _check_run(self) -> None:
        """Liveness and the last committed round; the committed tables when they changed."""
        run = await asyncio.to_thread(self.target.store.get_run, self.target.run_id)
        if run is None:
            return
        self.status = liveness(run)
        self.model.committed_round = run.last_round
        key = (run.last_round, len(self.model.trainings))
        if key != self._committed_key:
            store, run_id = self.target.store, self.target.run_id
            self.committed = await asyncio.to_thread(read_committed, store, run_id)
            self.profiles = await asyncio.to_thread(
                read_skill_profiles, store, run_id, range(run.last_round + 1)
            )
            self._committed_key = key
            self._dirty |= {"graph", "skills", "curriculum", "training", "messages"}
        self._draw()

    # --- drawing -------------------------------------------------------------------------------

    def _active(self) -> str:
        return self.query_one(TabbedContent).active

    def _draw(self) -> None:
        try:
            self._draw_status()
        except NoMatches:
            return  # a read finished while the app was closing: nothing left to draw on
        active = self._active()
        if active not in self._dirty:
            return
        if active == "metrics":
            now = time.monotonic()
            if now - self._metrics_drawn < METRICS_S and self.loaded.is_set():
                return
            self._metrics_drawn = now
        self._dirty.discard(active)
        self.query_one(f"#{active}-panel", RunPanel).show()

    def _draw_status(self) -> None:
        model = self.model
        total = self.config.schedule.rounds if self.config else "?"
        current = model.current_round
        where = f"round {current + 1}/{total}" if current is not None else "not started"
        status_style = {"running": "green", "finished": "blue"}.get(self.status, "red")
        text = Text()
        text.append(f"coevo · {inert(self.run_name)} ({inert(self.target.run_id)}) · ")
        text.append(self.status, style=f"bold {status_style}")
        text.append(f" · {where} · {model.events:,} events")
        if self._reading and not self.loaded.is_set():
            text.append(" · reading…", style="yellow")
        elif self.status == "running":
            text.append(f" · lag {model.lag:.1f} s", style="dim")
        for agent, training in sorted(model.training_now.items()):
            text.append(f" · training {inert(agent)} ({inert(training.trainer)})", style="yellow")
        self.query_one("#status", Static).update(text, layout=False)  # one line: no layout pass
        banner = self.query_one("#banner", Static)
        if self.status in ("interrupted", "failed"):
            why = {
                "interrupted": "the run's process is gone (or its heartbeat stopped)",
                "failed": "the run stopped with an error",
            }[self.status]
            banner.update(Text(inert(f"{self.status}: {why}. Resume it with: {self.target.resume_hint()}")))
            banner.add_class("shown")
        else:
            banner.remove_class("shown")

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        active = self._active()
        self._dirty.add(active)
        self._draw()
        # The panel's main widget takes the keys (arrows move in the stream or a table).
        target = {"messages": "#stream", "curriculum": "#problems", "training": "#trainings"}.get(active)
        if target is not None:
            self.query_one(target).focus()

    # --- actions -------------------------------------------------------------------------------

    def action_panel(self, panel: str) -> None:
        # Let go of the focus first: a focused widget in the panel being left would bring its
        # panel straight back (a pane with focus inside is the active one).
        self.set_focus(None)
        self.query_one(TabbedContent).active = panel
        self.call_after_refresh(self._focus_list, panel)

    def _focus_list(self, panel: str) -> None:
        """Give the panel's list (its table, or the message stream) the focus, so that the arrow
        keys move through it at once — never a filter field, which would swallow the panel keys."""
        for widget in self.query_one(f"#{panel}-panel").query("DataTable, StreamView"):
            if widget.focusable:
                widget.focus()
                return

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_request_quit(self) -> None:
        if self.attached_to is not None:
            await self._check_run()  # the run may have ended since the last look
        if self.attached_to is None or self.status != "running":
            self.exit()
            return

        def answered(stop: bool | None) -> None:
            if stop:
                assert self.attached_to is not None
                # As Ctrl+C without the UI: the run stops between steps, its status says so.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.attached_to, signal.SIGINT)
                self.exit()

        self.push_screen(ConfirmQuit(self.target.resume_hint()), answered)


def _config(config_json: str) -> SocietyConfig | None:
    """The run's config as stored (structure only: no plugins loaded); None if it no longer parses."""
    from pydantic import ValidationError

    try:
        return SocietyConfig.model_validate_json(config_json)
    except ValidationError:
        return None
