"""What the TUI knows about a run, built from its journal entries as they are read: a pure-Python
model (no textual), so it is tested and benchmarked without a screen.

Memory stays bounded however long the run: the stream keeps a window of the newest `window`
events (older ones are paged back from the database, coevo.tui.source.page_before), indexes of
recent grades and questions are capped, and per-round figures are a few numbers per round (the
per-problem counts a round needs for its zone sizes are folded away when the round finishes).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from coevo.memory.journal import JournalEntry
from coevo.messages import (
    MESSAGE_TYPES,
    AdapterLoaded,
    AttemptGraded,
    EvalFinished,
    Event,
    ProblemPosed,
    ProblemRefined,
    RoundFinished,
    RoundStarted,
    RunFinished,
    SolutionSubmitted,
    TrainingFinished,
    TrainingStarted,
    TrainingStep,
)
from coevo.tui.describe import searchable, verdict

WINDOW = 5000
# Recent grades (to show an attempt's verdict beside it) and questions (to show what a graded
# problem asked), kept per key and forgotten oldest first: as many as the window holds events.
INDEX_CAP = WINDOW

Series = dict[str, list[tuple[float, float]]]
AttemptKey = tuple[int, int | None, str, str, int]
EdgeKey = tuple[str, str, str]
K = TypeVar("K")
V = TypeVar("V")


def _attempt_key(event: SolutionSubmitted | AttemptGraded) -> AttemptKey:
    agent = event.solver if isinstance(event, AttemptGraded) else event.sender
    return (event.round, event.episode, event.problem_id, agent, event.attempt_index)


def zone_of(attempts: int, correct: int) -> str:
    """Socratic-Zero's zones by success rate: all right, some right, none right."""
    if correct == attempts:
        return "mastered"
    return "learning" if correct else "too_hard"


@dataclass
class RoundStats:
    round: int
    episodes: int = 0
    # Graded attempts and correct ones; attempts the verifier could not judge are `ungraded`.
    attempts: int = 0
    correct: int = 0
    ungraded: int = 0
    reward: float = 0.0
    # problem → [attempts, correct] while the round runs; folded into `zones` when it finishes.
    problems: dict[str, list[int]] = field(default_factory=dict)
    zones: Counter[str] | None = None
    finished: RoundFinished | None = None

    def zone_sizes(self) -> Counter[str]:
        if self.zones is not None:
            return self.zones
        return Counter(zone_of(a, c) for a, c in self.problems.values())


@dataclass(frozen=True)
class MessageFilter:
    """What the stream shows: events to or from `agent`, of `type`, of `round`, with a verdict
    (`correct` True/False), whose text contains `search` (case-insensitive)."""

    agent: str | None = None
    type: str | None = None
    round: int | None = None
    correct: bool | None = None
    search: str = ""

    @property
    def active(self) -> bool:
        return self != MessageFilter()

    def describe(self) -> str:
        parts = [
            f"agent {self.agent}" if self.agent else "",
            f"type {self.type}" if self.type else "",
            f"round {self.round}" if self.round is not None else "",
            {True: "correct", False: "incorrect", None: ""}[self.correct],
            f"search {self.search!r}" if self.search else "",
        ]
        return ", ".join(p for p in parts if p) or "none"


class RunModel:
    """Aggregates of one run's events, updated by `ingest` (oldest first, as the cursor reads)."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window: deque[JournalEntry] = deque(maxlen=window)
        self.events = 0
        self.last_row_id = 0
        self.type_counts: Counter[str] = Counter()
        self.edge_counts: Counter[EdgeKey] = Counter()
        # Messages no edge carried (sender, type): stored, delivered to no one.
        self.unsent: Counter[tuple[str, str]] = Counter()
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        # The policy each agent's latest event was written by (an adapter load moves it on).
        self.policies: dict[str, str] = {}
        # The latest message: who sent it to whom (the graph highlights it).
        self.active: EdgeKey | None = None
        self.rounds: dict[int, RoundStats] = {}
        self.current_round: int | None = None
        # The last round committed (its provisional events are final); set from the run's record.
        self.committed_round = -1
        self.trainings: list[TrainingFinished] = []
        self.training_now: dict[str, TrainingStarted] = {}
        # The last step of each training under way (the live step counter).
        self.training_step: dict[str, TrainingStep] = {}
        self.adapters: dict[str, AdapterLoaded] = {}
        # Requests in flight: per agent, the ids of messages delivered to it that it has not yet
        # answered (only the types its role answers: `replies_expected`, from the role registry).
        self.replies_expected: dict[str, frozenset[str]] = {}
        self.waiting: dict[str, set[str]] = {}
        self.evals: list[EvalFinished] = []
        self.finished: RunFinished | None = None
        self.grades: OrderedDict[AttemptKey, AttemptGraded] = OrderedDict()
        self.solutions: OrderedDict[AttemptKey, SolutionSubmitted] = OrderedDict()
        self.questions: OrderedDict[str, str] = OrderedDict()
        # Seconds between an event's creation and its arrival here, for the newest event read.
        self.lag = 0.0
        self._search_cache: OrderedDict[int, str] = OrderedDict()

    # --- reading ------------------------------------------------------------------------------

    def ingest(self, entries: Sequence[JournalEntry], now: datetime | None = None) -> None:
        for entry in entries:
            self._one(entry.event)
            self.window.append(entry)
        if entries:
            self.events += len(entries)
            self.last_row_id = entries[-1].row_id
            created = entries[-1].event.created_at
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            self.lag = max(0.0, ((now or datetime.now(UTC)) - created).total_seconds())

    def _one(self, event: Event) -> None:
        self.type_counts[event.type] += 1
        if event.type in MESSAGE_TYPES:
            self.sent[event.sender] += 1
            for target in event.recipients:
                self.edge_counts[(event.sender, target, event.type)] += 1
                self.received[target] += 1
            if not event.recipients:
                self.unsent[(event.sender, event.type)] += 1
            self.waiting.get(event.sender, set()).difference_update(event.in_reply_to)
            for target in event.recipients:
                if event.type in self.replies_expected.get(target, frozenset()):
                    self.waiting.setdefault(target, set()).add(event.id)
            self.active = (event.sender, event.recipients[0] if event.recipients else "", event.type)
            if event.policy_version:
                self.policies[event.sender] = event.policy_version
        match event:
            case ProblemPosed() | ProblemRefined():
                _put(self.questions, event.problem_id, event.question)
            case SolutionSubmitted():
                _put(self.solutions, _attempt_key(event), event)
            case AttemptGraded():
                _put(self.grades, _attempt_key(event), event)
                stats = self._round(event.round)
                if not event.graded:  # no verdict: in no accuracy, reward or zone
                    stats.ungraded += 1
                    return
                stats.attempts += 1
                stats.correct += event.correct
                stats.reward += event.reward
                counts = stats.problems.setdefault(event.problem_id, [0, 0])
                counts[0] += 1
                counts[1] += event.correct
            case RoundStarted():
                self._round(event.round).episodes = event.episodes
                self.current_round = event.round
            case RoundFinished():
                stats = self._round(event.round)
                stats.finished = event
                stats.zones = stats.zone_sizes()
                self.waiting.clear()  # a round ends with every message handled
                stats.problems = {}
            case TrainingStarted():
                self.training_now[event.agent] = event
                self.training_step.pop(event.agent, None)
            case TrainingStep():
                self.training_step[event.agent] = event
            case TrainingFinished():
                self.training_now.pop(event.agent, None)
                self.training_step.pop(event.agent, None)
                self.trainings.append(event)
            case AdapterLoaded():
                self.adapters[event.agent] = event
                self.policies[event.agent] = event.version
            case EvalFinished():
                self.evals.append(event)
            case RunFinished():
                self.finished = event

    def last_finished(self) -> RoundFinished | None:
        """The RoundFinished of the latest round that has finished, if any."""
        finished = [stats.finished for _, stats in sorted(self.rounds.items()) if stats.finished]
        return finished[-1] if finished else None

    def _round(self, index: int) -> RoundStats:
        stats = self.rounds.get(index)
        if stats is None:
            stats = self.rounds[index] = RoundStats(index)
        return stats

    # --- questions the views ask --------------------------------------------------------------

    def grade_of(self, solution: SolutionSubmitted) -> AttemptGraded | None:
        return self.grades.get(_attempt_key(solution))

    def solution_of(self, grade: AttemptGraded) -> SolutionSubmitted | None:
        return self.solutions.get(_attempt_key(grade))

    def matches(self, entry: JournalEntry, flt: MessageFilter) -> bool:
        event = entry.event
        if flt.type is not None and event.type != flt.type:
            return False
        if flt.round is not None and event.round != flt.round:
            return False
        if flt.agent is not None and flt.agent != event.sender and flt.agent not in event.recipients:
            return False
        if flt.correct is not None and verdict(event, self.grade_of) is not flt.correct:
            return False
        return not flt.search or flt.search.lower() in self._searchable(entry)

    def _searchable(self, entry: JournalEntry) -> str:
        # Searching retypes every filter keystroke over the window: keep each event's text once.
        text = self._search_cache.get(entry.row_id)
        if text is None:
            text = searchable(entry.event)
            _put(self._search_cache, entry.row_id, text)
        return text

    def filtered(self, flt: MessageFilter) -> list[JournalEntry]:
        """The window's entries that pass `flt`, newest first."""
        return [entry for entry in reversed(self.window) if self.matches(entry, flt)]

    def agents_seen(self) -> list[str]:
        return sorted(set(self.sent) | set(self.received))

    def series(self) -> dict[str, Series]:
        """Per-round figures to plot: plot title → line label → (x, y) points. The round in
        progress contributes its figures so far (accuracy, reward, zones)."""
        accuracy: Series = {"accuracy": [], "mean reward": []}
        zones: Series = {"mastered": [], "learning": [], "too_hard": []}
        throughput: Series = {"tokens/s": []}
        acceptance: Series = {}
        for index in sorted(self.rounds):
            stats = self.rounds[index]
            if stats.attempts:
                accuracy["accuracy"].append((index, stats.correct / stats.attempts))
                accuracy["mean reward"].append((index, stats.reward / stats.attempts))
                sizes = stats.zone_sizes()
                for zone, points in zones.items():
                    points.append((index, sizes.get(zone, 0)))
            done = stats.finished
            if done is not None:
                if done.seconds > 0:
                    throughput["tokens/s"].append((index, done.tokens / done.seconds))
                for label, value in _acceptance(done.metrics):
                    acceptance.setdefault(label, []).append((index, value))
        for result in self.evals:
            accuracy.setdefault(f"held-out {result.agent}", []).append((result.round, result.accuracy))
        loss: Series = {}
        margins: Series = {}
        for run in self.trainings:
            loss_value = run.metrics.get("train_loss", run.metrics.get("loss"))
            if loss_value is not None:
                loss.setdefault(run.agent, []).append((run.round, loss_value))
            if "rewards/margins" in run.metrics:
                margins.setdefault(run.agent, []).append((run.round, run.metrics["rewards/margins"]))
        return {
            "accuracy and reward": accuracy,
            "zone sizes (problems)": zones,
            "acceptance of refined/generated problems": acceptance,
            "tokens per second": throughput,
            "training loss": loss,
            "reward margins (DPO)": margins,
        }


def _acceptance(metrics: dict[str, float]) -> list[tuple[str, float]]:
    """Per-role acceptance figures of a round: generated problems accepted (`X.acceptance_rate`)
    and refinements kept (`X.refinements` of `X.refinements_tried`), by agent."""
    found = []
    for key, value in sorted(metrics.items()):
        agent, _, name = key.rpartition(".")
        if name == "acceptance_rate":
            found.append((f"generated ({agent})", value))
        elif name == "refinements_tried" and value:
            found.append((f"refined ({agent})", metrics.get(f"{agent}.refinements", 0.0) / value))
    return found


def _put(index: OrderedDict[K, V], key: K, value: V) -> None:
    index[key] = value
    if len(index) > INDEX_CAP:
        index.popitem(last=False)
