"""What `coevo check` (and `coevo run`, which checks the same way) refuses because it would
otherwise do nothing or fail at run time, each with its field and line — or what now works instead
(issue "Reliability II", item 3): conditions on messages without an outcome, reply edges that run
out of turns or wait for the next round, unknown prompt versions, LoRA ranks the engine cannot
serve, trainable agents without local weights, LoRA alphas that are not integers, engine options a
resume would change sampling with, plugins that exit at import, edges listed twice, unset
variables in the memory URL, and configs too deep or questions too long."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections import Counter
from pathlib import Path

import pytest

from coevo.agents import catalog
from coevo.agents.catalog import role_spec
from coevo.agents.coach import COACH_PROMPTS
from coevo.agents.generator import GENERATOR_PROMPTS
from coevo.agents.registry import _REGISTRY, RoleRegistryError
from coevo.agents.student import STUDENT_PROMPTS
from coevo.agents.teacher import TEACHER_PROMPTS
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.config_errors import ConfigError, ConfigIssue
from coevo.society.loading import load_config, parse_config
from coevo.society.session import RunDirError, load_snapshot, prepare_run_dir, run_id_for, run_society
from coevo.society.validate import lora_settings
from coevo.tasks.loaders import MAX_QUESTION_CHARS
from coevo.tasks.prompts import SOLVER_PROMPTS

# A Teacher and a Solver on the replay engine (a test double that `coevo check` accepts in code).
SOCIETY = """\
name: t
engines:
  local: {kind: replay, model: "builtin:smollm2-135m-instruct"}
agents:
  teacher: {role: teacher, policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}}
  solver: {role: solver, engine: local, sampling: {max_tokens: 32}}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
schedule: {rounds: 1, problems_per_round: 3, attempts_per_problem: 2}
"""
TRAINED = (
    SOCIETY.replace("engine: local, sampling", "engine: local, trainable: true, sampling")
    + "trainers:\n  - {kind: socratic_solver_dpo, agent: solver}\n"
)


def line_of(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def refusal(text: str, path: str, overrides: tuple[str, ...] = ()) -> ConfigIssue:
    """The issue `coevo check` reports at `path` for this config (it must report one)."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "society.yaml", overrides)
    found = [i for i in info.value.issues if i.path == path]
    assert found, f"nothing reported at {path}:\n{info.value}"
    return found[0]


def with_edge(text: str, edge: str) -> str:
    return text.replace("schedule:", f"  - {edge}\nschedule:", 1)


# --- 1. a condition on a message sent without an outcome ------------------------------------------


def test_a_condition_on_a_message_without_an_outcome_is_refused() -> None:
    for message, index in (("SolutionSubmitted", 1), ("ProblemPosed", 0)):
        text = SOCIETY.replace(f"message: {message}}}", f"message: {message}, when: has_failures}}")
        issue = refusal(text, f"graph.{index}.when")
        assert issue.line == line_of(text, "when: has_failures")
        assert "would never deliver" in issue.message
        assert "only Demonstration, ExplanationScored, ProblemRefined carry an outcome" in issue.message
    # The set comes from the registry, which the router holds every role to when it emits.
    assert role_spec("teacher", "procedural").outcomes == {
        "ProblemRefined",
        "Demonstration",
        "ExplanationScored",
    }
    assert role_spec("solver").outcomes == frozenset()
    # A condition on a message that carries one is fine, and `when: always` is no condition at all.
    parse_config(
        with_edge(SOCIETY, "{source: teacher, target: solver, message: ProblemRefined, when: mastered}")
    )
    parse_config(SOCIETY.replace("message: ProblemPosed}", "message: ProblemPosed, when: always}"))


LIAR = """
from coevo.agents.registry import register_role
from coevo.agents.role import Role
from coevo.messages import Outcome, ProblemPosed, SolutionSubmitted


@register_role("liar", summary="", handles={"ProblemPosed": {"SolutionSubmitted"}},
               needs_reply={"ProblemPosed"}, engine="none")
class Liar(Role):
    async def handle(self, ctx, inbox):
        for m in inbox:
            answer = SolutionSubmitted(problem_id=m.problem_id, attempt_index=0, response="1")
            ctx.emit(answer, outcome=Outcome(attempts=1, correct=1), reply_to=[m])
"""


def test_a_role_that_sends_an_outcome_its_registry_entry_does_not_declare_stops_the_run(
    tmp_path: Path,
) -> None:
    """The router holds roles to the registry the checker reads, so the two cannot disagree."""
    (tmp_path / "liar.py").write_text(LIAR)
    text = "plugins: [liar.py]\n" + SOCIETY.replace(
        "{role: solver, engine: local, sampling: {max_tokens: 32}}", "{role: liar}"
    ).replace('engines:\n  local: {kind: replay, model: "builtin:smollm2-135m-instruct"}\n', "")
    (tmp_path / "society.yaml").write_text(text)
    before = {name: dict(variants) for name, variants in _REGISTRY.items()}
    try:
        config = load_config(tmp_path / "society.yaml")
        with pytest.raises(RoleRegistryError, match="sent SolutionSubmitted with an outcome"):
            asyncio.run(run_society(config, tmp_path / "run", resume=False, engines={}))
    finally:
        _REGISTRY.clear()
        _REGISTRY.update(before)


# --- 2. a reply edge that runs out of turns -------------------------------------------------------


def test_answers_to_a_problem_refined_at_once_are_all_graded(tmp_path: Path) -> None:
    """A Solver handed a refined problem `now` answers twice an episode: its reply edge gets two
    turns by default (so the second attempts are graded), and a `max_turns: 1` is refused."""
    text = with_edge(SOCIETY, "{source: teacher, target: solver, message: ProblemRefined}")
    config = parse_config(text, "society.yaml")
    assert [e.max_turns for e in config.graph] == [1, 2, 1]
    asyncio.run(run_society(config, tmp_path / "run", resume=False, engines=make_replay_engines(config)))
    events = Store.for_run_dir(tmp_path / "run").events(run_id_for(tmp_path / "run"))
    types = Counter(e.type for e in events)
    assert types["ProblemRefined"] == 3  # one per episode: its edge has one turn
    assert types["SolutionSubmitted"] == 2 * 3 * 2
    assert types["AttemptGraded"] == types["SolutionSubmitted"]  # none dropped
    refined = {e.id for e in events if e.type == "ProblemRefined"}
    answers = [e for e in events if e.type == "SolutionSubmitted" and set(e.in_reply_to) <= refined]
    assert len(answers) == 6 and all(a.recipients == ["teacher"] for a in answers)

    explicit = text.replace("message: SolutionSubmitted}", "message: SolutionSubmitted, max_turns: 1}")
    issue = refusal(explicit, "graph.1.max_turns")
    assert issue.line == line_of(explicit, "max_turns: 1")
    assert "up to 2 times in an episode" in issue.message and "the rest would be dropped" in issue.message
    # An unbounded refinement edge leaves the answers unbounded too: a bound there is refused.
    unbounded = explicit.replace("message: ProblemRefined}", "message: ProblemRefined, max_turns: null}")
    assert "any number of times" in refusal(unbounded, "graph.1.max_turns").message


# --- 3. a reply held for the next round -----------------------------------------------------------


def test_only_what_can_open_an_episode_is_held_for_the_next_round() -> None:
    held = SOCIETY.replace("message: SolutionSubmitted}", "message: SolutionSubmitted, deliver: next_round}")
    issue = refusal(held, "graph.1.deliver")
    assert issue.line == line_of(held, "deliver: next_round")
    assert "a teacher (procedural) cannot open one" in issue.message and "deliver it now" in issue.message

    lbt = """\
name: lbt
engines: {local: {kind: replay}}
agents:
  teacher: {role: teacher, policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}}
  student: {role: student, engine: local}
graph:
  - {source: teacher, target: student, message: Explanation}
  - {source: student, target: teacher, message: ExamResult, deliver: next_round}
"""
    assert "ExamResult belongs to the round it is sent in" in refusal(lbt, "graph.1.deliver").message
    explained = lbt.replace("ExamResult, deliver: next_round", "ExamResult").replace(
        "message: Explanation}", "message: Explanation, deliver: next_round}"
    )
    assert "a student can open one only with ProblemPosed" in refusal(explained, "graph.0.deliver").message
    # Socratic-Zero's refined problems join the next round (the demo).
    parse_config(
        with_edge(SOCIETY, "{source: teacher, target: solver, message: ProblemRefined, deliver: next_round}")
    )


# --- 4. prompt versions ---------------------------------------------------------------------------


def test_a_prompt_version_the_role_has_no_prompts_for_is_refused() -> None:
    issue = refusal(SOCIETY, "agents.solver.prompt_version", ("agents.solver.prompt_version=v9",))
    assert issue.line == "--set" and "no prompt version 'v9'" in issue.message
    text = SOCIETY.replace("engine: local, sampling", "engine: local, prompt_version: v2, sampling")
    assert refusal(text, "agents.solver.prompt_version").line == line_of(text, "prompt_version: v2")
    # The registry's versions are the keys of the prompt tables the roles read.
    assert role_spec("solver").prompts == SOLVER_PROMPTS.keys()
    assert role_spec("student").prompts == STUDENT_PROMPTS.keys() & SOLVER_PROMPTS.keys()
    assert role_spec("generator").prompts == GENERATOR_PROMPTS.keys()
    assert role_spec("coach").prompts == COACH_PROMPTS.keys()
    assert role_spec("teacher", "llm").prompts == TEACHER_PROMPTS.keys()


# --- 5. a LoRA rank above what the engine serves --------------------------------------------------


def test_a_lora_rank_above_the_vllm_engines_max_is_refused() -> None:
    text = TRAINED.replace("{kind: replay,", "{kind: vllm, options: {lora_serving: adapter},").replace(
        "trainable: true,", "trainable: true, lora: {r: 32},"
    )
    issue = refusal(text, "agents.solver.lora.r")
    assert issue.line == line_of(text, "lora: {r: 32}")
    assert "above the max_lora_rank 16" in issue.message and "max_lora_rank to at least 32" in issue.message
    parse_config(text.replace("lora_serving: adapter", "lora_serving: adapter, max_lora_rank: 32"))
    parse_config(text.replace("lora_serving: adapter", "lora_serving: merged"))  # merged: no limit


# --- 6. a trainable agent without local weights ---------------------------------------------------


def test_a_trainable_agent_whose_model_is_not_on_disk_is_refused(tmp_path: Path) -> None:
    text = TRAINED.replace('model: "builtin:smollm2-135m-instruct"', 'model: "Qwen/Qwen2.5-0.5B-Instruct"')
    issue = refusal(text, "engines.local.model")
    assert issue.line == line_of(text, "local:")
    assert "not a model folder on this machine" in issue.message and "loads the base weights" in issue.message
    parse_config(SOCIETY.replace("builtin:smollm2-135m-instruct", "Qwen/Qwen2.5-0.5B-Instruct"))  # untrained
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    parse_config(TRAINED.replace("builtin:smollm2-135m-instruct", str(tmp_path / "model")))


# --- 7. LoRA alpha ------------------------------------------------------------------------------


def test_a_lora_alpha_that_is_not_an_integer_is_refused_not_truncated() -> None:
    text = TRAINED.replace("trainable: true,", "trainable: true, lora: {alpha: 16.5},")
    issue = refusal(text, "agents.solver.lora.alpha")
    assert issue.line == line_of(text, "lora: {alpha") and "valid integer" in issue.message
    config = parse_config(text.replace("16.5", "24"))
    assert lora_settings(config, "solver")["lora_alpha"] == 24


# --- 8. resuming with engine options that change sampling ---------------------------------------


def test_resume_refuses_engine_options_that_change_what_is_sampled(tmp_path: Path) -> None:
    config = parse_config(
        SOCIETY.replace("{kind: replay,", "{kind: transformers, options: {max_batch_size: 8},"), "t.yaml"
    )
    run_dir = tmp_path / "run"
    prepare_run_dir(config, run_dir, force=False)
    for override in (
        "engines.local.options.seed=3",
        "engines.local.options.dtype=float16",
        "engines.local.options={max_batch_size: 8, device: cuda}",
    ):
        with pytest.raises(RunDirError, match=r"cannot change engines\.local\.options\.\w+: .*samples"):
            load_snapshot(run_dir, [override])
    resumed = load_snapshot(
        run_dir, ["engines.local.options.max_batch_size=4", "engines.local.options.batch_window_ms=2"]
    )
    assert resumed.engines["local"].options == {"max_batch_size": 4, "batch_window_ms": 2}


# --- 9. a plugin that exits at import ------------------------------------------------------------


def test_a_plugin_that_raises_system_exit_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(0)\n")
    path = tmp_path / "society.yaml"
    path.write_text("plugins: [quits.py]\n" + SOCIETY)
    with pytest.raises(ConfigError, match=r"society.yaml:1: plugins.0: plugin .*quits.py failed to import: "):
        load_config(path)
    with pytest.raises(ConfigError, match="SystemExit"):
        load_config(path)
    # An installed package's plugin (an entry point) that exits is refused the same way.
    (tmp_path / "exits_pkg.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="exits", value="exits_pkg", group=catalog.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kwargs: [entry])
    monkeypatch.setattr(catalog, "_loaded_entry_points", False)
    with pytest.raises(
        ConfigError, match=r"plugins: plugin 'exits' \(exits_pkg\) failed to import: SystemExit: 3"
    ):
        parse_config(SOCIETY)
    (tmp_path / "stopped.py").write_text("raise KeyboardInterrupt\n")  # Ctrl+C still stops coevo
    path.write_text("plugins: [stopped.py]\n" + SOCIETY)
    with pytest.raises(KeyboardInterrupt):
        load_config(path)


# --- 10. an edge listed twice ---------------------------------------------------------------------


def test_an_edge_listed_twice_is_refused_naming_both_lines() -> None:
    text = with_edge(SOCIETY, "{source: teacher, target: solver, message: ProblemPosed, when: always}")
    issue = refusal(text, "graph.2")
    assert issue.line == line_of(text, "when: always")
    assert f"repeats graph.0 (line {line_of(text, 'message: ProblemPosed}')})" in issue.message
    # Another delivery is another edge.
    parse_config(SOCIETY.replace("message: ProblemPosed}", "message: ProblemPosed, max_turns: 2}"))


# --- 11. an unset variable in the memory URL -----------------------------------------------------


def test_an_unset_variable_in_the_memory_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COEVO_TEST_DB_PASSWORD", raising=False)
    text = SOCIETY.replace(
        "engines:", 'memory: {url: "postgresql://u:${COEVO_TEST_DB_PASSWORD}@db/coevo"}\nengines:'
    )
    issue = refusal(text, "memory.url")
    assert issue.line == line_of(text, "memory:")
    assert issue.message == "environment variable COEVO_TEST_DB_PASSWORD is not set"
    monkeypatch.setenv("COEVO_TEST_DB_PASSWORD", "secret")
    assert parse_config(text).memory.url == "postgresql://u:${COEVO_TEST_DB_PASSWORD}@db/coevo"  # kept


# --- 12. size and depth limits of a config --------------------------------------------------------


def test_configs_too_deep_and_pool_questions_too_long_are_refused(tmp_path: Path) -> None:
    for depth in (70, 100_000):  # past the limit, and past what PyYAML can recurse into
        with pytest.raises(ConfigError, match="nests deeper than 64 levels"):
            parse_config("name: x\nagents: " + "[" * depth + "]" * depth + "\n", "deep.yaml")
    text = SOCIETY.replace(
        "policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}",
        "policy: llm, engine: local, pool: {problems: [{question: QUESTION, answer: 1}]}",
    )
    parse_config(text.replace("QUESTION", "x" * MAX_QUESTION_CHARS))
    issue = refusal(
        text.replace("QUESTION", "x" * (MAX_QUESTION_CHARS + 1)), "agents.teacher.pool.problems.0.question"
    )
    assert (
        issue.line == line_of(text, "pool:") and f"at most {MAX_QUESTION_CHARS} characters" in issue.message
    )
    big = tmp_path / "big.yaml"
    big.write_text(SOCIETY + "#" * (5 * 2**20) + "\n")
    with pytest.raises(ConfigError, match="over the 4,194,304 a config may hold"):
        load_config(big)


def test_a_teacher_trainer_needs_a_model_teacher_whose_explanations_come_back_scored() -> None:
    # LbT's Teacher DPO: on the Solver it is refused naming both roles; on a procedural Teacher
    # (no model) and on a Teacher whose Explanations no Student answers, refused with the reason.
    on_solver = TRAINED.replace("socratic_solver_dpo", "lbt_teacher_dpo")
    assert (
        refusal(on_solver, "trainers.0.agent").message
        == "lbt_teacher_dpo trains a teacher, but 'solver' is a solver"
    )
    procedural = (
        SOCIETY.replace("policy: procedural,", "policy: procedural, trainable: true,")
        + "trainers:\n  - {kind: lbt_teacher_dpo, agent: teacher}\n"
    )
    assert "has no model to train" in refusal(procedural, "agents.teacher.trainable").message
    unanswered = (
        SOCIETY.replace(
            "teacher: {role: teacher, policy: procedural,",
            "teacher: {role: teacher, policy: llm, engine: local, trainable: true,",
        )
        + "trainers:\n  - {kind: lbt_teacher_dpo, agent: teacher}\n"
    )
    assert "no Explanation edge leads from teacher to a student and back as ExamResult" in (
        refusal(unanswered, "trainers.0").message
    )


def test_an_opening_edge_carries_every_rationale_its_teacher_writes() -> None:
    # An LLM Teacher writing 3 rationales per problem: its Explanation edge carries 3 by default
    # (and the Student's ExamResult edge, which answers each, follows); a max_turns below that,
    # which would store rationales no Student ever reads, is refused.
    lbt = """\
name: lbt
engines: {local: {kind: replay}}
agents:
  teacher:
    role: teacher
    policy: llm
    engine: local
    params: {explanations: 3}
    curriculum: {kind: uniform, skills: [add_carry]}
  student: {role: student, engine: local}
graph:
  - {source: teacher, target: student, message: Explanation}
  - {source: student, target: teacher, message: ExamResult}
"""
    config = parse_config(lbt, "society.yaml")
    assert [edge.max_turns for edge in config.graph] == [3, 3]
    short = lbt.replace("message: Explanation}", "message: Explanation, max_turns: 2}")
    issue = refusal(short, "graph.0.max_turns")
    assert issue.line == line_of(short, "max_turns: 2")
    assert "'teacher' sends 3 Explanation messages each time it opens an episode" in issue.message
