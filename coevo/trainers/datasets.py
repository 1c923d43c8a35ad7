"""Training rows from a run's memory: what each trainer kind trains on, built by one function that
training (the society's training service) and export (`coevo export`) both call.

Each builder takes a `RowRequest` (the memory, the run, the agent, the rounds to draw new data
from, a seeded random generator, the run's curriculum levels, and the part of the memory to read)
and the trainer's settings, and returns rows in the conversational shapes TRL reads
(`prompt`/`chosen`/`rejected` for DPO, `prompt`/`completion` for SFT, plus `weight` for the
Generator's weighted SFT). Training reads the memory as it stands after the round it trains on;
export narrows it with a `Selection` (the memory as an earlier round left it, some rounds, some
problems, some policies), so the same builder gives the same rows for the same round and rng.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coevo.messages import Demonstration, Event, Explanation, ExplanationScored
from coevo.tasks.lbt import ScoredRationale
from coevo.tasks.prompts import solver_messages
from coevo.trainers.records import AttemptRec, DemoRec, ProblemRec, with_replay

if TYPE_CHECKING:
    from coevo.memory.store import Store
    from coevo.memory.tables import AttemptRecord, ProblemRecord
    from coevo.trainers.lbt_teacher_dpo_config import LbTTeacherDPOConfig
    from coevo.trainers.sft_config import CorrectSFTConfig
    from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig
    from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
    from coevo.trainers.stat_sft_config import StatSFTConfig

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Selection:
    """The part of a run's memory a builder reads; the default, all of it as it stands now, is
    what training reads right after the round it trains on."""

    # The memory as this round left it: curriculum flags from the curriculum history (exact after
    # a resume), and nothing written by a later round.
    as_of_round: int | None = None
    # Only attempts and messages of these rounds (older rounds are then not replayed either).
    rounds: range | None = None
    # Only these problems (by id), and only attempts by these policy versions ("base", "v1", ...).
    problem_ids: frozenset[str] | None = None
    policies: frozenset[str] | None = None

    def keeps_round(self, round: int) -> bool:
        late = self.as_of_round is not None and round > self.as_of_round
        return not late and (self.rounds is None or round in self.rounds)

    def keeps_problem(self, problem_id: str) -> bool:
        return self.problem_ids is None or problem_id in self.problem_ids

    def keeps_attempt(self, attempt: AttemptRecord) -> bool:
        by_policy = self.policies is None or attempt.policy_version in self.policies
        return by_policy and self.keeps_round(attempt.round) and self.keeps_problem(attempt.problem_id)

    def problems(self, store: Store, run_id: str, *, in_curriculum: bool = False) -> dict[str, ProblemRecord]:
        """The run's problems as of the selection (only those in the curriculum, if asked), by id."""
        inside = None
        if in_curriculum and self.as_of_round is not None:
            inside = set(store.curriculum_as_of(run_id, self.as_of_round))
        found: dict[str, ProblemRecord] = {}
        for batch in store.iter_problems(run_id, created_until=self.as_of_round):
            for p in batch:
                flagged = p.in_curriculum if inside is None else p.problem_id in inside
                if (flagged or not in_curriculum) and self.keeps_problem(p.problem_id):
                    found[p.problem_id] = p
        return found

    def keeps_message(self, message: Event) -> bool:
        by_policy = self.policies is None or message.policy_version in self.policies
        return by_policy and self.keeps_round(message.round)

    def attempts(self, store: Store, run_id: str, agent: str | None = None) -> Iterator[AttemptRecord]:
        """The run's graded attempts (by `agent`, if given) the selection keeps, in stored order.
        An attempt the verifier could not judge is never read: it is no label, either way."""
        for batch in store.iter_attempts(run_id, agent=agent, until_round=self.as_of_round):
            yield from (a for a in batch if a.graded and self.keeps_attempt(a))


@dataclass(frozen=True)
class RowRequest:
    store: Store
    run_id: str
    agent: str
    # The rounds whose data is new for this training run (older rounds may be replayed).
    window: range
    rng: random.Random
    # The run's curriculum difficulty bounds ({"digits": (1, 3), ...}); None = every level.
    levels: Mapping[str, tuple[int, int]] | None = None
    selection: Selection = field(default_factory=Selection)


def training_rng(seed: int, trainer_kind: str, round_index: int) -> random.Random:
    """The random generator of the training run a trainer of `trainer_kind` makes after round
    `round_index` of a run seeded `seed` (export draws the same rows with it)."""
    return random.Random(f"{seed}:train:{trainer_kind}:{round_index}")


def attempt_records(
    store: Store, run_id: str, agent: str, selection: Selection | None = None
) -> list[AttemptRec]:
    """The agent's graded attempts at curriculum problems (inside the success band)."""
    selection = selection or Selection()
    problems = selection.problems(store, run_id, in_curriculum=True)
    records = []
    for a in selection.attempts(store, run_id, agent):
        problem = problems.get(a.problem_id)
        if problem is None:
            continue
        records.append(
            AttemptRec(
                problem_id=a.problem_id,
                question=problem.question,
                reference_answer=problem.answer,
                reference_solution=problem.solution,
                response=a.response,
                correct=a.correct,
                round=a.round,
                skills=list(problem.skills),
            )
        )
    return records


EXPLANATION_EVENTS = ("Explanation", "ExplanationScored")


def run_order(message: Event) -> tuple[int, int, str]:
    """A message's place in its run: round, episode, id. Events are stored in the order concurrent
    episodes happened to journal them, which timing decides; rows built from events follow this
    order instead (ids derive from the run, never the clock), so a seed gives the same rows."""
    return (message.round, -1 if message.episode is None else message.episode, message.id)


def scored_explanations(
    batches: Iterable[list[Event]], keep: Callable[[Explanation], bool]
) -> Iterator[tuple[Explanation, ExplanationScored]]:
    """Each Explanation that `keep` keeps, with its ExplanationScored, from a run's
    Explanation and ExplanationScored events in stored order (`EXPLANATION_EVENTS`). A score nobody
    could judge (`graded` false) is no label: its explanation is left out.

    A score comes in its explanation's own round, so explanations of earlier rounds still waiting
    are dropped as the stream moves on: memory holds one round's worth."""
    pending: dict[str, Explanation] = {}
    for batch in batches:
        for event in batch:
            if isinstance(event, Explanation):
                if keep(event):
                    if pending and next(iter(pending.values())).round < event.round:
                        pending = {k: e for k, e in pending.items() if e.round >= event.round}
                    pending[event.id] = event
            elif isinstance(event, ExplanationScored):
                explanation = pending.pop(event.explanation_id, None)
                if explanation is not None and event.graded:
                    yield explanation, event


def lbt_teacher_dpo_rows(request: RowRequest, settings: LbTTeacherDPOConfig) -> Rows:
    """LbT M2 pairs of the agent's own rationales (those with the prompt and text it was given and
    wrote: a model's), new rounds' pairs plus `replay_fraction` of older ones."""
    from coevo.trainers.lbt_teacher_dpo_trainer import build_lbt_pairs

    selection = request.selection

    def keep(e: Explanation) -> bool:
        mine = e.sender == request.agent and bool(e.completion) and bool(e.prompt)
        return mine and selection.keeps_message(e) and selection.keeps_problem(e.problem_id)

    events = request.store.iter_events(request.run_id, EXPLANATION_EVENTS, until_round=selection.as_of_round)
    new: list[ScoredRationale] = []
    old: list[ScoredRationale] = []
    joined = sorted(scored_explanations(events, keep), key=lambda pair: run_order(pair[0]))
    for explanation, scored in joined:
        rationale = ScoredRationale(
            problem_id=explanation.problem_id,
            prompt=tuple((m["role"], m["content"]) for m in explanation.prompt),
            completion=explanation.completion,
            correct=scored.correct,
            lbt_score=scored.lbt_score,
            weight=scored.weight,
        )
        if explanation.round in request.window:
            new.append(rationale)
        elif explanation.round < request.window.start:
            old.append(rationale)
    return with_replay(
        build_lbt_pairs(new, settings, request.rng),
        build_lbt_pairs(old, settings, request.rng),
        settings.replay_fraction,
        request.rng,
    )


def solver_dpo_rows(request: RowRequest, settings: SolverDPOConfig) -> Rows:
    """Socratic-Zero Solver pairs: new rounds' pairs plus `replay_fraction` of older ones."""
    from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs

    def pairs(records: list[AttemptRec]) -> Rows:
        return build_dpo_pairs(
            records, settings.max_pairs_per_problem, request.rng, messages_for=solver_messages
        )

    everything = attempt_records(request.store, request.run_id, request.agent, request.selection)
    new = [r for r in everything if r.round in request.window]
    old = [r for r in everything if r.round < request.window.start]
    return with_replay(pairs(new), pairs(old), settings.replay_fraction, request.rng)


def generator_sft_rows(request: RowRequest, settings: GeneratorSFTConfig) -> Rows:
    """The Teacher's demonstrations to this Generator whose refined problem has been attempted,
    each weighted by the Solver's success on it (an unattempted one has no weight yet)."""
    from coevo.trainers.socratic_generator_sft_trainer import build_generator_sft

    store, run_id, selection = request.store, request.run_id, request.selection
    # A selection of problems picks the demonstrations by their failed (source) problem; the
    # refined problem and the attempts that weigh it count wherever they are.
    anywhere = dataclasses.replace(selection, problem_ids=None)
    success: dict[str, list[bool]] = {}
    for a in anywhere.attempts(store, run_id):
        success.setdefault(a.problem_id, []).append(a.correct)
    problems = anywhere.problems(store, run_id)
    sent: list[Demonstration] = []
    for batch in store.iter_events(run_id, types=["Demonstration"], until_round=selection.as_of_round):
        for event in batch:
            assert isinstance(event, Demonstration)
            if request.agent in event.recipients and selection.keeps_round(event.round):
                sent.append(event)
    demos = []
    for event in sorted(sent, key=run_order):
        outcomes = success.get(event.target_problem_id)
        target = problems.get(event.target_problem_id)
        source = problems.get(event.source_problem_id)
        if not outcomes or target is None or source is None:
            continue
        if not selection.keeps_problem(source.problem_id):
            continue
        demos.append(
            DemoRec(
                source_question=source.question,
                failed_response=event.failed_response,
                target_question=target.question,
                target_answer=target.answer,
                target_success_rate=sum(outcomes) / len(outcomes),
            )
        )
    return build_generator_sft(demos, settings.weight_center, settings.weight_sigma)


def stat_sft_rows(request: RowRequest, settings: StatSFTConfig) -> Rows:
    """STAT: the agent's missing-skill profile over the window, STAT-Sel over the run's problems,
    STAT-Syn procedurally inside the run's curriculum levels, then SFT rows."""
    from coevo.tasks.procedural import generate
    from coevo.tasks.profiles import missing_skill_profile, skill_profile
    from coevo.tasks.skills import SKILLS, get_skill
    from coevo.trainers.stat_sft_trainer import (
        build_sft_rows,
        select_by_missing_skills,
        synthesize_for_skills,
    )

    store, run_id, selection = request.store, request.run_id, request.selection
    problems = selection.problems(store, run_id)
    records = [
        {"skills": problems[a.problem_id].skills, "correct": a.correct}
        for a in selection.attempts(store, run_id, request.agent)
        if a.round in request.window and a.problem_id in problems
    ]
    profile = missing_skill_profile(skill_profile(records))
    pool = [
        ProblemRec(p.problem_id, p.question, p.answer, p.solution, list(p.skills)) for p in problems.values()
    ]
    missing = [s for s, rate in sorted(profile.items(), key=lambda kv: -kv[1]) if rate > 0]
    selected = select_by_missing_skills(profile, pool, settings.select_per_skill * len(missing), request.rng)

    def procedural(skill: str, r: random.Random) -> ProblemRec | None:
        # STAT-Syn done procedurally: a new problem of the skill at a random difficulty inside
        # the run's curriculum levels (a skill outside the taxonomy cannot be synthesized here).
        if skill not in SKILLS:
            return None
        spec = get_skill(skill).restrict(request.levels)
        p = generate(skill, spec.denormalize([r.random() for _ in range(3)]), seed=r.randrange(2**31))
        return ProblemRec(p.id, p.question, p.answer, p.solution, list(p.skills))

    synthesized = synthesize_for_skills(
        missing, settings.synth_per_skill, procedural, request.rng, max_tries=settings.synth_max_tries
    )
    return build_sft_rows([*selected, *synthesized], messages_for=solver_messages)


def correct_sft_rows(request: RowRequest, settings: CorrectSFTConfig) -> Rows:
    """Rejection-sampling SFT (STaR-style): the agent's own verified-correct attempts in the
    window, at most `max_per_problem` per problem, plus (optionally) the reference solution of
    each curriculum problem it never solved."""
    from coevo.tasks.prompts import solution_text

    by_problem: dict[str, list[AttemptRec]] = {}
    for record in attempt_records(request.store, request.run_id, request.agent, request.selection):
        if record.round in request.window:
            by_problem.setdefault(record.problem_id, []).append(record)
    rows: Rows = []
    for group in by_problem.values():
        first = group[0]
        right = [r.response for r in group if r.correct]
        if not right and settings.include_reference:
            right = [solution_text(first.reference_solution, first.reference_answer)]
        unique = list(dict.fromkeys(right))
        for text in request.rng.sample(unique, min(settings.max_per_problem, len(unique))):
            rows.append(
                {
                    "prompt": solver_messages(first.question),
                    "completion": [{"role": "assistant", "content": text}],
                }
            )
    request.rng.shuffle(rows)
    return rows
