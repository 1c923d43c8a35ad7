"""The round scheduler: builds a society's agents from the role registry, runs it round by round on
the message router, journals every event as it happens, commits each round atomically, hands
training and periodic evaluation to the training service, and resumes a killed run from its last
committed round.

A round: messages held from the last round (`deliver: next_round`) open the first episodes; the
agents that open episodes (Teachers) fill the rest up to `schedule.problems_per_round`. Episodes
run concurrently up to `schedule.max_concurrency`, so the engine sees many requests at once and
batches them. When all have ended, every agent applies what the round taught it (in a fixed
order), and the round's problems, attempts, skill profiles, agent states and held messages are
committed in one transaction with the confirmation of its journaled events.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from coevo.agents.base import LLMRole
from coevo.agents.role import AttemptData, Role, RoleBuild
from coevo.engines.base import Engine, SamplingParams
from coevo.memory.journal import JournalWriter
from coevo.memory.store import RoundBatch, Store
from coevo.messages import (
    EVENT_ADAPTER,
    MESSAGE_CLASSES,
    Event,
    Message,
    RoundFinished,
    RoundStarted,
    RunFinished,
    derive_event_id,
)
from coevo.society.bus import EventBus
from coevo.society.config import SocietyConfig
from coevo.society.errors import NothingToPoseError
from coevo.society.graph import agent_spec, entry_agents
from coevo.society.router import Deferred, EpisodeRun, Opening, RoundRuntime, RoutingTable
from coevo.society.training import TrainingService
from coevo.tasks.problem import Problem
from coevo.tasks.procedural import derive_seed
from coevo.tasks.profiles import skill_profile
from coevo.tasks.verifier import Grader

# Run-state keys kept beside each round.
DEFERRED_KEY = "deferred_messages"


@dataclass
class RoundReport:
    round: int
    # Graded attempts and the correct ones; `ungraded` attempts got no verdict and count in neither.
    attempts: int
    correct: int
    tokens: int
    seconds: float
    per_skill: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    ungraded: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.attempts if self.attempts else 0.0


@dataclass
class Society:
    """The live objects of a run: engines, agents (by name) and the routes between them."""

    config: SocietyConfig
    engines: dict[str, Engine]
    roles: dict[str, Role]
    table: RoutingTable
    # Engines this society created (and so closes); engines handed in belong to the caller.
    owned: frozenset[str] = frozenset()

    def llm_roles(self) -> dict[str, LLMRole]:
        return {name: role for name, role in self.roles.items() if isinstance(role, LLMRole)}

    def trainable_roles(self) -> dict[str, LLMRole]:
        return {n: r for n, r in self.llm_roles().items() if self.config.agents[n].trainable}

    async def close(self) -> None:
        for name in sorted(self.owned):
            await self.engines[name].close()


def build_society(config: SocietyConfig, grader: Grader, engines: dict[str, Engine] | None = None) -> Society:
    """Create engines (unless given, e.g. a replay engine in tests) and the agents on them."""
    from coevo.engines.factory import make_engine
    from coevo.society.secrets import engine_options
    from coevo.society.sources import agent_factory, build_curriculum, load_pool

    used = {a.engine for a in config.agents.values() if a.engine}
    live: dict[str, Engine] = dict(engines or {})
    for name in sorted(used - live.keys()):
        engine = config.engines[name]
        live[name] = make_engine(
            engine.kind, engine.model, **engine_options(engine.options, f"engines.{name}.options")
        )
    roles: dict[str, Role] = {}
    for name, agent in config.agents.items():
        spec = agent_spec(config, name)
        assert spec is not None  # the config was validated against the registry
        build = RoleBuild(
            name=name,
            role=agent.role,
            policy=agent.policy,
            engine=live[agent.engine] if agent.engine else None,
            params=spec.params.model_validate(agent.params),
            grader=grader,
            run_seed=config.seed,
            sampling=SamplingParams(**agent.sampling),
            prompt_version=agent.prompt_version,
            attempts=config.schedule.attempts_per_problem,
            success_band=config.schedule.success_band,
            curriculum=build_curriculum(agent.curriculum, config.seed) if agent.curriculum else None,
            pool=load_pool(agent.pool) if agent.pool else (),
            autogen_factory=agent_factory(agent),
        )
        roles[name] = spec.factory(build)
    return Society(
        config=config,
        engines=live,
        roles=roles,
        table=RoutingTable(config),
        owned=frozenset(live.keys() - (engines or {}).keys()),
    )


class SocietyRunner:
    def __init__(
        self,
        society: Society,
        store: Store,
        run_id: str,
        run_dir: Path,
        grader: Grader,
        bus: EventBus | None = None,
        on_round: Callable[[RoundReport], None] | None = None,
    ) -> None:
        self.society = society
        self.config = society.config
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.grader = grader
        self.bus = bus or EventBus()
        self.on_round = on_round
        self.journal = JournalWriter(store, run_id)
        self.training = TrainingService(
            self.config, store, run_id, run_dir, self.journal, self.bus.publish, grader
        )
        self.deferred: list[Deferred] = []
        self.entries = entry_agents(self.config)

    # --- resume ---------------------------------------------------------------------------------

    async def restore(self) -> int:
        """Drop what an interrupted round left, restore agent state, held messages and the latest
        policies; return the next round to run."""
        last = self.store.last_committed_round(self.run_id)
        self.store.discard_after(self.run_id, last)
        for name, role in self.society.roles.items():
            state = self.store.get_state(self.run_id, f"agent:{name}")
            if state is not None:
                role.load_state_dict(state)
        held = self.store.get_state(self.run_id, DEFERRED_KEY) or []
        self.deferred = [
            Deferred((i,), item["target"], _as_message(EVENT_ADAPTER.validate_python(item["message"])))
            for i, item in enumerate(held)
        ]
        await self.training.restore(self.society.trainable_roles())
        return last + 1

    # --- events ---------------------------------------------------------------------------------

    def publish_round_event(self, event: Event) -> None:
        """An event of the round in progress: journaled (provisional) and shown at once."""
        self.journal.add(event)
        self.bus.publish(event)

    def publish_now(self, event: Event) -> None:
        """An event between rounds (training, adapters, evaluation): committed and shown at once."""
        self.store.add_events(self.run_id, [event])
        self.bus.publish(event)

    # --- rounds ---------------------------------------------------------------------------------

    def _lookup(self, problem_id: str) -> Problem | None:
        record = self.store.problem(self.run_id, problem_id)
        return record.to_problem() if record is not None else None

    async def run_round(self, round_index: int) -> RoundReport:
        started = time.perf_counter()
        schedule = self.config.schedule
        roles = self.society.roles
        held, self.deferred = (
            self.deferred[: schedule.problems_per_round],
            self.deferred[schedule.problems_per_round :],
        )
        fresh = schedule.problems_per_round - len(held)
        counts = {}
        if fresh > 0:
            for name in self.entries:
                rng = random.Random(derive_seed(self.config.seed, "pose", round_index, name))
                counts[name] = await roles[name].begin_round(round_index, fresh, rng)
        new_episodes = max(counts.values(), default=0)
        total = len(held) + new_episodes
        if total == 0:
            raise NothingToPoseError(
                f"round {round_index}: no agent could open an episode "
                f"({', '.join(self.entries)} posed nothing); "
                "check the teachers' problem sources"
            )
        runtime = RoundRuntime(
            run_id=self.run_id,
            round=round_index,
            run_seed=self.config.seed,
            roles=roles,
            table=self.society.table,
            grader=self.grader,
            publish=self.publish_round_event,
            lookup=self._lookup,
        )
        start_event = RoundStarted(run_id=self.run_id, round=round_index, sender="scheduler", episodes=total)
        start_event.id = derive_event_id(round_index, "RoundStarted")
        self.publish_round_event(start_event)
        semaphore = asyncio.Semaphore(schedule.max_concurrency)

        async def episode(index: int, openings: list[Opening]) -> None:
            async with semaphore:
                seed = derive_seed(self.config.seed, "episode", round_index, index)
                await EpisodeRun(runtime, index, seed).run(openings)

        plans: list[list[Opening]] = [[Opening(d.target, message=d.message)] for d in held]
        for slot in range(new_episodes):
            plans.append([Opening(name, slot=slot) for name in self.entries if slot < counts[name]])
        await asyncio.gather(*(episode(i, plan) for i, plan in enumerate(plans)))

        report, batch = self._collect(round_index, runtime)
        report.seconds = time.perf_counter() - started
        finished = RoundFinished(
            run_id=self.run_id,
            round=round_index,
            sender="scheduler",
            attempts=report.attempts,
            correct=report.correct,
            accuracy=report.accuracy,
            ungraded=report.ungraded,
            per_skill=report.per_skill,
            tokens=report.tokens,
            seconds=round(report.seconds, 3),
            metrics=report.metrics,
        )
        finished.id = derive_event_id(round_index, "RoundFinished")
        self.publish_round_event(finished)
        await self.journal.flush()
        await self.store.commit_round_async(batch)
        return report

    def _collect(self, round_index: int, runtime: RoundRuntime) -> tuple[RoundReport, RoundBatch]:
        """The round's records in a fixed order, each agent's end of round, and the batch to commit."""
        batch = self.store.round_batch(self.run_id, round_index)
        attempts: list[AttemptData] = []
        for kind, payload in runtime.sorted_records():
            if kind == "problem":
                problem, in_curriculum = payload
                batch.add_problem(problem, round_index, in_curriculum=in_curriculum)
            else:
                attempts.append(payload)
                batch.add_attempt(
                    problem_id=payload.problem_id,
                    agent=payload.agent,
                    policy_version=payload.policy_version,
                    attempt_index=payload.attempt_index,
                    response=payload.response,
                    extracted_answer=payload.extracted_answer,
                    correct=payload.correct,
                    reward=payload.reward,
                    failure=payload.failure,
                    finish_reason=payload.finish_reason,
                    completion_tokens=payload.completion_tokens,
                    graded=payload.graded,
                    detail=payload.detail,
                )
        metrics: dict[str, float] = {}
        for name in sorted(self.society.roles):
            for key, value in self.society.roles[name].end_round(round_index).items():
                metrics[f"{name}.{key}"] = value
        graded = [a for a in attempts if a.graded]  # skills and accuracy are judged on verdicts only
        for agent in sorted({a.agent for a in graded}):
            profile = skill_profile(
                {"skills": list(a.skills), "correct": a.correct} for a in graded if a.agent == agent
            )
            for skill, stats in sorted(profile.items()):
                batch.add_skill_profile(
                    agent=agent,
                    skill=skill,
                    attempts=stats.attempts,
                    correct=stats.correct,
                    missing=stats.missing,
                )
        overall = skill_profile({"skills": list(a.skills), "correct": a.correct} for a in graded)
        per_skill = {skill: stats.success_rate for skill, stats in sorted(overall.items())}
        for name, role in sorted(self.society.roles.items()):
            batch.set_state(f"agent:{name}", role.state_dict())
        self.deferred += sorted(runtime.deferred, key=lambda d: d.order)
        batch.set_state(
            DEFERRED_KEY,
            [{"target": d.target, "message": d.message.model_dump(mode="json")} for d in self.deferred],
        )
        report = RoundReport(
            round=round_index,
            attempts=len(graded),
            correct=sum(a.correct for a in graded),
            tokens=runtime.tokens,
            seconds=0.0,
            per_skill=per_skill,
            metrics=metrics,
            ungraded=len(attempts) - len(graded),
        )
        return report, batch

    async def run(self, start_round: int) -> list[RoundReport]:
        reports: list[RoundReport] = []
        trainable = self.society.trainable_roles()
        try:
            if start_round > 0:
                # A run killed during training resumes that training before the next round.
                await self.training.train_due(start_round - 1, trainable)
            for round_index in range(start_round, self.config.schedule.rounds):
                report = await self.run_round(round_index)
                reports.append(report)
                if self.on_round is not None:
                    self.on_round(report)
                await self.training.train_due(round_index, trainable)
                await self.training.evaluate_due(round_index, trainable)
            last = self.config.schedule.rounds - 1
            done = RunFinished(run_id=self.run_id, round=last, sender="scheduler", rounds=last + 1)
            done.id = derive_event_id(last, "RunFinished")
            self.publish_now(done)
        finally:
            await self.journal.close()
            self.bus.close()
        return reports


def _as_message(event: Event) -> Message:
    if not isinstance(event, MESSAGE_CLASSES):
        raise ValueError(f"a held message cannot be a {event.type}")
    return event  # type: ignore[return-value]  # one of the message classes, by the check above
