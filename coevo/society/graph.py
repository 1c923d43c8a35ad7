"""The role graph: agents are nodes, each config edge a typed message from one agent to another.

`validate_graph` checks what the router relies on, reading the role registry
(coevo.agents.registry) for what each agent's role sends and accepts:

- every edge joins known agents with a message type its source's role can send and its target's
  role accepts, under a known condition, and only a message its role sends with an outcome
  carries a condition (a condition on any other never holds); no edge is listed twice;
- a message held for the next round (`deliver: next_round`) is one its target's role can open a
  later round's episode with (`holdable` in the registry);
- a message a role must answer (a Solver's attempts, a Student's exam) has an edge to carry the
  answer, or the work would be thrown away, and that edge has turns for every answer its source
  can owe in an episode (`reply_turns`: by default it gets exactly that many; a smaller
  `max_turns` is refused);
- every cycle has an edge with a finite `max_turns` (a condition alone may hold forever);
- some agent opens episodes (a role whose registry entry `opens` message types, with an edge
  carrying one), and every agent is reachable from those that do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from coevo.agents.catalog import all_specs, role_spec
from coevo.agents.registry import RoleRegistryError
from coevo.agents.role import RoleSpec
from coevo.messages import MESSAGE_TYPES
from coevo.society.config import SocietyConfig
from coevo.society.config_errors import ConfigIssue, one_of
from coevo.society.predicates import PREDICATES, UNCONDITIONAL

if TYPE_CHECKING:
    import networkx as nx


def agent_spec(config: SocietyConfig, name: str) -> RoleSpec | None:
    """The registry entry of an agent's role (and policy); None when the config names none."""
    agent = config.agents[name]
    try:
        return role_spec(agent.role, agent.policy)
    except RoleRegistryError:
        return None


def build_graph(config: SocietyConfig) -> nx.MultiDiGraph:
    """Agents as nodes (with their role), one keyed edge per config edge between known agents."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    for name, agent in config.agents.items():
        graph.add_node(name, role=agent.role)
    for index, edge in enumerate(config.graph):
        if edge.source in config.agents and edge.target in config.agents:
            graph.add_edge(
                edge.source,
                edge.target,
                key=index,
                message=edge.message,
                when=edge.when,
                max_turns=edge.max_turns,
                deliver=edge.deliver,
            )
    return graph


def live_flows(config: SocietyConfig) -> set[int]:
    """The edges (by index) that can ever carry a message: those whose source opens episodes with
    that type, or answers with it some message that a live edge brings it. An edge outside this
    set is dead: its source would send that type only in reply to something nothing sends it."""
    specs = {name: agent_spec(config, name) for name in config.agents}
    received: dict[str, set[str]] = {name: set() for name in config.agents}
    live: set[int] = set()
    changed = True
    while changed:
        changed = False
        for index, edge in enumerate(config.graph):
            spec = specs.get(edge.source)
            if index in live or spec is None or edge.target not in received:
                continue
            answers = any(edge.message in spec.handles.get(t, frozenset()) for t in received[edge.source])
            if edge.message in spec.opens or answers:
                live.add(index)
                received[edge.target].add(edge.message)
                changed = True
    return live


def entry_agents(config: SocietyConfig) -> list[str]:
    """Agents that open episodes: their role opens some message type and an edge carries it."""
    entries = []
    for name in config.agents:
        spec = agent_spec(config, name)
        if spec is not None and any(e.source == name and e.message in spec.opens for e in config.graph):
            entries.append(name)
    return entries


@dataclass(frozen=True)
class GraphFlows:
    """Which messages flow where in a society (what the trainer registry's requirements ask)."""

    config: SocietyConfig

    def sends(self, agent: str, message: str) -> bool:
        return any(e.source == agent and e.message == message for e in self.config.graph)

    def receives(self, agent: str, message: str) -> bool:
        return any(e.target == agent and e.message == message for e in self.config.graph)

    def flows(self, message: str) -> bool:
        return any(e.message == message for e in self.config.graph)


def validate_graph(config: SocietyConfig) -> list[ConfigIssue]:
    issues = _edge_issues(config)
    issues += _duplicate_issues(config)
    issues += _hold_issues(config)
    issues += _reply_issues(config)
    # Before the cycle check, which reads the turns these fill in (replies after openings: a
    # reply edge's turns follow the turns of the edges that bring the work).
    issues += _opening_turn_issues(config)
    issues += _reply_turn_issues(config)
    graph = build_graph(config)
    issues += _cycle_issues(config, graph)
    issues += _reachability_issues(config, graph)
    return issues


def _edge_issues(config: SocietyConfig) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for index, edge in enumerate(config.graph):
        at = ("graph", index)
        ends_known = True
        for end, name in (("source", edge.source), ("target", edge.target)):
            if name not in config.agents:
                issues.append(
                    config.issue(*at, end, message=f"unknown agent '{name}'{one_of(name, config.agents)}")
                )
                ends_known = False
        if edge.message not in MESSAGE_TYPES:
            issues.append(
                config.issue(
                    *at,
                    "message",
                    message=f"unknown message type '{edge.message}'{one_of(edge.message, MESSAGE_TYPES)}",
                )
            )
        elif ends_known:
            issues += _role_fit(config, index)
        if edge.when is not None and edge.when not in PREDICATES:
            issues.append(
                config.issue(
                    *at, "when", message=f"unknown predicate '{edge.when}'{one_of(edge.when, PREDICATES)}"
                )
            )
        elif ends_known and edge.message in MESSAGE_TYPES:
            issues += _condition_issues(config, index)
    return issues


def _condition_issues(config: SocietyConfig, index: int) -> list[ConfigIssue]:
    """A condition reads the outcome its message is sent with; on a message its source's role
    sends without one (the registry's `outcomes`), it never holds and the edge never delivers."""
    edge = config.graph[index]
    source = agent_spec(config, edge.source)
    if edge.when in (None, UNCONDITIONAL) or source is None or edge.message in source.outcomes:
        return []
    if edge.message not in source.produces:
        return []  # reported by _role_fit already
    carriers = sorted({m for spec in all_specs() for m in spec.outcomes})
    return [
        config.issue(
            "graph",
            index,
            "when",
            message=f"`when: {edge.when}` reads the outcome a message is sent with, and a {source.label} "
            f"sends {edge.message} without one, so this edge would never deliver; only "
            f"{', '.join(carriers)} carry an outcome (remove `when`, or put it on one of those)",
        )
    ]


def _edge_key(index: int, config: SocietyConfig) -> tuple[str, str, str, str, str]:
    edge = config.graph[index]
    return (edge.source, edge.target, edge.message, edge.when or UNCONDITIONAL, edge.deliver)


def _duplicate_issues(config: SocietyConfig) -> list[ConfigIssue]:
    """An edge listed twice delivers every message twice (twice the attempts, the grading, ...)."""
    first: dict[tuple[str, str, str, str, str], int] = {}
    issues: list[ConfigIssue] = []
    for index in range(len(config.graph)):
        key = _edge_key(index, config)
        if key not in first:
            first[key] = index
            continue
        earlier = first[key]
        line = config.line_of("graph", earlier)
        where = f"graph.{earlier}" + (f" (line {line})" if isinstance(line, int) else "")
        issues.append(
            config.issue(
                "graph",
                index,
                message=f"repeats {where}: {key[0]} -> {key[1]} {key[2]} with the same condition and "
                "delivery, so every such message would be delivered twice; remove one of them "
                "(for more deliveries per episode, raise the other's max_turns)",
            )
        )
    return issues


def _hold_issues(config: SocietyConfig) -> list[ConfigIssue]:
    """`deliver: next_round` makes the message open an episode of the next round; only what the
    target's role can start an episode with may wait (an answer, such as a Solver's attempts or a
    Student's exam, belongs to the round its sender is waiting in)."""
    issues: list[ConfigIssue] = []
    for index, edge in enumerate(config.graph):
        if edge.deliver != "next_round" or edge.target not in config.agents:
            continue
        target = agent_spec(config, edge.target)
        if target is None or edge.message not in target.accepts or edge.message in target.holdable:
            continue
        can = (
            f"can open one only with {', '.join(sorted(target.holdable))}"
            if target.holdable
            else "cannot open one with any message"
        )
        issues.append(
            config.issue(
                "graph",
                index,
                "deliver",
                message=f"a message held for the next round opens an episode there, and a {target.label} "
                f"{can}: a {edge.message} belongs to the round it is sent in; deliver it now",
            )
        )
    return issues


def _role_fit(config: SocietyConfig, index: int) -> list[ConfigIssue]:
    edge = config.graph[index]
    issues: list[ConfigIssue] = []
    source, target = agent_spec(config, edge.source), agent_spec(config, edge.target)
    if source is not None and edge.message not in source.produces:
        issues.append(
            config.issue(
                "graph",
                index,
                "message",
                message=f"'{edge.source}' is a {source.label}, which does not send {edge.message} "
                f"(it sends: {', '.join(sorted(source.produces)) or 'nothing'})",
            )
        )
    if target is not None and edge.message not in target.accepts:
        issues.append(
            config.issue(
                "graph",
                index,
                "message",
                message=f"'{edge.target}' is a {target.label}, which does not accept {edge.message} "
                f"(it accepts: {', '.join(sorted(target.accepts)) or 'nothing'})",
            )
        )
    return issues


def _reply_issues(config: SocietyConfig) -> list[ConfigIssue]:
    """A message whose answer is the point (attempts, an exam) needs an edge to carry the answer."""
    issues: list[ConfigIssue] = []
    reported: set[tuple[str, str]] = set()
    for index, edge in enumerate(config.graph):
        if edge.target not in config.agents or (edge.target, edge.message) in reported:
            continue
        spec = agent_spec(config, edge.target)
        if spec is None or edge.message not in spec.needs_reply:
            continue
        replies = spec.handles[edge.message]
        if not any(e.source == edge.target and e.message in replies for e in config.graph):
            reported.add((edge.target, edge.message))
            issues.append(
                config.issue(
                    "graph",
                    index,
                    message=f"'{edge.target}' answers {edge.message} with {' or '.join(sorted(replies))}, "
                    "but no "
                    f"edge carries that from '{edge.target}', so its work would be thrown away; add an edge "
                    f"from '{edge.target}' with message {sorted(replies)[0]}",
                )
            )
    return issues


def answered_work(spec: RoleSpec, message: str) -> frozenset[str]:
    """The types a role must answer (`needs_reply`) whose answer includes `message`: an edge from
    it carrying `message` is a reply edge, which owes one turn for every batch of that work."""
    return frozenset(m for m in spec.needs_reply if message in spec.handles.get(m, frozenset()))


def reply_turns(config: SocietyConfig) -> dict[int, int | None]:
    """For each reply edge (by index), the most turns it can need in one episode: how many times
    its source can be handed work it answers along it (None: any number of times).

    Each hand-over is one activation of the source, and each activation uses one turn of each edge
    its answers leave by, so every delivery the source can get within an episode counts: along
    edges that can carry a message in that episode, as many as their turns (a reply edge's own
    turns, unless given, are what its source can owe, recursively); plus the episode's opening
    (the source's own, or a message held for it from the last round). An episode opened by a held
    message sends only what follows from it (no Teacher opens it), so each kind of episode is
    counted apart and the largest need wins. Conditions and fan-in "all" only ever lower the
    count, so it is a bound that the runtime never exceeds."""
    specs = {name: agent_spec(config, name) for name in config.agents}
    replies = {
        index: work
        for index, edge in enumerate(config.graph)
        if (spec := specs.get(edge.source)) is not None and (work := answered_work(spec, edge.message))
    }
    if not replies:
        return {}
    held = [i for i, e in enumerate(config.graph) if e.deliver == "next_round" and e.target in specs]
    need: dict[int, float] = dict.fromkeys(replies, 0.0)
    for opening in [None, *held]:
        live = _episode_flows(config, specs, opening)
        memo: dict[int, float] = {}
        for index in replies:
            need[index] = max(need[index], _owed(config, specs, live, opening, index, memo, set()))
    return {index: None if math.isinf(n) else max(1, int(n)) for index, n in need.items()}


def _episode_flows(config: SocietyConfig, specs: dict[str, RoleSpec | None], opening: int | None) -> set[int]:
    """The `now` edges that can carry a message in an episode opened by the agents that open
    episodes (`opening` None) or by the message held along edge `opening`."""
    received: dict[str, set[str]] = {name: set() for name in config.agents}
    if opening is not None:
        received[config.graph[opening].target].add(config.graph[opening].message)
    live: set[int] = set()
    changed = True
    while changed:
        changed = False
        for index, edge in enumerate(config.graph):
            spec = specs.get(edge.source)
            if index in live or spec is None or edge.deliver != "now" or edge.target not in received:
                continue
            opens = opening is None and edge.message in spec.opens
            if opens or any(edge.message in spec.handles.get(t, frozenset()) for t in received[edge.source]):
                live.add(index)
                received[edge.target].add(edge.message)
                changed = True
    return live


def _owed(
    config: SocietyConfig,
    specs: dict[str, RoleSpec | None],
    live: set[int],
    opening: int | None,
    index: int,
    memo: dict[int, float],
    visiting: set[int],
) -> float:
    """How many activations of edge `index`'s source can send its message in one such episode."""
    if index in memo:
        return memo[index]
    if index in visiting:  # replies that answer replies around a loop: nothing bounds them
        return math.inf
    visiting.add(index)
    edge = config.graph[index]
    spec = specs[edge.source]
    assert spec is not None
    total = 0.0
    if opening is None and edge.message in spec.opens:
        total += 1  # its own opening activation
    if opening is not None:
        held = config.graph[opening]
        if held.target == edge.source and edge.message in spec.handles.get(held.message, frozenset()):
            total += 1
    for j in sorted(live):
        inbound = config.graph[j]
        if inbound.target == edge.source and edge.message in spec.handles.get(inbound.message, frozenset()):
            total += _turns(config, specs, live, opening, j, memo, visiting)
    visiting.discard(index)
    memo[index] = total
    return total


def _turns(
    config: SocietyConfig,
    specs: dict[str, RoleSpec | None],
    live: set[int],
    opening: int | None,
    index: int,
    memo: dict[int, float],
    visiting: set[int],
) -> float:
    """How many deliveries edge `index` can make in one episode: its `max_turns` where given (or
    where it is not a reply edge, whose default is 1), else what its source can owe."""
    edge = config.graph[index]
    spec = specs.get(edge.source)
    given = "max_turns" in edge.model_fields_set
    if given or spec is None or not answered_work(spec, edge.message):
        return math.inf if edge.max_turns is None else edge.max_turns
    return _owed(config, specs, live, opening, index, memo, visiting)


def _opening_turn_issues(config: SocietyConfig) -> list[ConfigIssue]:
    """An edge carrying what its source sends when it opens an episode carries all of it: its
    default turns are how many one opening sends (an LLM Teacher's `explanations` rationales), and
    a smaller given `max_turns` is refused (the rest would be stored and never delivered)."""
    issues: list[ConfigIssue] = []
    for index, edge in enumerate(config.graph):
        spec = agent_spec(config, edge.source)
        if spec is None or spec.opening_counts is None or edge.message not in spec.opens:
            continue
        try:
            params = spec.params.model_validate(config.agents[edge.source].params)
        except ValidationError:
            continue  # reported with the agent's params
        need = spec.opening_counts(params).get(edge.message, 1)
        if "max_turns" not in edge.model_fields_set:
            edge.max_turns = need
        elif edge.max_turns is not None and edge.max_turns < need:
            issues.append(
                config.issue(
                    "graph",
                    index,
                    "max_turns",
                    message=f"'{edge.source}' sends {need} {edge.message} messages each time it opens an "
                    f"episode (its params), but this edge carries {edge.max_turns}: the rest would be "
                    f"stored and never delivered; leave `max_turns` out (it then follows) or make it at "
                    f"least {need}",
                )
            )
    return issues


def _reply_turn_issues(config: SocietyConfig) -> list[ConfigIssue]:
    """Fill in each reply edge's default turns (what its source can owe: a Solver handed a refined
    problem at once answers twice an episode), and refuse a given `max_turns` below that, which
    would drop the answers past it. Filled in on the config, so the runtime, `coevo check`'s graph
    and the run's config snapshot all show the turns the edge really has."""
    issues: list[ConfigIssue] = []
    for index, need in reply_turns(config).items():
        edge = config.graph[index]
        if "max_turns" not in edge.model_fields_set:
            edge.max_turns = need
            continue
        if edge.max_turns is None or (need is not None and edge.max_turns >= need):
            continue
        spec = agent_spec(config, edge.source)
        assert spec is not None
        work = sorted(answered_work(spec, edge.message))
        brought = sorted(
            f"{e.message} along graph.{j}"
            for j, e in enumerate(config.graph)
            if e.target == edge.source and edge.message in spec.handles.get(e.message, frozenset())
        )
        if need is None:
            count = "any number of times (an edge bringing it has `max_turns: null`)"
            fix = "leave `max_turns` out (or null) here, and bound the edge that brings the work"
        else:
            count = f"up to {need} times"
            fix = f"leave `max_turns` out (it then follows the work) or make it at least {need}"
        issues.append(
            config.issue(
                "graph",
                index,
                "max_turns",
                message=f"'{edge.source}' can be handed work it answers with {edge.message} "
                f"({' or '.join(work)}; {', '.join(brought) or 'nothing'}) {count} in an episode, but this "
                f"edge carries its answers {edge.max_turns} time{'s' if edge.max_turns > 1 else ''}: the "
                f"rest would be dropped; {fix}",
            )
        )
    return issues


def _cycle_issues(config: SocietyConfig, graph: nx.MultiDiGraph) -> list[ConfigIssue]:
    """A cycle whose every edge is unbounded (`max_turns: null`) may run forever: report each.

    A condition (`when`) does not bound a cycle, because it may keep holding; only turns do.
    Cycles are looked for among unbounded edges alone, so a bounded edge parallel to an unbounded
    one does not hide the unbounded loop.
    """
    import networkx as nx

    endless = nx.DiGraph()
    first_edge: dict[tuple[str, str], int] = {}
    for source, target, index, data in graph.edges(keys=True, data=True):
        if data["max_turns"] is None and data["deliver"] == "now":
            endless.add_edge(source, target)
            first_edge[(source, target)] = min(index, first_edge.get((source, target), index))
    issues: list[ConfigIssue] = []
    found: list[tuple[int, list[str]]] = []
    for cycle in nx.simple_cycles(endless):
        hops = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        first = min(range(len(hops)), key=lambda h: first_edge[hops[h]])
        # Start the cycle at its earliest edge in the file, so the report does not depend on networkx.
        found.append((first_edge[hops[first]], cycle[first:] + cycle[:first]))
    for index, cycle in sorted(found):
        loop = " -> ".join([*cycle, cycle[0]])
        issues.append(
            config.issue(
                "graph",
                index,
                message=f"cycle {loop} may never end: every edge on it has `max_turns: null`; give one of "
                "them a max_turns (a `when` condition alone does not bound a cycle)",
            )
        )
    return issues


def _reachability_issues(config: SocietyConfig, graph: nx.MultiDiGraph) -> list[ConfigIssue]:
    entries = entry_agents(config)
    if not entries:
        openers = sorted({f"{s.name} ({', '.join(sorted(s.opens))})" for s in _all_opening_specs()})
        return [
            config.issue(
                "graph",
                message="no agent opens an episode: add an edge from an agent whose role opens episodes "
                f"carrying one of the messages it opens with: {'; '.join(openers)}",
            )
        ]
    live = live_flows(config)
    acting = set(entries) | {config.graph[i].target for i in live}
    issues: list[ConfigIssue] = []
    for name in config.agents:
        if graph.degree(name) == 0:
            issues.append(
                config.issue("agents", name, message=f"'{name}' is in no graph edge, so it never acts")
            )
        elif name not in acting:
            inbound = sorted({f"{e.message} from '{e.source}'" for e in config.graph if e.target == name})
            issues.append(
                config.issue(
                    "agents",
                    name,
                    message=f"'{name}' never acts: what its edges bring it "
                    f"({', '.join(inbound) or 'nothing'}) "
                    "is never sent, because each sender sends it only in reply to messages nothing sends "
                    f"that sender (episodes are opened by {', '.join(entries)})",
                )
            )
    return issues


def _all_opening_specs() -> list[RoleSpec]:
    return [s for s in all_specs() if s.opens]


def describe_graph(config: SocietyConfig) -> str:
    """The graph as text: agents with their roles, then one line per edge."""
    width = max(len(name) for name in config.agents)
    lines = [f"agents ({len(config.agents)}):"]
    for name, agent in config.agents.items():
        if agent.engine is None:
            how = f"{agent.curriculum.kind} curriculum" if agent.curriculum else "no engine"
        else:
            how = f"engine {agent.engine}"
        policy = f" {agent.policy}" if agent.policy else ""
        extras = [how]
        if agent.trainable:
            extras.append("trainable")
        if agent.autogen is not None:
            extras.append(f"autogen {agent.autogen.factory}")
        lines.append(f"  {name:<{width}}  {agent.role}{policy} ({', '.join(extras)})")
    lines.append(f"edges ({len(config.graph)}):")
    for edge in config.graph:
        notes = []
        if edge.when:
            notes.append(f"when {edge.when}")
        if edge.deliver != "now":
            notes.append(f"delivered {edge.deliver.replace('_', ' ')}")
        if edge.activation:
            notes.append(f"fan-in {edge.activation}")
        bound = (
            "unbounded"
            if edge.max_turns is None
            else f"max {edge.max_turns} turn{'s' if edge.max_turns > 1 else ''}"
        )
        tail = f"  {', '.join(notes)}" if notes else ""
        lines.append(
            f"  {edge.source:>{width}} -> {edge.target:<{width}}  {edge.message:<18} [{bound}]{tail}"
        )
    lines.append(f"episodes opened by: {', '.join(entry_agents(config)) or '(none)'}")
    return "\n".join(lines)
