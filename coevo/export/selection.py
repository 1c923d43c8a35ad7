"""What an export reads: the filters of `coevo export`, and the run's problems as the selected
rounds left them (each problem's attempts, success rate and zone per round, its curriculum flag).

The view is built from counts the database computes and from the curriculum history
(`Store.curriculum_as_of`), so `--as-of-round R` gives exactly the curriculum round R left, also
after a resume. It holds one small record per problem, never the attempts or messages themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from coevo.agents.teacher import zone
from coevo.export.source import ExportError, OpenedRun
from coevo.trainers.datasets import Selection

Zone = Literal["mastered", "learning", "too_hard", "unattempted"]
ZONES: tuple[Zone, ...] = ("mastered", "learning", "too_hard", "unattempted")


@dataclass(frozen=True)
class Filters:
    """`coevo export`'s filters; None = no filter. Zones and success rates are over the attempts
    (of every agent, by the selected policies) in the selected rounds."""

    rounds: range | None = None
    as_of_round: int | None = None
    skills: frozenset[str] | None = None
    zones: frozenset[str] | None = None
    success: tuple[float, float] | None = None
    policies: frozenset[str] | None = None

    @property
    def by_problem(self) -> bool:
        """Whether some filter picks problems (not just rounds or policies)."""
        return self.skills is not None or self.zones is not None or self.success is not None


def outcome_zone(correct: int, attempts: int) -> Zone:
    """Socratic-Zero's zone of `correct` out of `attempts`; "unattempted" when there were none."""
    return zone(correct / attempts) if attempts else "unattempted"


@dataclass
class RoundStat:
    round: int
    attempts: int = 0
    correct: int = 0
    # The problem's curriculum flag as this round left it.
    in_curriculum: bool = False


@dataclass
class ProblemInfo:
    """What export needs of a problem besides its full text: identity, provenance and outcomes."""

    problem_id: str
    question: str
    answer: str
    skills: tuple[str, ...]
    source: str
    author: str | None
    parent_id: str | None
    # The dataset a "dataset" problem was read from, and the procedural partition of a generated one.
    dataset: str | None
    split: str | None
    round_created: int
    in_curriculum: bool = False
    rounds: dict[int, RoundStat] = field(default_factory=dict)
    policies: set[str] = field(default_factory=set)

    @property
    def attempts(self) -> int:
        return sum(s.attempts for s in self.rounds.values())

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.rounds.values())

    @property
    def success_rate(self) -> float | None:
        return self.correct / self.attempts if self.attempts else None

    @property
    def zone(self) -> Zone:
        return outcome_zone(self.correct, self.attempts)

    @property
    def first_round(self) -> int:
        return min(self.rounds, default=self.round_created)

    @property
    def last_round(self) -> int:
        return max(self.rounds, default=self.round_created)


class RunView:
    """The run's problems as of round `as_of` (all of them), and which are selected: touched in
    the selected rounds and passing the problem filters."""

    def __init__(self, run: OpenedRun, filters: Filters, batch_size: int) -> None:
        self.run = run
        self.filters = filters
        self.as_of = _as_of(run, filters)
        self.window = filters.rounds or range(0, self.as_of + 1)
        store, run_id = run.store, run.run_id
        self.infos: dict[str, ProblemInfo] = {}
        for batch in store.iter_problems(run_id, batch_size, created_until=self.as_of):
            for p in batch:
                details = p.details or {}
                split = details.get("split")
                self.infos[p.problem_id] = ProblemInfo(
                    problem_id=p.problem_id,
                    question=p.question,
                    answer=p.answer,
                    skills=tuple(p.skills),
                    source=p.source,
                    author=p.author,
                    parent_id=p.parent_id,
                    dataset=(details.get("dataset") or p.author) if p.source == "dataset" else None,
                    split=split if isinstance(split, str) else None,
                    round_created=p.round_created,
                )
        for pid in store.curriculum_as_of(run_id, self.as_of):
            if pid in self.infos:
                self.infos[pid].in_curriculum = True
        for row in store.curriculum_history(run_id, until_round=self.as_of):
            info = self.infos.get(row.problem_id)
            if info is not None and row.round in self.window:
                info.rounds.setdefault(row.round, RoundStat(row.round)).in_curriculum = row.in_curriculum
        policies = filters.policies
        for pid, round_index, policy, attempts, correct in store.attempt_counts(run_id, self.as_of):
            info = self.infos.get(pid)
            if info is None or round_index not in self.window:
                continue
            if policies is not None and policy not in policies:
                continue
            stat = info.rounds.setdefault(round_index, RoundStat(round_index))
            stat.attempts += attempts
            stat.correct += correct
            if policy is not None:
                info.policies.add(policy)
        self.selected = {pid for pid, info in self.infos.items() if info.rounds and self._passes(info)}
        self._origins: dict[str, ProblemInfo] = {}
        # Builder rows name their problem only by its question: map questions back to problems
        # (a selected problem wins when two problems share a question).
        self.by_question: dict[str, ProblemInfo] = {}
        for pid, info in self.infos.items():
            if pid in self.selected or info.question not in self.by_question:
                self.by_question[info.question] = info

    def _passes(self, info: ProblemInfo) -> bool:
        f = self.filters
        if f.skills is not None and not f.skills & set(info.skills):
            return False
        if f.zones is not None and info.zone not in f.zones:
            return False
        if f.success is not None:
            rate = info.success_rate
            if rate is None or not f.success[0] <= rate <= f.success[1]:
                return False
        return True

    def selection(self) -> Selection:
        """The same selection, for the trainers' row builders."""
        return Selection(
            as_of_round=self.as_of,
            rounds=self.window,
            problem_ids=frozenset(self.selected) if self.filters.by_problem else None,
            policies=self.filters.policies,
        )

    def origin(self, info: ProblemInfo) -> ProblemInfo:
        """The problem a chain of refinements and proposals started from (itself when none)."""
        found = self._origins.get(info.problem_id)
        if found is None:
            found, seen = info, {info.problem_id}
            while found.parent_id in self.infos and found.parent_id not in seen:
                found = self.infos[found.parent_id]
                seen.add(found.problem_id)
            self._origins[info.problem_id] = found
        return found


def _as_of(run: OpenedRun, filters: Filters) -> int:
    """The round whose end the export reads the memory at: `--as-of-round`, else the last of
    `--rounds` (the rounds as they stood then, which is what a trainer after that round read),
    else the run's last committed round."""
    committed = f"run {run.run_id} has committed rounds 0-{run.last_round}"
    last = None if filters.rounds is None else filters.rounds.stop - 1
    if last is not None and last > run.last_round:
        raise ExportError(f"--rounds reaches round {last}, but {committed}")
    if filters.as_of_round is None:
        return run.last_round if last is None else last
    if filters.as_of_round > run.last_round:
        raise ExportError(f"--as-of-round {filters.as_of_round} is not a committed round: {committed}")
    if last is not None and last > filters.as_of_round:
        raise ExportError(f"--rounds reaches round {last}, after --as-of-round {filters.as_of_round}")
    return filters.as_of_round
