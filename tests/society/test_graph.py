"""The role graph (build, validate, describe) read from the role registry, and the edge predicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coevo.agents.catalog import all_specs, message_table
from coevo.messages import MESSAGE_TYPES, Outcome
from coevo.society.config import SocietyConfig
from coevo.society.graph import build_graph, describe_graph, entry_agents, validate_graph
from coevo.society.loading import load_config
from coevo.society.predicates import PREDICATES, UnknownPredicateError, holds, predicate

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


def test_every_message_type_is_sent_and_accepted_by_some_role() -> None:
    for spec in all_specs():
        assert spec.produces <= MESSAGE_TYPES and spec.accepts <= MESSAGE_TYPES
    table = {message: (senders, receivers) for message, senders, receivers in message_table()}
    assert set(table) == MESSAGE_TYPES
    # ExplanationScored and ProposalReviewed are records a teacher keeps; the rest flow somewhere.
    for message, (senders, receivers) in table.items():
        assert senders, message
        assert receivers or message in {"ProposalReviewed"}, message


def test_build_graph_keeps_parallel_edges_with_their_attributes() -> None:
    config = load_config(CONFIGS / "socratic_zero.yaml")
    graph = build_graph(config)
    assert set(graph.nodes) == {"teacher", "solver", "generator"}
    assert graph.nodes["solver"]["role"] == "solver"
    teacher_to_solver = graph.get_edge_data("teacher", "solver")
    assert {d["message"] for d in teacher_to_solver.values()} == {"ProblemPosed", "ProblemRefined"}
    refined = next(d for d in teacher_to_solver.values() if d["message"] == "ProblemRefined")
    assert refined["when"] == "learning_zone" and refined["max_turns"] == 1
    assert refined["deliver"] == "next_round"
    assert entry_agents(config) == ["teacher"]


def test_describe_graph_lists_agents_edges_and_conditions() -> None:
    text = describe_graph(load_config(CONFIGS / "demo.yaml"))
    assert "teacher  teacher procedural (alp-gmm curriculum)" in text
    assert "solver -> teacher  SolutionSubmitted" in text
    assert "when learning_zone, delivered next round" in text
    assert text.endswith("episodes opened by: teacher")


def test_a_message_the_target_does_not_accept_is_refused() -> None:
    config = society(
        {"t": "teacher", "s": "solver"},
        [
            edge("t", "s", "ProblemPosed"),
            edge("s", "t", "SolutionSubmitted"),
            edge("t", "s", "AttemptGraded"),
        ],
    )
    issues = validate_graph(config)
    assert [(i.path, i.line) for i in issues] == [("graph.2.message", None)]
    assert "does not accept AttemptGraded" in issues[0].message


def test_work_whose_answer_goes_nowhere_is_refused() -> None:
    config = society({"t": "teacher", "s": "solver"}, [edge("t", "s", "ProblemPosed")])
    [issue] = validate_graph(config)
    assert issue.path == "graph.0" and "SolutionSubmitted" in issue.message and "thrown away" in issue.message


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


def test_a_condition_alone_does_not_bound_a_cycle_but_turns_do() -> None:
    unbounded = [
        edge("t", "s", "ProblemPosed"),
        edge("t", "s", "ProblemRefined", max_turns=None, when="learning_zone"),
        edge("s", "t", "SolutionSubmitted", max_turns=None),
    ]
    assert any(
        "may never end" in i.message
        for i in validate_graph(society({"t": "teacher", "s": "solver"}, unbounded))
    )
    bounded = [
        *unbounded[:1],
        edge("t", "s", "ProblemRefined", max_turns=3, when="learning_zone"),
        unbounded[2],
    ]
    assert validate_graph(society({"t": "teacher", "s": "solver"}, bounded)) == []


def test_next_round_delivery_is_not_a_cycle() -> None:
    edges = [
        edge("t", "s", "ProblemPosed"),
        edge("t", "s", "ProblemRefined", max_turns=None, deliver="next_round"),
        edge("s", "t", "SolutionSubmitted", max_turns=None),
    ]
    assert validate_graph(society({"t": "teacher", "s": "solver"}, edges)) == []


def test_graph_without_an_agent_that_opens_episodes() -> None:
    config = society({"s": "solver", "g": "generator"}, [edge("s", "g", "SolutionSubmitted")])
    messages = [i.message for i in validate_graph(config)]
    assert any("no agent opens an episode" in m for m in messages)


def test_an_agent_in_no_edge_never_acts() -> None:
    config = society(
        {"t": "teacher", "s": "solver", "c": "coach"},
        [edge("t", "s", "ProblemPosed"), edge("s", "t", "SolutionSubmitted")],
    )
    [issue] = validate_graph(config)
    assert issue.path == "agents.c" and "never acts" in issue.message


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
        ("too_hard", 0, 0, False),
    ],
)
def test_predicates(name: str, correct: int, attempts: int, expected: bool) -> None:
    assert predicate(name)(Outcome(attempts=attempts, correct=correct)) is expected


def test_a_message_without_an_outcome_passes_only_unconditional_edges() -> None:
    assert holds(None, None) and holds("always", None)
    assert not holds("learning_zone", None)


def test_unknown_predicate_suggests_the_closest() -> None:
    with pytest.raises(UnknownPredicateError, match="did you mean 'mastered'"):
        predicate("masterd")
    assert "learning_zone" in PREDICATES
