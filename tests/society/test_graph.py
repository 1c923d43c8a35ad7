"""The role graph (build, validate, describe) and the edge predicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest

from coevo.society.config import Role, SocietyConfig, load_config
from coevo.society.events import MESSAGE_TYPES
from coevo.society.graph import ROLES, build_graph, describe_graph, entry_agents, validate_graph
from coevo.society.predicates import PREDICATES, EpisodeOutcome, UnknownPredicateError, predicate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def society(agents: dict[str, str], edges: list[dict[str, Any]]) -> SocietyConfig:
    """A config built in code (no file, so issues carry no line)."""
    return SocietyConfig.model_validate(
        {
            "name": "g",
            "engines": {"e": {"kind": "replay"}},
            "agents": {
                name: {"role": role, "policy": "procedural"}
                if role == "teacher"
                else {"role": role, "engine": "e"}
                for name, role in agents.items()
            },
            "graph": edges,
        }
    )


def edge(source: str, target: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, "message": message, **extra}


def test_roles_table_covers_every_role_and_only_message_types() -> None:
    assert set(ROLES) == set(get_args(Role))
    for spec in ROLES.values():
        assert spec.produces <= MESSAGE_TYPES and spec.accepts <= MESSAGE_TYPES
    # Every message type some role produces is accepted by some role, and vice versa.
    produced = set().union(*(s.produces for s in ROLES.values()))
    accepted = set().union(*(s.accepts for s in ROLES.values()))
    assert produced == accepted == MESSAGE_TYPES


def test_build_graph_keeps_parallel_edges_with_their_attributes() -> None:
    config = load_config(CONFIGS / "socratic_zero.yaml")
    graph = build_graph(config)
    assert set(graph.nodes) == {"teacher", "solver", "generator"}
    assert graph.nodes["solver"]["role"] == "solver"
    teacher_to_solver = graph.get_edge_data("teacher", "solver")
    assert {d["message"] for d in teacher_to_solver.values()} == {
        "ProblemPosed",
        "AttemptGraded",
        "ProblemRefined",
    }
    refined = next(d for d in teacher_to_solver.values() if d["message"] == "ProblemRefined")
    assert refined["when"] == "learning_zone" and refined["max_turns"] == 1
    assert entry_agents(config, graph) == ["teacher"]


def test_describe_graph_lists_agents_edges_and_conditions() -> None:
    text = describe_graph(load_config(CONFIGS / "demo.yaml"))
    assert "teacher  teacher (procedural, alp-gmm curriculum)" in text
    assert "solver -> teacher  SolutionSubmitted" in text
    assert "when learning_zone" in text
    assert text.endswith("entry: teacher")


def test_code_built_config_validates_without_lines() -> None:
    config = society(
        {"t": "teacher", "s": "solver"},
        [edge("t", "s", "ProblemPosed"), edge("s", "t", "SolutionSubmitted"), edge("s", "t", "ExamResult")],
    )
    issues = validate_graph(config)
    assert [(i.path, i.line) for i in issues] == [("graph.2.message", None)]


def test_unbounded_cycle_is_found_even_beside_a_bounded_parallel_edge() -> None:
    config = society(
        {"t": "teacher", "s": "solver"},
        [
            edge("t", "s", "ProblemPosed", max_turns=None),
            edge("t", "s", "ProblemRefined", when="has_failures"),  # bounded, but the loop above is not
            edge("s", "t", "SolutionSubmitted", max_turns=None),
        ],
    )
    issues = validate_graph(config)
    assert len(issues) == 1 and issues[0].path == "graph.0" and "t -> s -> t" in issues[0].message


def test_a_conditional_hop_is_an_exit() -> None:
    config = society(
        {"t": "teacher", "s": "solver"},
        [
            edge("t", "s", "ProblemRefined", max_turns=None, when="learning_zone"),
            edge("s", "t", "SolutionSubmitted", max_turns=None),
        ],
    )
    assert validate_graph(config) == []


def test_graph_without_entry_agent() -> None:
    config = society(
        {"s": "solver", "g": "generator"},
        [edge("g", "s", "ProblemPosed"), edge("s", "g", "SolutionSubmitted")],
    )
    messages = [i.message for i in validate_graph(config)]
    assert any("no entry agent" in m for m in messages)


def test_a_single_agent_needs_no_edges() -> None:
    assert validate_graph(society({"t": "teacher"}, [])) == []


@pytest.mark.parametrize(
    ("name", "correct", "attempts", "expected"),
    [
        ("always", 0, 8, True),
        ("has_failures", 7, 8, True),
        ("has_failures", 8, 8, False),
        ("any_correct", 0, 8, False),
        ("learning_zone", 4, 8, True),
        ("learning_zone", 8, 8, False),
        ("learning_zone", 0, 8, False),
        ("mastered", 8, 8, True),
        ("mastered", 0, 0, False),
        ("too_hard", 0, 8, True),
        ("too_hard", 1, 8, False),
    ],
)
def test_predicates(name: str, correct: int, attempts: int, expected: bool) -> None:
    outcome = EpisodeOutcome(
        success_rate=correct / attempts if attempts else 0.0, attempts=attempts, correct=correct
    )
    assert predicate(name)(outcome) is expected


def test_unknown_predicate_suggests_the_closest() -> None:
    with pytest.raises(UnknownPredicateError, match="did you mean 'mastered'"):
        predicate("masterd")
    assert "learning_zone" in PREDICATES
