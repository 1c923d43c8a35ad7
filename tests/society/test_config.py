"""Society config loading: the example configs, `--set` overrides, and bad configs that must be
reported with the right field path and line (table-driven), plus `coevo check` exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from coevo.cli import build_parser
from coevo.society.check import check_command
from coevo.society.config import SocietyConfig, apply_overrides
from coevo.society.config_errors import ConfigError, ConfigIssue
from coevo.society.loading import load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

BASE = """\
name: t
seed: 0
engines:
  local:
    kind: replay
    model: builtin:smollm2-135m-instruct
agents:
  teacher:
    role: teacher
    policy: procedural
    curriculum: {kind: uniform, skills: [add_carry]}
  solver:
    role: solver
    engine: local
    trainable: true
    sampling: {temperature: 0.8, max_tokens: 64}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
  - {source: teacher, target: solver, message: ProblemRefined, when: learning_zone}
schedule: {rounds: 2, problems_per_round: 4, attempts_per_problem: 2}
trainers:
  - {kind: socratic_solver_dpo, agent: solver, every: 1}
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first occurrence of `needle` in `text` (how a user would find it)."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1


@dataclass(frozen=True)
class Bad:
    id: str
    edits: tuple[tuple[str, str], ...]  # (old, new) replacements applied to BASE
    path: str  # the field path the issue must name
    at: str | int  # a needle in the edited text whose line the issue must name, "--set", or a line
    says: str  # a fragment of the message
    overrides: tuple[str, ...] = ()


BAD = [
    Bad(
        "curriculum-levels-unknown-dimension",
        (
            (
                "{kind: uniform, skills: [add_carry]}",
                "{kind: uniform, skills: [add_carry], levels: {digts: [1, 2]}}",
            ),
        ),
        "agents.teacher.curriculum.levels",
        "levels: {digts",
        "known: digits, steps, distractors",
    ),
    Bad(
        "curriculum-levels-low-above-high",
        (
            (
                "{kind: uniform, skills: [add_carry]}",
                "{kind: uniform, skills: [add_carry], levels: {digits: [3, 1]}}",
            ),
        ),
        "agents.teacher.curriculum.levels",
        "levels: {digits",
        "low <= high",
    ),
    Bad("unknown-top-level-key", (("seed: 0", "sed: 0"),), "sed", "sed: 0", "did you mean 'seed'"),
    Bad(
        "unknown-nested-key",
        (("    model: builtin", "    modle: builtin"),),
        "engines.local.modle",
        "modle:",
        "did you mean 'model'",
    ),
    Bad(
        "unknown-sampling-key",
        (("{temperature: 0.8,", "{tempreature: 0.8,"),),
        "agents.solver.sampling.tempreature",
        "sampling:",
        "did you mean 'temperature'",
    ),
    Bad(
        "wrong-type",
        (("problems_per_round: 4", "problems_per_round: many"),),
        "schedule.problems_per_round",
        "schedule:",
        "valid integer",
    ),
    Bad(
        "negative-rounds",
        (("rounds: 2", "rounds: -1"),),
        "schedule.rounds",
        "schedule:",
        "greater than or equal to 1",
    ),
    Bad(
        "bad-enum",
        (("kind: replay", "kind: vlm"),),
        "engines.local.kind",
        "kind: vlm",
        "'vllm'",
    ),
    Bad(
        "reversed-success-band",
        (("attempts_per_problem: 2}", "attempts_per_problem: 2, success_band: [0.9, 0.1]}"),),
        "schedule.success_band",
        "schedule:",
        "low <= high",
    ),
    Bad(
        "missing-required-field",
        (("    role: solver\n", ""),),
        "agents.solver.role",
        "  solver:",
        "required field is missing",
    ),
    Bad("missing-name", (("name: t\n", ""),), "name", 1, "required field is missing"),
    Bad(
        "duplicate-key",
        (("seed: 0\n", "seed: 0\nseed: 1\n"),),
        "seed",
        "seed: 1",
        "duplicate key (first defined on line 2)",
    ),
    Bad(
        "unknown-engine-reference",
        (("    engine: local", "    engine: locl"),),
        "agents.solver.engine",
        "engine: locl",
        "did you mean 'local'",
    ),
    Bad(
        "procedural-policy-on-solver",
        (("    engine: local\n", "    engine: local\n    policy: procedural\n"),),
        "agents.solver.policy",
        "policy: procedural\n    trainable",
        "no policy variants",
    ),
    Bad(
        "llm-teacher-without-engine",
        (("policy: procedural", "policy: llm"),),
        "agents.teacher",
        "  teacher:",
        "needs an `engine`",
    ),
    Bad(
        "solver-without-engine",
        (("    engine: local\n", ""),),
        "agents.solver",
        "  solver:",
        "a solver needs an `engine`",
    ),
    Bad(
        "unknown-agent-in-edge",
        (("target: solver, message: ProblemPosed", "target: solvr, message: ProblemPosed"),),
        "graph.0.target",
        "solvr",
        "did you mean 'solver'",
    ),
    Bad(
        "unknown-message-type",
        (("message: ProblemPosed", "message: ProblemPosted"),),
        "graph.0.message",
        "ProblemPosted",
        "did you mean 'ProblemPosed'",
    ),
    Bad(
        "message-not-produced-by-source",
        (("message: SolutionSubmitted", "message: ExamResult"),),
        "graph.1.message",
        "ExamResult",
        "does not send ExamResult",
    ),
    Bad(
        "message-not-accepted-by-target",
        (("message: ProblemPosed", "message: Explanation"),),
        "graph.0.message",
        "Explanation",
        "does not accept Explanation",
    ),
    Bad(
        "unknown-predicate",
        (("when: learning_zone", "when: learning_zon"),),
        "graph.2.when",
        "learning_zon}",
        "did you mean 'learning_zone'",
    ),
    Bad(
        "cycle-without-exit",
        (
            ("message: ProblemPosed}", "message: ProblemPosed, max_turns: null}"),
            ("message: SolutionSubmitted}", "message: SolutionSubmitted, max_turns: null, when: always}"),
        ),
        "graph.0",
        "ProblemPosed, max_turns",
        "may never end",
    ),
    Bad(
        "agent-in-no-edge",
        (("graph:\n", "  coach: {role: coach, engine: local}\ngraph:\n"),),
        "agents.coach",
        "  coach:",
        "in no graph edge",
    ),
    Bad(
        "trainer-on-non-trainable-agent",
        (("    trainable: true", "    trainable: false"),),
        "trainers.0.agent",
        "- {kind: socratic",
        "not trainable",
    ),
    Bad(
        "unknown-trainer-kind",
        (("socratic_solver_dpo", "socratic_solver_dop"),),
        "trainers.0.kind",
        "- {kind: socratic",
        "did you mean 'socratic_solver_dpo'",
    ),
    Bad(
        "trainer-role-mismatch",
        (("socratic_solver_dpo", "socratic_generator_sft"),),
        "trainers.0.agent",
        "- {kind: socratic",
        "trains a generator",
    ),
    Bad(
        "unknown-trainer-agent",
        (("agent: solver", "agent: solve"),),
        "trainers.0.agent",
        "agent: solve",
        "'solver'",
    ),
    # Everything below used to fail only at run time; `coevo check` refuses it now.
    Bad(
        "unknown-skill",
        (("skills: [add_carry]}", "skills: [add_carry, add_cary]}"),),
        "agents.teacher.curriculum.skills",
        "curriculum:",
        "unknown skill 'add_cary'",
    ),
    Bad(
        "bad-curriculum-parameter",
        (
            (
                "{kind: uniform, skills: [add_carry]}",
                "{kind: alp-gmm, skills: [add_carry], params: {bootstrapp: 4}}",
            ),
        ),
        "agents.teacher.curriculum.params",
        "curriculum:",
        "bad parameters for the 'alp-gmm' curriculum",
    ),
    Bad(
        "levels-outside-the-skill-range",
        (("skills: [add_carry]}", "skills: [add_carry], levels: {digits: [7, 9]}}"),),
        "agents.teacher.curriculum.levels",
        "curriculum:",
        "leave nothing of its range 1-6",
    ),
    Bad(
        "misspelled-trainer-arg",
        (("agent: solver, every: 1}", "agent: solver, every: 1, args: {learning_rat: 1.0e-4}}"),),
        "trainers.0.args.learning_rat",
        "- {kind: socratic",
        "did you mean 'learning_rate'",
    ),
    Bad(
        "bad-trainer-arg-value",
        (("agent: solver, every: 1}", "agent: solver, every: 1, args: {beta: -1}}"),),
        "trainers.0.args.beta",
        "- {kind: socratic",
        "greater than 0",
    ),
    Bad(
        "engine-option-the-engine-does-not-take",
        (("    kind: replay\n", "    kind: transformers\n    options: {gpu_memory_utilization: 0.3}\n"),),
        "engines.local.options.gpu_memory_utilization",
        "options:",
        "drop it",
    ),
    Bad(
        "trainer-whose-data-the-society-does-not-make",
        (
            ("graph:\n", "  generator: {role: generator, engine: local, trainable: true}\ngraph:\n"),
            (
                "  - {source: teacher, target: solver, message: ProblemRefined, when: learning_zone}\n",
                "  - {source: teacher, target: generator, message: Demonstration}\n"
                "  - {source: generator, target: teacher, message: ProblemProposed}\n",
            ),
            ("trainers:\n", "trainers:\n  - {kind: socratic_generator_sft, agent: generator}\n"),
        ),
        "trainers.0",
        "- {kind: socratic_generator_sft",
        "no ProblemRefined edge",
    ),
    Bad(
        "no-path-from-a-problem-source-to-the-trained-agent",
        (
            ("  - {source: teacher, target: solver, message: ProblemPosed}\n", ""),
            ("  - {source: teacher, target: solver, message: ProblemRefined, when: learning_zone}\n", ""),
        ),
        "trainers.0.agent",
        "- {kind: socratic",
        "no path leads from a problem source",
    ),
    Bad(
        "unused-engine",
        (("engines:\n", "engines:\n  spare: {kind: replay}\n"),),
        "engines.spare",
        "spare:",
        "used by no agent",
    ),
    Bad(
        "trainable-agent-that-nothing-trains",
        (("trainers:\n  - {kind: socratic_solver_dpo, agent: solver, every: 1}\n", "trainers: []\n"),),
        "agents.solver.trainable",
        "trainable: true",
        "no trainer trains it",
    ),
    Bad(
        "unknown-role",
        (("    role: solver\n", "    role: solvr\n"),),
        "agents.solver.role",
        "role: solvr",
        "did you mean 'solver'",
    ),
    Bad("bad-set-path", (), "schedule.roundz", "--set", "did you mean 'rounds'", ("schedule.roundz=3",)),
    Bad(
        "bad-set-index", (), "trainers.3.every", "--set", "not an index of trainers", ("trainers.3.every=2",)
    ),
    Bad("bad-set-value-type", (), "schedule.rounds", "--set", "valid integer", ("schedule.rounds=abc",)),
    Bad("bad-set-syntax", (), "schedule.rounds", "--set", "expected KEY=VALUE", ("schedule.rounds",)),
    Bad(
        "yaml-syntax-error",
        (("  solver:\n", "  solver: {role: solver\n"),),
        "",
        "    role: solver",
        "expected",
    ),
]


def edited(case: Bad) -> str:
    text = BASE
    for old, new in case.edits:
        assert old in text, f"{case.id}: {old!r} not in BASE"
        text = text.replace(old, new, 1)
    return text


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_config_names_field_and_line(case: Bad) -> None:
    text = edited(case)
    with pytest.raises(ConfigError) as info:
        parse_config(text, "society.yaml", case.overrides)
    expected_line = case.at if case.at == "--set" or isinstance(case.at, int) else line_of(text, case.at)
    matching = [i for i in info.value.issues if i.path == case.path and case.says in i.message]
    assert matching, f"no issue at {case.path!r} saying {case.says!r}; got:\n{info.value}"
    assert matching[0].line == expected_line, str(info.value)
    # The printed form is file:line: field: message (or --set: field: message).
    printed = str(info.value)
    prefix = "--set" if case.at == "--set" else f"society.yaml:{expected_line}"
    assert any(line.startswith(prefix) and case.says in line for line in printed.splitlines()), printed


def test_at_least_fifteen_distinct_bad_cases() -> None:
    assert len({c.id for c in BAD}) >= 15


def test_base_config_is_valid() -> None:
    config = parse_config(BASE, "base.yaml")
    assert config.agents["solver"].lora is not None  # trainable → default LoRA filled in
    assert config.agents["teacher"].curriculum is not None
    assert config.line_of("agents", "solver", "engine") == line_of(BASE, "    engine: local")


def test_every_problem_is_reported_at_once() -> None:
    text = (
        BASE.replace("seed: 0", "sed: 0").replace("rounds: 2", "rounds: 0").replace("kind: replay", "kind: x")
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "many.yaml")
    assert {i.path for i in info.value.issues} == {"sed", "schedule.rounds", "engines.local.kind"}
    # Issues come in file order.
    lines = [i.line for i in info.value.issues]
    assert lines == sorted(lines, key=lambda x: x if isinstance(x, int) else 0)


def test_reference_problems_are_all_reported_together() -> None:
    text = BASE.replace("    engine: local", "    engine: nope").replace(
        "when: learning_zone", "when: sometimes"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "refs.yaml")
    # The engine the solver no longer names is now unused, which is reported too.
    assert {i.path for i in info.value.issues} == {"agents.solver.engine", "graph.2.when", "engines.local"}


@pytest.mark.parametrize("name", ["demo.yaml", "socratic_zero.yaml"])
def test_example_configs_load(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert isinstance(config, SocietyConfig)
    roles = {a.role for a in config.agents.values()}
    assert {"teacher", "solver"} <= roles
    assert config.trainers and all(config.agents[t.agent].trainable for t in config.trainers)


def test_demo_static_baseline_differs_from_demo_only_in_adaptation() -> None:
    """The README's adaptive-vs-static comparison holds everything else equal."""
    adaptive = load_config(CONFIGS / "demo.yaml").model_dump()
    static = load_config(CONFIGS / "demo_static.yaml").model_dump()
    a_curriculum = adaptive["agents"]["teacher"].pop("curriculum")
    s_curriculum = static["agents"]["teacher"].pop("curriculum")
    assert (a_curriculum["kind"], s_curriculum["kind"]) == ("alp-gmm", "static")
    assert (
        a_curriculum["skills"] == s_curriculum["skills"] and a_curriculum["levels"] == s_curriculum["levels"]
    )
    refine = [e for e in adaptive["graph"] if e["message"] == "ProblemRefined"]
    assert refine and not any(e["message"] == "ProblemRefined" for e in static["graph"])
    adaptive["graph"] = [e for e in adaptive["graph"] if e not in refine]
    del adaptive["name"], static["name"]
    assert adaptive == static


def test_socratic_zero_teacher_switches_to_llm_with_one_override() -> None:
    config = load_config(
        CONFIGS / "socratic_zero.yaml", ["agents.teacher.policy=llm", "agents.teacher.engine=local"]
    )
    assert config.agents["teacher"].policy == "llm"
    assert config.agents["teacher"].engine in config.engines
    with pytest.raises(ConfigError, match="a teacher \\(llm\\) needs an `engine`"):
        load_config(CONFIGS / "socratic_zero.yaml", ["agents.teacher.policy=llm"])


def test_overrides_apply_before_validation() -> None:
    config = load_config(
        CONFIGS / "demo.yaml",
        [
            "schedule.rounds=3",
            "engines.local.kind=openai",
            "engines.local.options={base_url: 'http://gpu:8000/v1'}",
            "trainers.0.every=2",
            "memory.url=postgresql://db/coevo",
            'agents.solver.sampling.stop=["\\n\\n"]',
        ],
    )
    assert config.schedule.rounds == 3
    assert config.engines["local"].kind == "openai"
    assert config.engines["local"].options["base_url"] == "http://gpu:8000/v1"
    assert config.trainers[0].every == 2
    assert config.memory.url == "postgresql://db/coevo"
    assert config.agents["solver"].sampling["stop"] == ("\n\n",)
    # An overridden value reports "--set" as its line.
    assert config.line_of("schedule", "rounds") == "--set"


def test_override_can_replace_a_whole_list_and_fill_a_missing_section() -> None:
    text = BASE.replace("schedule: {rounds: 2, problems_per_round: 4, attempts_per_problem: 2}\n", "")
    config = parse_config(
        text, "t.yaml", ["trainers=[]", "agents.solver.trainable=false", "schedule.rounds=5"]
    )
    assert config.trainers == []
    assert config.schedule.rounds == 5


def test_apply_overrides_on_raw_data() -> None:
    data = {"schedule": {"rounds": 1}, "trainers": [{"every": 1}]}
    assert apply_overrides(data, ["schedule.rounds=4", "trainers.0.every=3"]) == {
        "schedule": {"rounds": 4},
        "trainers": [{"every": 3}],
    }
    with pytest.raises(ConfigError) as info:
        apply_overrides(data, ["schedule.rounds.x=1", "nope.a=1"])
    assert [i.path for i in info.value.issues] == ["schedule.rounds.x", "nope.a"]
    assert all(i.line == "--set" for i in info.value.issues)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert "no such file" in str(info.value)


def test_empty_file_reports_missing_fields() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("", "empty.yaml")
    assert {i.path for i in info.value.issues} == {"name", "agents"}


def test_issue_format() -> None:
    assert ConfigIssue(path="a.b", line=3, message="bad").format("f.yaml") == "f.yaml:3: a.b: bad"
    assert ConfigIssue(path="", line=3, column=7, message="bad").format("f.yaml") == "f.yaml:3:7: bad"
    assert ConfigIssue(path="a", line="--set", message="bad").format("f.yaml") == "--set: a: bad"


# --- coevo check ---------------------------------------------------------------------------------


def run_check(argv: list[str]) -> int:
    return check_command(build_parser().parse_args(["check", *argv]))


def test_check_valid_config_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check([str(CONFIGS / "socratic_zero.yaml")]) == 0
    out = capsys.readouterr().out
    assert "teacher -> generator" in out and "Demonstration" in out and "when has_failures" in out
    assert "socratic_generator_sft on generator" in out


def test_check_bad_config_exits_2_with_every_issue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("seed: 0", "sed: 0").replace("rounds: 2", "rounds: 0"))
    assert run_check([str(path), "--set", "schedule.roundz=1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: sed: unknown key 'sed'" in err
    assert f"{path}:{line_of(BASE, 'schedule:')}: schedule.rounds:" in err
    assert "--set: schedule.roundz:" in err
    assert "3 problems" in err


def test_check_missing_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_check([str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    from coevo.cli import main

    assert main(["check", str(CONFIGS / "demo.yaml")]) == 0
    assert main(["check", str(CONFIGS / "demo.yaml"), "--set", "schedule.rounds=0"]) == 2
    assert main(["check", str(tmp_path / "missing.yaml")]) == 2


@pytest.mark.parametrize("name", ["demo.yaml", "socratic_zero.yaml"])
def test_snapshot_round_trip(name: str) -> None:
    """A run directory stores the validated config as YAML; loading it back gives the same config."""
    import yaml

    config = load_config(CONFIGS / name)
    snapshot = yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
    assert parse_config(snapshot, "config.yaml") == config


def test_a_config_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"list\.yaml:1: a society config is a YAML mapping"):
        parse_config("- a\n- b\n", "list.yaml")
