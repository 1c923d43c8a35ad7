"""The role graph: agents are nodes, each config edge is a typed message from one agent to another.

`validate_graph` checks what the scheduler relies on: every edge joins known agents with a
message the source's role produces and the target's role accepts (the ROLES table), every
condition is a known predicate, every cycle has an exit, and every agent can be reached.

Entry agents are the teachers and any agent that sends but receives nothing: an episode
starts with them, and everyone else must be reachable from them along edges.

ROLES follows the reference design. The Generator accepts AttemptGraded because its reward
(Socratic-Zero) is the Solver's graded success on the problems it poses; the Coach accepts
SolutionSubmitted and ExamResult because a teaching transcript includes the learners' side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from coevo.society.config_errors import ConfigIssue, one_of
from coevo.society.events import MESSAGE_TYPES
from coevo.society.predicates import PREDICATES, UNCONDITIONAL

if TYPE_CHECKING:
    import networkx as nx

    from coevo.society.config import SocietyConfig


@dataclass(frozen=True)
class RoleMessages:
    produces: frozenset[str]
    accepts: frozenset[str]


ROLES: dict[str, RoleMessages] = {
    "teacher": RoleMessages(
        produces=frozenset(
            {"ProblemPosed", "ProblemRefined", "AttemptGraded", "Demonstration", "Explanation"}
        ),
        accepts=frozenset({"SolutionSubmitted", "ExamResult", "CoachReport"}),
    ),
    "solver": RoleMessages(
        produces=frozenset({"SolutionSubmitted"}),
        accepts=frozenset({"ProblemPosed", "ProblemRefined", "AttemptGraded"}),
    ),
    "generator": RoleMessages(
        produces=frozenset({"ProblemPosed"}),
        accepts=frozenset({"Demonstration", "AttemptGraded"}),
    ),
    "student": RoleMessages(
        produces=frozenset({"ExamResult", "SolutionSubmitted"}),
        accepts=frozenset({"Explanation", "ProblemPosed"}),
    ),
    "coach": RoleMessages(
        produces=frozenset({"CoachReport"}),
        accepts=frozenset({"Explanation", "ExamResult", "SolutionSubmitted"}),
    ),
}


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
            )
    return graph


def entry_agents(config: SocietyConfig, graph: nx.MultiDiGraph) -> list[str]:
    return [
        name
        for name, agent in config.agents.items()
        if agent.role == "teacher" or (graph.in_degree(name) == 0 and graph.out_degree(name) > 0)
    ]


def validate_graph(config: SocietyConfig) -> list[ConfigIssue]:
    issues = _edge_issues(config)
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
            source_role = config.agents[edge.source].role
            target_role = config.agents[edge.target].role
            if edge.message not in ROLES[source_role].produces:
                produced = ", ".join(sorted(ROLES[source_role].produces))
                issues.append(
                    config.issue(
                        *at,
                        "message",
                        message=f"'{edge.source}' is a {source_role}, which does not produce {edge.message} "
                        f"(a {source_role} produces: {produced})",
                    )
                )
            if edge.message not in ROLES[target_role].accepts:
                accepted = ", ".join(sorted(ROLES[target_role].accepts))
                issues.append(
                    config.issue(
                        *at,
                        "message",
                        message=f"'{edge.target}' is a {target_role}, which does not accept {edge.message} "
                        f"(a {target_role} accepts: {accepted})",
                    )
                )
        if edge.when is not None and edge.when not in PREDICATES:
            issues.append(
                config.issue(
                    *at, "when", message=f"unknown predicate '{edge.when}'{one_of(edge.when, PREDICATES)}"
                )
            )
    return issues


def _cycle_issues(config: SocietyConfig, graph: nx.MultiDiGraph) -> list[ConfigIssue]:
    """A cycle made only of unbounded, unconditional edges never ends: report each such cycle.

    Cycles are looked for among those edges alone, so a bounded or conditional edge parallel to an
    unbounded one does not hide the unbounded loop.
    """
    import networkx as nx

    endless = nx.DiGraph()
    first_edge: dict[tuple[str, str], int] = {}
    for source, target, index, data in graph.edges(keys=True, data=True):
        conditional = data["when"] is not None and data["when"] != UNCONDITIONAL
        if data["max_turns"] is None and not conditional:
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
                message=f"cycle {loop} never ends: every edge on it has `max_turns: null` and no `when`; "
                "bound one of them with max_turns or a condition",
            )
        )
    return issues


def _reachability_issues(config: SocietyConfig, graph: nx.MultiDiGraph) -> list[ConfigIssue]:
    import networkx as nx

    if len(config.agents) == 1:
        return []
    entries = entry_agents(config, graph)
    if not entries:
        return [
            config.issue(
                "graph",
                message="no entry agent: add a teacher, or an agent that sends messages but receives none",
            )
        ]
    reachable = set(entries)
    for entry in entries:
        reachable |= nx.descendants(graph, entry)
    issues: list[ConfigIssue] = []
    for name in config.agents:
        if graph.degree(name) == 0:
            issues.append(
                config.issue("agents", name, message=f"'{name}' is in no graph edge, so it never acts")
            )
        elif name not in reachable:
            issues.append(
                config.issue(
                    "agents",
                    name,
                    message=f"'{name}' is unreachable: no edge path leads to it from the entry agents "
                    f"({', '.join(entries)})",
                )
            )
    return issues


def describe_graph(config: SocietyConfig) -> str:
    """The graph as text: agents with their roles, then one line per edge with message and condition."""
    graph = build_graph(config)
    width = max(len(name) for name in config.agents)
    lines = [f"agents ({len(config.agents)}):"]
    for name, agent in config.agents.items():
        if agent.policy == "procedural" and agent.curriculum is not None:
            how = f"procedural, {agent.curriculum.kind} curriculum"
        else:
            how = f"engine {agent.engine}"
        trainable = ", trainable" if agent.trainable else ""
        lines.append(f"  {name:<{width}}  {agent.role} ({how}{trainable})")
    lines.append(f"edges ({len(config.graph)}):")
    for edge in config.graph:
        condition = f"  when {edge.when}" if edge.when else ""
        bound = (
            "unbounded"
            if edge.max_turns is None
            else f"max {edge.max_turns} turn{'s' if edge.max_turns > 1 else ''}"
        )
        lines.append(
            f"  {edge.source:>{width}} -> {edge.target:<{width}}  {edge.message:<17} [{bound}]{condition}"
        )
    lines.append(f"entry: {', '.join(entry_agents(config, graph)) or '(none)'}")
    return "\n".join(lines)
