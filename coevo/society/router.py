"""The message router: a round is typed messages delivered along the role graph's edges.

Per episode, the agents that open episodes (a Teacher with a problem) send their opening
messages; every message an agent emits is journaled, then delivered along each edge from that
agent which carries its type, whose `when` condition holds on the outcome the sender attached,
and which has turns left (`max_turns` per episode; a turn is one batch: the k attempts a Solver
sends together travel as one). The target handles the batch and may emit more. An episode ends
when nothing is in flight.

Fan-out: an edge per target, so one Explanation reaches three Students (each handles it
concurrently). Fan-in per edge (edge `activation`, else the target agent's, else its role's
default for the message type): "any" hands the batch to the target as soon as it arrives; "all"
holds it until the episode is otherwise quiet, then hands the target everything held at once
(a Coach reads the whole teaching exchange; a Teacher scores an explanation once every Student's
exam is in). `deliver: next_round` holds a message for the next round, where it opens an episode.

Determinism: ids, seeds and the order in which a round's effects are recorded derive from where
an activation stands in its episode (episode, hops from the opening, the ids it handles), never
from timing, so concurrent episodes interleaving differently give the same run for a seed.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from coevo.agents.registry import RoleRegistryError
from coevo.agents.role import Activation, AttemptData, Role
from coevo.messages import Message, Outcome, derive_event_id
from coevo.society.config import SocietyConfig
from coevo.society.graph import agent_spec
from coevo.society.predicates import holds
from coevo.tasks.problem import Problem
from coevo.tasks.procedural import derive_seed
from coevo.tasks.verifier import Grader


@dataclass(frozen=True)
class Route:
    """One config edge, resolved for routing."""

    index: int
    source: str
    target: str
    message: str
    when: str | None
    max_turns: int | None
    deliver: str
    activation: Activation


class RoutingTable:
    """The config's edges by (source, message type), with each edge's fan-in resolved."""

    def __init__(self, config: SocietyConfig) -> None:
        self.routes: dict[tuple[str, str], list[Route]] = {}
        for index, edge in enumerate(config.graph):
            spec = agent_spec(config, edge.target)
            default = spec.activation_of(edge.message) if spec is not None else "any"
            activation = edge.activation or config.agents[edge.target].activation or default
            route = Route(
                index,
                edge.source,
                edge.target,
                edge.message,
                edge.when,
                edge.max_turns,
                edge.deliver,
                activation,
            )
            self.routes.setdefault((edge.source, edge.message), []).append(route)

    def from_(self, source: str, message: str) -> list[Route]:
        return self.routes.get((source, message), [])


@dataclass(frozen=True)
class Deferred:
    """A message held for the next round (`deliver: next_round`), with where it was sent from."""

    order: tuple[Any, ...]
    target: str
    message: Message


@dataclass
class RoundRuntime:
    """What the episodes of one round share: the agents, the routes, where effects are recorded."""

    run_id: str
    round: int
    run_seed: int
    roles: dict[str, Role]
    table: RoutingTable
    grader: Grader
    publish: Callable[[Message], None]
    lookup: Callable[[str], Problem | None]
    problems: dict[str, Problem] = field(default_factory=dict)
    # (order, kind, payload): problems and attempts, sorted by order when the round ends.
    records: list[tuple[tuple[Any, ...], str, Any]] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    tokens: int = 0

    def problem(self, problem_id: str) -> Problem | None:
        if problem_id not in self.problems:
            found = self.lookup(problem_id)
            if found is None:
                return None
            self.problems[problem_id] = found
        return self.problems[problem_id]

    def sorted_records(self) -> list[tuple[str, Any]]:
        return [(kind, payload) for _, kind, payload in sorted(self.records, key=lambda r: r[0])]


class AgentCall:
    """One call of a role's handler: the `Context` the role sees (coevo.agents.role.Context)."""

    def __init__(
        self, episode: EpisodeRun, agent: str, triggers: Sequence[Message], depth: int, opening: bool
    ) -> None:
        self.episode_run = episode
        self.runtime = episode.runtime
        self.agent = agent
        self.triggers = list(triggers)
        self.depth = depth
        self.opening = opening
        self.round = self.runtime.round
        self.episode = episode.index
        self.episode_seed = episode.seed
        self.grader = self.runtime.grader
        # Sorted: a batch held for fan-in "all" arrives in whatever order its senders finished.
        key = ",".join(sorted(m.id for m in self.triggers)) or f"open:{agent}"
        self.order: tuple[Any, ...] = (episode.index, depth, key, agent)
        self._key = key
        self._seq = itertools.count()
        self._emitted: dict[tuple[str, ...], int] = {}
        self._used: set[int] = set()
        # (target, fan-in) -> messages for it, handed over when the handler returns
        self.outbox: dict[tuple[str, Activation], list[Message]] = {}

    # --- Context ---------------------------------------------------------------------------------

    def seed(self, *parts: object) -> int:
        return derive_seed(self.episode_seed, self.agent, self._key, *parts)

    def routes(self, message_type: str, outcome: Outcome | None = None) -> list[str]:
        return list(dict.fromkeys(r.target for r in self._open_routes(message_type, outcome)))

    def emit(
        self, message: Message, *, outcome: Outcome | None = None, reply_to: Sequence[Message] | None = None
    ) -> Message:
        role = self.runtime.roles[self.agent]
        if outcome is not None and message.type not in role.spec.outcomes:
            # `coevo check` accepts `when:` only on the types a role's registry entry says it sends
            # with an outcome; a role sending others with one would make the checker wrong.
            raise RoleRegistryError(
                f"role {role.spec.name!r} sent {message.type} with an outcome, but its registry entry "
                f"does not list {message.type} in `outcomes`"
            )
        seq = next(self._seq)
        message.in_reply_to = [m.id for m in (self.triggers if reply_to is None else reply_to)]
        # Numbered per (type, what it answers), not per activation: a handler that answers several
        # messages concurrently emits in whatever order its awaits finish, and ids must not depend on it.
        scope = (message.type, *message.in_reply_to)
        index = self._emitted.get(scope, 0)
        self._emitted[scope] = index + 1
        message.id = derive_event_id(self.round, self.episode, self.agent, self._key, *scope, index)
        message.run_id = self.runtime.run_id
        message.round = self.round
        message.episode = self.episode
        message.sender = self.agent
        if message.policy_version is None:
            message.policy_version = self.runtime.roles[self.agent].policy_label
        routes = self._open_routes(message.type, outcome)
        for route in routes:
            if route.index not in self._used:
                self._used.add(route.index)
                self.episode_run.turns[route.index] += 1
        message.recipients = list(dict.fromkeys(r.target for r in routes))
        self.runtime.tokens += message.usage.prompt_tokens + message.usage.completion_tokens
        self.runtime.publish(message)
        for route in routes:
            if route.deliver == "next_round":
                self.runtime.deferred.append(Deferred((*self.order, seq), route.target, message))
            else:
                self.outbox.setdefault((route.target, route.activation), []).append(message)
        self.episode_run.depth_of[message.id] = self.depth
        return message

    def problem(self, problem_id: str) -> Problem | None:
        return self.runtime.problem(problem_id)

    def add_problem(self, problem: Problem, *, in_curriculum: bool = False) -> None:
        self.runtime.problems[problem.id] = problem
        self.runtime.records.append(((*self.order, next(self._seq)), "problem", (problem, in_curriculum)))

    def record_attempt(self, attempt: AttemptData) -> None:
        self.runtime.records.append(((*self.order, next(self._seq)), "attempt", attempt))

    def policy_of(self, agent: str) -> str:
        return self.runtime.roles[agent].policy_label

    # --- routing ---------------------------------------------------------------------------------

    def _open_routes(self, message_type: str, outcome: Outcome | None) -> list[Route]:
        turns = self.episode_run.turns
        return [
            r
            for r in self.runtime.table.from_(self.agent, message_type)
            if holds(r.when, outcome)
            and (r.index in self._used or r.max_turns is None or turns[r.index] < r.max_turns)
        ]


@dataclass(frozen=True)
class Opening:
    """How an episode starts: an agent opens it (`slot` of the round's new episodes), or a message
    held from the last round is delivered to its target."""

    agent: str
    slot: int | None = None
    message: Message | None = None


class EpisodeRun:
    """One episode: activations run concurrently until no message is in flight."""

    def __init__(self, runtime: RoundRuntime, index: int, seed: int) -> None:
        self.runtime = runtime
        self.index = index
        self.seed = seed
        self.turns: Counter[int] = Counter()
        self.depth_of: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[str, list[Message]] = {}

    async def run(self, openings: Sequence[Opening]) -> None:
        for opening in openings:
            if opening.message is not None:
                self._start(opening.agent, [opening.message], depth=0, opening=True)
            else:
                self._start(opening.agent, [], depth=0, opening=True, slot=opening.slot)
        try:
            while True:
                while self._tasks:
                    done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
                    for task in done:
                        self._tasks.discard(task)
                        task.result()  # a handler's exception ends the episode (and the round)
                if not self._held:
                    return
                # Quiet: hand each fan-in "all" target everything held for it, in name order.
                held, self._held = self._held, {}
                for target in sorted(held):
                    # In causal order, then a fixed one: not the order concurrent senders finished in.
                    messages = sorted(
                        held[target], key=lambda m: (self.depth_of.get(m.id, 0), m.sender, m.id)
                    )
                    depth = 1 + max((self.depth_of.get(m.id, 0) for m in messages), default=0)
                    self._start(target, messages, depth=depth, opening=False)
        finally:
            # A handler failed (or the round was cancelled): stop the others and wait for them.
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(
        self, agent: str, inbox: list[Message], *, depth: int, opening: bool, slot: int | None = None
    ) -> None:
        activation = AgentCall(self, agent, inbox, depth, opening)
        role = self.runtime.roles[agent]
        work = role.open(activation, slot) if slot is not None else role.handle(activation, inbox)
        self._tasks.add(asyncio.ensure_future(self._after(activation, work)))

    async def _after(self, activation: AgentCall, work: Any) -> None:
        await work
        for (target, fan_in), messages in activation.outbox.items():
            if fan_in == "all":
                self._held.setdefault(target, []).extend(messages)
            else:
                self._start(target, messages, depth=activation.depth + 1, opening=False)
