"""Societies on the message router, on the replay engine: every shipped config runs a round and,
together, they put a message from each of the five roles in the messages table; societies built
from the role registry (every combination of roles, with fan-out and a bounded cycle) run; and the
routing semantics hold (fan-out, fan-in, turns, conditions, next-round delivery, real links)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coevo.agents.catalog import role_spec
from coevo.memory.store import Store
from coevo.messages import CoachReport, ExamResult, ExplanationScored
from coevo.society.checker import make_replay_engines
from coevo.society.config import SocietyConfig
from coevo.society.config_errors import ConfigError
from coevo.society.errors import NothingToPoseError
from coevo.society.loading import load_config, parse_config
from coevo.society.session import run_id_for, run_society
from coevo.society.validate import validate

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
FIVE_ROLES = {"teacher", "solver", "generator", "student", "coach"}


def one_round(config: SocietyConfig, run_dir: Path) -> Store:
    config = config.model_copy(
        update={"trainers": [], "schedule": config.schedule.model_copy(update={"rounds": 1})}
    )
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    return Store.for_run_dir(run_dir)


def test_shipped_configs_each_run_a_round_and_together_all_five_roles_speak(tmp_path: Path) -> None:
    spoke: set[str] = set()
    for path in CONFIGS:
        config = load_config(path)
        run_dir = tmp_path / path.stem
        store = one_round(config, run_dir)
        events = store.events(run_id_for(run_dir))
        senders = {e.sender for e in events} - {"scheduler", "trainer"}
        assert senders == {name for name in config.agents if any(e.source == name for e in config.graph)}, (
            path
        )
        spoke |= {config.agents[name].role for name in senders}
    assert spoke == FIVE_ROLES


def test_teacher_student_coach_society_runs_with_its_messages_flowing(tmp_path: Path) -> None:
    config = load_config(next(p for p in CONFIGS if p.name == "coach.yaml"))
    assert {a.role for a in config.agents.values()} == {"teacher", "student", "coach"}
    store = one_round(config, tmp_path / "run")
    run_id = run_id_for(tmp_path / "run")
    events = store.events(run_id)
    by_id = {e.id: e for e in events}
    reports = [e for e in events if isinstance(e, CoachReport)]
    assert reports and all(r.parse_error is None and r.scores for r in reports)
    for report in reports:  # a report links to the very messages it reviewed
        assert {by_id[i].type for i in report.transcript_ids} == {"Explanation", "ExamResult"}
    for result in (e for e in events if isinstance(e, ExamResult)):
        assert by_id[result.explanation_id].type == "Explanation"
        assert result.in_reply_to == [result.explanation_id]


def test_a_solver_and_a_student_taught_by_one_teacher_both_act(tmp_path: Path) -> None:
    config = parse_config(
        """
name: mixed
engines: {e: {kind: replay}}
agents:
  teacher: {role: teacher, policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}}
  solver: {role: solver, engine: e}
  student: {role: student, engine: e}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
  - {source: teacher, target: student, message: Explanation}
  - {source: student, target: teacher, message: ExamResult}
schedule: {rounds: 1, problems_per_round: 3, attempts_per_problem: 2}
""",
        "mixed.yaml",
    )
    store = one_round(config, tmp_path / "run")
    types = Counter(e.type for e in store.events(run_id_for(tmp_path / "run")))
    assert types["Explanation"] == 3 and types["ExamResult"] == 3 and types["ExplanationScored"] == 3
    assert types["SolutionSubmitted"] == 6


# --- societies built from the registry -----------------------------------------------------------


def registry_society(teacher_policy: str, members: tuple[str, ...]) -> dict[str, Any]:
    """A society with a Teacher and the given roles, every edge the registry allows between them,
    two agents of the first member's role (fan-out), and, with a Solver, a bounded refinement
    cycle (ProblemRefined delivered at once, at most twice per episode)."""
    agents: dict[str, dict[str, Any]] = {
        "teacher": {
            "role": "teacher",
            "policy": teacher_policy,
            "curriculum": {"kind": "uniform", "skills": ["add_carry"]},
        }
    }
    if teacher_policy == "llm":
        agents["teacher"]["engine"] = "e"
    names = [f"{role}_{i}" for role in members for i in range(2 if role == members[0] else 1)]
    for name in names:
        agents[name] = {"role": name.rsplit("_", 1)[0], "engine": "e"}
    edges = []
    for source, target in itertools.permutations(agents, 2):
        sender = role_spec(agents[source]["role"], agents[source].get("policy"))
        receiver = role_spec(agents[target]["role"], agents[target].get("policy"))
        for message in sorted(sender.produces & receiver.accepts):
            edge: dict[str, Any] = {"source": source, "target": target, "message": message}
            if message == "ProblemRefined":
                edge.update(max_turns=2)
            edges.append(edge)
    return {
        "name": "combo",
        "engines": {"e": {"kind": "replay"}},
        "agents": agents,
        "graph": edges,
        "schedule": {"rounds": 1, "problems_per_round": 3, "attempts_per_problem": 2},
    }


COMBOS = [
    (policy, members)
    for policy in ("procedural", "llm")
    for size in range(1, 5)
    for members in itertools.combinations(("solver", "student", "generator", "coach"), size)
]


@pytest.mark.parametrize(("policy", "members"), COMBOS, ids=[f"{p}-{'+'.join(m)}" for p, m in COMBOS])
def test_registry_societies_check_and_run(policy: str, members: tuple[str, ...], tmp_path: Path) -> None:
    config = SocietyConfig.model_validate(registry_society(policy, members))
    issues = validate(config)
    if "generator" in members and "solver" not in members and "student" not in members:
        # A Generator learns from refinements of failed attempts: without anyone attempting
        # problems there is nothing to refine, so it would never act. The checker says so.
        assert any(w in i.message for i in issues for w in ("never acts", "unreachable", "no agent opens")), (
            issues
        )
        return
    assert issues == [], [i.format("combo") for i in issues]
    store = one_round(config, tmp_path / "run")
    events = store.events(run_id_for(tmp_path / "run"))
    senders = {e.sender for e in events}
    assert set(config.agents) <= senders, f"agents that never acted: {set(config.agents) - senders}"
    if "solver" in members:  # the bounded cycle ran, and stopped at its bound
        refined = Counter(e.episode for e in events if e.type == "ProblemRefined" and e.recipients)
        assert refined and max(refined.values()) <= 2 * (2 if members[0] == "solver" else 1)


# --- routing semantics ----------------------------------------------------------------------------

LBT = next(p for p in CONFIGS if p.name == "lbt.yaml")


def test_fan_out_to_three_students_and_fan_in_before_scoring(tmp_path: Path) -> None:
    store = one_round(load_config(LBT), tmp_path / "run")
    events = store.events(run_id_for(tmp_path / "run"))
    explanations = [e for e in events if e.type == "Explanation"]
    assert explanations and all(
        sorted(e.recipients) == ["student_a", "student_b", "student_c"] for e in explanations
    )
    scored = [e for e in events if isinstance(e, ExplanationScored)]
    # One score per explanation, after all three students' exams (fan-in "all").
    assert len(scored) == len(explanations) and all(s.students == 3 for s in scored)
    assert {s.explanation_id for s in scored} == {e.id for e in explanations}
    for s in scored:
        assert len(s.in_reply_to) == 3 and all(i in {e.id for e in events} for i in s.in_reply_to)


def test_max_turns_bounds_a_cycle_at_run_time(tmp_path: Path) -> None:
    config = parse_config(
        """
name: loop
engines: {e: {kind: replay}}
agents:
  teacher: {role: teacher, policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}}
  solver: {role: solver, engine: e}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted, max_turns: null}
  - {source: teacher, target: solver, message: ProblemRefined, max_turns: 3}
schedule: {rounds: 1, problems_per_round: 4, attempts_per_problem: 2}
""",
        "loop.yaml",
    )
    store = one_round(config, tmp_path / "run")
    events = store.events(run_id_for(tmp_path / "run"))
    for episode in range(4):
        refined = [e for e in events if e.episode == episode and e.type == "ProblemRefined"]
        delivered = [e for e in refined if e.recipients]
        # Refined every time (no condition) until the edge's 3 turns are used; the Teacher skips
        # a refinement nobody could receive, and the episode ends.
        assert len(delivered) == 3 and len(refined) == 3
        assert sum(e.type == "SolutionSubmitted" and e.episode == episode for e in events) == 2 * 4


def test_conditions_and_next_round_delivery(tmp_path: Path) -> None:
    config = load_config(
        next(p for p in CONFIGS if p.name == "demo.yaml"),
        ["schedule.rounds=2", "trainers=[]", "agents.solver.trainable=false", "agents.solver.lora=null"],
    )
    asyncio.run(run_society(config, tmp_path / "run", resume=False, engines=make_replay_engines(config)))
    store = Store.for_run_dir(tmp_path / "run")
    events = store.events(run_id_for(tmp_path / "run"))
    graded: dict[tuple[int, int], list[bool]] = {}
    for e in events:
        if e.type == "AttemptGraded":
            graded.setdefault((e.round, e.episode or 0), []).append(e.correct)  # type: ignore[union-attr]
    refined = [e for e in events if e.type == "ProblemRefined"]
    for e in refined:  # only problems in the learning zone were refined (`when: learning_zone`)
        outcomes = graded[(e.round, e.episode or 0)]
        assert 0 < sum(outcomes) < len(outcomes)
    from_round_0 = [e for e in refined if e.round == 0]
    # Delivered next round: they open round 1's first episodes, answered there.
    round_1_answers = {e.in_reply_to[0] for e in events if e.round == 1 and e.type == "SolutionSubmitted"}
    assert from_round_0 and {e.id for e in from_round_0} <= round_1_answers


def emptied_pool_society() -> SocietyConfig:
    """An LLM Teacher whose pool is emptied after checking (a source that runs dry at run time)."""
    config = parse_config(
        """
name: empty
engines: {e: {kind: replay}}
agents:
  teacher:
    {role: teacher, policy: llm, engine: e, pool: {problems: [{question: "What is 1 + 1?", answer: 2}]}}
  solver: {role: solver, engine: e}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
schedule: {rounds: 1, problems_per_round: 2}
""",
        "empty.yaml",
    )
    config.agents["teacher"].pool.problems.clear()  # type: ignore[union-attr]
    return config


def test_a_round_with_nothing_to_pose_is_an_error(tmp_path: Path) -> None:
    config = emptied_pool_society()
    with pytest.raises(NothingToPoseError, match="posed nothing"):
        asyncio.run(run_society(config, tmp_path / "run", resume=False, engines=make_replay_engines(config)))
    assert Store.for_run_dir(tmp_path / "run").get_run(run_id_for(tmp_path / "run")).status == "failed"  # type: ignore[union-attr]


def test_an_empty_pool_is_refused_by_check() -> None:
    with pytest.raises(ConfigError, match="the pool holds no problems"):
        parse_config(
            """
name: empty
engines: {e: {kind: replay}}
agents:
  teacher: {role: teacher, policy: llm, engine: e, pool: {problems: []}}
  solver: {role: solver, engine: e}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
""",
            "empty.yaml",
        )


def test_an_llm_teacher_writes_problems_and_keeps_only_those_it_re_derives(tmp_path: Path) -> None:
    config = parse_config(
        """
name: writer
engines: {e: {kind: replay}}
agents:
  teacher: {role: teacher, policy: llm, engine: e, params: {write: true, verify_samples: 3, verify_agree: 1}}
  solver: {role: solver, engine: e}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
schedule: {rounds: 1, problems_per_round: 6, attempts_per_problem: 2}
""",
        "writer.yaml",
    )
    store = one_round(config, tmp_path / "run")
    run_id = run_id_for(tmp_path / "run")
    [finished] = store.events(run_id, types=["RoundFinished"])
    metrics = finished.metrics  # type: ignore[union-attr]
    assert metrics["teacher.written"] == 6 and 0 < metrics["teacher.written_kept"] <= 6
    posed = [p for p in store.problems(run_id) if p.source == "generated"]
    assert len(posed) == metrics["teacher.written_kept"]
    for problem in posed:  # the replay Teacher writes "What is a + b?": kept ones carry a + b
        a, b = map(int, problem.question.removeprefix("What is ").rstrip("?").split(" + "))
        assert int(problem.answer) == a + b


def test_subscribers_are_released_when_a_run_fails(tmp_path: Path) -> None:
    from coevo.society.bus import EventBus

    config = emptied_pool_society()

    async def run() -> list[object]:
        bus = EventBus()
        queue = bus.subscribe()
        with pytest.raises(NothingToPoseError):
            await run_society(
                config, tmp_path / "run", resume=False, engines=make_replay_engines(config), bus=bus
            )
        seen = []
        while not queue.empty():
            seen.append(queue.get_nowait())
        return seen

    seen = asyncio.run(run())
    assert seen and seen[-1] is None  # the stream ended: a follower is not left waiting
