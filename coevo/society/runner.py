"""The round scheduler: runs a society round by round, commits each round atomically to memory,
trains agents when their trainers are due, and resumes a killed run from its last committed round.

Inside a round, episodes run concurrently up to `schedule.max_concurrency`, so the engine sees
many requests at once and batches them. Everything random is seeded from (run seed, round,
episode), and results are collected in episode order, so the same config and seed give the same
transcript however the episodes interleave.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coevo.agents.base import LLMRole
from coevo.agents.generator import Generator
from coevo.agents.solver import Solver
from coevo.agents.teacher import LLMTeacher, ProceduralTeacher
from coevo.engines.base import Engine, SamplingParams
from coevo.memory.store import RoundBatch, Store
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig
from coevo.society.episode import EpisodePlan, EpisodeResult, run_episode
from coevo.society.events import Event, RoundFinished, RoundStarted, RunFinished
from coevo.tasks.curriculum import make_curriculum
from coevo.tasks.problem import Problem
from coevo.tasks.procedural import derive_seed
from coevo.tasks.profiles import skill_profile

# Keys of the resumable run state kept in memory beside each round.
PENDING_KEY = "pending_problems"


@dataclass
class RoundReport:
    round: int
    attempts: int
    correct: int
    tokens: int
    seconds: float
    per_skill: dict[str, float] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0


@dataclass
class Society:
    """The live objects of a run: engines, agents and the plan the role graph implies."""

    config: SocietyConfig
    engines: dict[str, Engine]
    teacher: ProceduralTeacher | LLMTeacher
    solver: Solver
    plan: EpisodePlan
    # Other LLM-backed agents (a Generator learning from demonstrations, ...), by name.
    others: dict[str, LLMRole] = field(default_factory=dict)
    # Engines this society created (and so closes); engines handed in belong to the caller.
    owned: frozenset[str] = frozenset()

    def roles(self) -> dict[str, LLMRole]:
        """The LLM-backed agents by name."""
        roles: dict[str, LLMRole] = {self.solver.name: self.solver, **self.others}
        if isinstance(self.teacher, LLMRole):
            roles[self.teacher.name] = self.teacher
        return roles

    async def close(self) -> None:
        for name in sorted(self.owned):
            await self.engines[name].close()


def episode_plan(config: SocietyConfig) -> EpisodePlan:
    roles = {name: agent.role for name, agent in config.agents.items()}
    teacher = next(n for n, r in roles.items() if r == "teacher")
    solver = next(n for n, r in roles.items() if r == "solver")
    refine_when: str | None = None
    generator: str | None = None
    for edge in config.graph:
        if edge.message == "ProblemRefined" and edge.source == teacher:
            refine_when = edge.when or "always"
        if edge.message == "Demonstration" and roles.get(edge.target) == "generator":
            generator = edge.target
    return EpisodePlan(
        teacher=teacher,
        solver=solver,
        attempts=config.schedule.attempts_per_problem,
        refine_when=refine_when,
        generator=generator,
    )


def build_society(config: SocietyConfig, engines: dict[str, Engine] | None = None) -> Society:
    """Create engines (unless given, e.g. a replay engine in tests) and the agents on them."""
    from coevo.engines.factory import make_engine

    plan = episode_plan(config)
    used = {a.engine for a in config.agents.values() if a.engine}
    live: dict[str, Engine] = dict(engines or {})
    for name in sorted(used - live.keys()):
        spec = config.engines[name]
        live[name] = make_engine(spec.kind, spec.model, **(spec.options or {}))
    solver_cfg = config.agents[plan.solver]
    assert solver_cfg.engine is not None  # the config validator guarantees it
    solver = Solver(
        name=plan.solver,
        engine=live[solver_cfg.engine],
        sampling=SamplingParams(**solver_cfg.sampling),
        prompt_version=solver_cfg.prompt_version,
    )
    teacher_cfg = config.agents[plan.teacher]
    teacher: ProceduralTeacher | LLMTeacher
    if teacher_cfg.policy == "procedural":
        curriculum = teacher_cfg.curriculum
        assert curriculum is not None
        teacher = ProceduralTeacher(
            name=plan.teacher,
            curriculum=make_curriculum(
                curriculum.kind,
                skills=curriculum.skills,
                seed=config.seed,
                levels=curriculum.levels or None,
                **(curriculum.params or {}),
            ),
        )
    else:
        assert teacher_cfg.engine is not None
        teacher = LLMTeacher(
            name=plan.teacher,
            engine=live[teacher_cfg.engine],
            sampling=SamplingParams(**teacher_cfg.sampling),
            prompt_version=teacher_cfg.prompt_version,
        )
    others: dict[str, LLMRole] = {}
    for name, agent in config.agents.items():
        if name in (plan.teacher, plan.solver) or agent.engine is None:
            continue
        role_class = Generator if agent.role == "generator" else LLMRole
        others[name] = role_class(
            name=name,
            engine=live[agent.engine],
            sampling=SamplingParams(**agent.sampling),
            prompt_version=agent.prompt_version,
        )
    return Society(
        config=config,
        engines=live,
        teacher=teacher,
        solver=solver,
        plan=plan,
        others=others,
        owned=frozenset(live.keys() - (engines or {}).keys()),
    )


class SocietyRunner:
    def __init__(
        self,
        society: Society,
        store: Store,
        run_id: str,
        run_dir: Path,
        bus: EventBus | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> None:
        self.society = society
        self.config = society.config
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = bus or EventBus()
        self.on_round = on_round
        self.pending: list[Problem] = []

    # --- resume ---------------------------------------------------------------------------

    async def restore(self) -> int:
        """Load teacher state, pending problems and the latest policies; the next round to run."""
        from coevo.society.training import restore_policies

        last = self.store.last_committed_round(self.run_id)
        self.store.discard_after(self.run_id, last)
        teacher_state = self.store.get_state(self.run_id, f"teacher:{self.society.plan.teacher}")
        if teacher_state is not None:
            self.society.teacher.load_state_dict(teacher_state)
        pending = self.store.get_state(self.run_id, PENDING_KEY)
        if pending:
            self.pending = [Problem.model_validate(p) for p in pending]
        await restore_policies(self)
        return last + 1

    # --- rounds ----------------------------------------------------------------------------

    def publish(self, event: Event, batch: RoundBatch) -> None:
        """An event of the round being built: stored with the round's commit, shown at once."""
        batch.add_event(event)
        self.bus.publish(event)

    def publish_now(self, event: Event) -> None:
        """An event between rounds (training, adapters): stored and shown at once."""
        self.store.add_events(self.run_id, [event])
        self.bus.publish(event)

    def trainable_roles(self) -> dict[str, LLMRole]:
        return {
            name: role for name, role in self.society.roles().items() if self.config.agents[name].trainable
        }

    def pose(self, round_index: int) -> list[Problem]:
        """This round's problems: refined problems waiting from earlier rounds first, then new ones."""
        n = self.config.schedule.problems_per_round
        rng = random.Random(derive_seed(self.config.seed, "pose", round_index))
        take = self.pending[:n]
        self.pending = self.pending[n:]
        return take + self.society.teacher.pose(n - len(take), rng)

    async def run_round(self, round_index: int) -> RoundReport:
        started = time.perf_counter()
        schedule = self.config.schedule
        batch = self.store.round_batch(self.run_id, round_index)
        problems = self.pose(round_index)
        self.publish(
            RoundStarted(run_id=self.run_id, round=round_index, sender="scheduler", episodes=len(problems)),
            batch,
        )
        semaphore = asyncio.Semaphore(schedule.max_concurrency)

        async def one(index: int, problem: Problem) -> EpisodeResult:
            async with semaphore:
                result = await run_episode(
                    self.society.plan,
                    self.society.teacher,
                    self.society.solver,
                    problem,
                    run_id=self.run_id,
                    round_index=round_index,
                    index=index,
                    seed=derive_seed(self.config.seed, "episode", round_index, index),
                )
            for event in result.events:  # live view; the stored order is fixed below
                self.bus.publish(event)
            return result

        results = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
        report = self._collect(round_index, results, batch)
        report.seconds = time.perf_counter() - started
        finished = RoundFinished(
            run_id=self.run_id,
            round=round_index,
            sender="scheduler",
            attempts=report.attempts,
            correct=report.correct,
            accuracy=report.accuracy,
            per_skill=report.per_skill,
            tokens=report.tokens,
            seconds=round(report.seconds, 3),
        )
        self.publish(finished, batch)
        await self.store.commit_round_async(batch)
        return report

    def _collect(self, round_index: int, results: list[EpisodeResult], batch: RoundBatch) -> RoundReport:
        """Add the episodes' data to the round's batch in episode order, and update the curriculum."""
        low, high = self.config.schedule.success_band
        solver = self.society.solver
        records: list[dict[str, Any]] = []
        for result in results:
            for event in result.events:
                batch.add_event(event)
            problem = result.problem
            batch.add_problem(problem, round_index, in_curriculum=low <= result.success_rate <= high)
            for attempt in result.attempts:
                batch.add_attempt(
                    problem_id=problem.id,
                    agent=solver.name,
                    policy_version=solver.policy.label,
                    attempt_index=attempt.index,
                    response=attempt.completion.text,
                    extracted_answer=attempt.grade.extracted,
                    correct=attempt.grade.correct,
                    reward=attempt.grade.reward,
                    failure=attempt.grade.failure,
                    finish_reason=attempt.completion.finish_reason,
                    completion_tokens=len(attempt.completion.token_ids),
                )
                records.append({"skills": problem.skills, "correct": attempt.grade.correct})
            # ALP-GMM learns from every episode, in episode order (deterministic).
            self.society.teacher.observe(problem, result.success_rate)
            if result.refined is not None:
                batch.add_problem(result.refined, round_index, in_curriculum=False)
                self.pending.append(result.refined)
        profile = skill_profile(records)
        for skill, stats in sorted(profile.items()):
            batch.add_skill_profile(
                agent=solver.name,
                skill=skill,
                attempts=stats.attempts,
                correct=stats.correct,
                missing=stats.missing,
            )
        batch.set_state(f"teacher:{self.society.plan.teacher}", self.society.teacher.state_dict())
        batch.set_state(PENDING_KEY, [p.model_dump(mode="json") for p in self.pending])
        attempts = sum(len(r.attempts) for r in results)
        correct = sum(sum(a.grade.correct for a in r.attempts) for r in results)
        return RoundReport(
            round=round_index,
            attempts=attempts,
            correct=correct,
            tokens=sum(r.tokens for r in results),
            seconds=0.0,
            per_skill={s: st.success_rate for s, st in sorted(profile.items())},
        )

    async def run(self, start_round: int) -> list[RoundReport]:
        from coevo.society.training import train_due

        reports: list[RoundReport] = []
        if start_round > 0:
            # A run killed during training resumes that training before the next round.
            await train_due(self, start_round - 1)
        for round_index in range(start_round, self.config.schedule.rounds):
            report = await self.run_round(round_index)
            reports.append(report)
            if self.on_round is not None:
                self.on_round(report)
            await train_due(self, round_index)
        self.publish_now(
            RunFinished(
                run_id=self.run_id,
                round=self.config.schedule.rounds - 1,
                sender="scheduler",
                rounds=self.config.schedule.rounds,
            )
        )
        self.bus.close()
        return reports
