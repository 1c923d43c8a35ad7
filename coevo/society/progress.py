"""Plain-terminal progress for `coevo run` when no TUI is used: rounds with their ETA, episodes,
tokens/s and accuracy so far, and a step counter with ETA while an agent trains — driven by the
event stream (the same events the TUI consumes)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coevo.messages import (
    AttemptGraded,
    Event,
    RoundFinished,
    RoundStarted,
    TrainingFinished,
    TrainingStarted,
    TrainingStep,
    accuracy_text,
)


class RunProgress:
    def __init__(self, rounds: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.rounds = self.progress.add_task("rounds", total=rounds, info="")
        self.episodes = self.progress.add_task("episodes", total=None, info="")
        self.training: dict[str, TaskID] = {}
        self.attempts = 0
        self.correct = 0
        self.ungraded = 0
        self.tokens = 0
        self.started = time.perf_counter()

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RoundStarted):
            self.progress.update(self.rounds, completed=event.round)  # a resumed run starts mid-way
            self.progress.reset(self.episodes, total=event.episodes, info="")
            self.progress.update(self.episodes, description=f"round {event.round}")
        elif isinstance(event, AttemptGraded):
            if event.graded:
                self.attempts += 1
                self.correct += event.correct
            else:
                self.ungraded += 1
            if event.attempt_index == 0:
                self.progress.advance(self.episodes)
        elif isinstance(event, RoundFinished):
            self.tokens += event.tokens
            rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
            self.progress.advance(self.rounds)
            self.progress.update(
                self.rounds,
                info=f"last acc {event.accuracy:.1%} | overall {self.correct / max(self.attempts, 1):.1%}"
                + (f" | {self.ungraded} ungraded" if self.ungraded else "")
                + f" | {rate:.0f} tok/s",
            )
            self.console.log(
                f"round {event.round}: {accuracy_text(event.correct, event.attempts, event.ungraded)}, "
                f"{event.tokens} tokens in {event.seconds:.1f}s"
            )
        elif isinstance(event, TrainingStarted):
            self.console.log(f"training {event.agent} with {event.trainer} on {event.examples} examples...")
            bar_id = self.progress.add_task(f"training {event.agent}", total=None, info="")
            self.training[event.agent] = bar_id
        elif isinstance(event, TrainingStep) and event.agent in self.training:
            loss = event.metrics.get("loss")
            self.progress.update(
                self.training[event.agent],
                total=event.max_steps,
                completed=event.step,
                info="" if loss is None else f"loss {loss:.4g}",
            )
            # Without a terminal the bar is never drawn: a log line every fifth of the way instead.
            if not self.console.is_terminal and event.step % max(1, event.max_steps // 5) == 0:
                eta = next(
                    t for t in self.progress.tasks if t.id == self.training[event.agent]
                ).time_remaining
                self.console.log(
                    f"training {event.agent}: step {event.step}/{event.max_steps}"
                    + ("" if loss is None else f", loss {loss:.4g}")
                    + ("" if eta is None else f", ETA {eta:.0f} s")
                )
        elif isinstance(event, TrainingFinished):
            if event.agent in self.training:
                self.progress.remove_task(self.training.pop(event.agent))
            if event.ok:
                metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(event.metrics.items()))
                self.console.log(f"trained {event.agent} → {event.new_version} ({metrics})")
            else:
                self.console.log(
                    f"[red]training {event.agent} failed[/red]: {event.error}; previous policy kept"
                )
