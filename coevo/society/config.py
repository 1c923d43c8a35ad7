"""The society config: YAML → pydantic models, `--set a.b=c` overrides, and checks that name the
field and the line of every problem.

Loading happens in two passes. The structure (types, unknown keys, missing fields, ranges) is
validated by pydantic and every error is reported; only a structurally valid config gets the
second pass, which checks references between fields (engines, agents, trainers) and the role
graph (coevo.society.graph). Either pass reports all of its problems at once.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict, is_typeddict

from coevo.society.config_errors import ConfigError, ConfigIssue, did_you_mean, one_of
from coevo.society.graph import validate_graph
from coevo.society.yaml_lines import Line, LineMap, PathPart, load_yaml_with_lines

Role = Literal["teacher", "solver", "generator", "coach", "student"]
EngineKind = Literal["auto", "vllm", "transformers", "openai", "replay"]
# Names end up in --set paths (split on ".") and in directory names, so keep them plain.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]
RunName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")]

# Which roles each trainer kind can train (the trainers package implements the kinds).
TRAINER_ROLES: dict[str, frozenset[str]] = {
    "socratic_solver_dpo": frozenset({"solver"}),
    "socratic_generator_sft": frozenset({"generator"}),
    "stat_sft": frozenset({"solver", "student"}),
    "sft": frozenset({"teacher", "solver", "generator", "coach", "student"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemoryConfig(_Strict):
    # None → sqlite:///<run_dir>/coevo.db; otherwise any SQLAlchemy URL.
    url: str | None = None


class EngineConfig(_Strict):
    kind: EngineKind = "auto"
    model: str = "builtin:smollm2-135m-instruct"
    # Passed to the engine constructor (base_url for openai, gpu_memory_utilization for vllm, ...).
    options: dict[str, Any] = Field(default_factory=dict)


class CurriculumConfig(_Strict):
    # "static": the first round's problems posed again every round (the no-adaptation baseline).
    kind: Literal["alp-gmm", "uniform", "static", "fixed"] = "alp-gmm"
    # Skill names from the taxonomy; the tasks package validates them. Empty = every skill.
    skills: list[str] = Field(default_factory=list)
    # Inclusive difficulty bounds, e.g. {digits: [1, 3], steps: [1, 2], distractors: [0, 0]}: the
    # curriculum poses only these levels, and `coevo eval --run` and the demo's held-out table
    # evaluate the same range. Empty = every level of each skill.
    levels: dict[str, tuple[int, int]] = Field(default_factory=dict)
    # Passed through to the curriculum (bootstrap, refit_every, random_fraction, ...).
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("levels")
    @classmethod
    def _levels_are_bounds(cls, levels: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        from coevo.tasks.skills import check_levels

        check_levels(levels)
        return levels


class LoraConfig(_Strict):
    r: int = Field(default=16, ge=1)
    alpha: float = Field(default=32, gt=0)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    # "all-linear" (PEFT's shorthand) or explicit module names.
    target_modules: str | list[str] = "all-linear"


@with_config(ConfigDict(extra="forbid"))
class SamplingConfig(TypedDict, total=False):
    """Per-agent sampling; a plain dict so it spreads into `SamplingParams(**...)`.

    `n` and `seed` are not here: the scheduler sets them (attempts per problem, per-episode seed).
    """

    temperature: Annotated[float, Field(ge=0.0)]
    top_p: Annotated[float, Field(gt=0.0, le=1.0)]
    max_tokens: Annotated[int, Field(ge=1)]
    stop: tuple[str, ...]


class AgentConfig(_Strict):
    role: Role
    engine: str | None = None
    policy: Literal["procedural", "llm"] | None = None  # teachers only
    curriculum: CurriculumConfig | None = None  # procedural teachers only
    trainable: bool = False
    lora: LoraConfig | None = None
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig())
    prompt_version: str = "v1"

    @model_validator(mode="after")
    def _fill_defaults(self) -> AgentConfig:
        # Defaults that depend on other fields, so the runner never sees a None it must guess about.
        if self.role == "teacher" and self.policy == "procedural" and self.curriculum is None:
            self.curriculum = CurriculumConfig()
        if self.trainable and self.lora is None:
            self.lora = LoraConfig()
        return self


class EdgeConfig(_Strict):
    source: str
    target: str
    message: str  # an event type in coevo.society.events.MESSAGE_TYPES
    when: str | None = None  # a predicate name in coevo.society.predicates.PREDICATES
    # Turns the edge may carry per episode (a turn may be a batch, e.g. the k attempts);
    # null = unbounded, and a cycle needs at least one bounded or conditional hop.
    max_turns: int | None = Field(default=1, ge=1)


class ScheduleConfig(_Strict):
    rounds: int = Field(default=1, ge=1)
    problems_per_round: int = Field(default=32, ge=1)
    attempts_per_problem: int = Field(default=8, ge=1)
    max_concurrency: int = Field(default=64, ge=1)
    eval_every: int = Field(default=0, ge=0)  # 0 = no periodic evaluation
    # A problem joins the training curriculum when its success rate lies in [low, high]
    # (Socratic-Zero keeps seeds the base Solver solves 10%-70% of the time).
    success_band: tuple[float, float] = (0.1, 0.7)

    @field_validator("success_band")
    @classmethod
    def _ordered_band(cls, band: tuple[float, float]) -> tuple[float, float]:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"needs 0 <= low <= high <= 1, got [{low}, {high}]")
        return band


class TrainerConfig(_Strict):
    kind: str  # a key of TRAINER_ROLES
    agent: str
    every: int = Field(default=1, ge=1)  # train after every N rounds
    args: dict[str, Any] = Field(default_factory=dict)  # passed through to the TRL config


class SocietyConfig(_Strict):
    name: RunName
    seed: int = 0
    run_dir: str | None = None  # default runs/<name>
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    engines: dict[Name, EngineConfig] = Field(default_factory=dict)
    agents: dict[Name, AgentConfig] = Field(min_length=1)
    graph: list[EdgeConfig] = Field(default_factory=list)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    trainers: list[TrainerConfig] = Field(default_factory=list)

    _lines: LineMap = PrivateAttr(default_factory=LineMap)

    def __eq__(self, other: object) -> bool:
        # Where a config came from (its line map) is not part of what it says.
        return isinstance(other, SocietyConfig) and self.__dict__ == other.__dict__

    def line_of(self, *path: PathPart) -> Line | None:
        """The line a field came from; None for a config built in code."""
        return self._lines.line_of(path)

    def issue(self, *path: PathPart, message: str) -> ConfigIssue:
        return ConfigIssue(path=_dotted(path), line=self.line_of(*path), message=message)

    def engine_spec(self, agent: str) -> EngineConfig | None:
        """The engine an agent runs on; None for an agent without one (a procedural Teacher)."""
        name = self.agents[agent].engine
        return None if name is None else self.engines[name]

    def curriculum_space(self) -> tuple[list[str] | None, dict[str, tuple[int, int]] | None]:
        """The skills and difficulty levels a procedural Teacher poses (None: every skill, every
        level): where held-out problems measure what the run trained, and STAT-Syn writes."""
        for agent in self.agents.values():
            if agent.role == "teacher" and agent.curriculum is not None:
                return list(agent.curriculum.skills) or None, dict(agent.curriculum.levels) or None
        return None, None


# --- loading -------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> SocietyConfig:
    """Read, override and validate a config file; raise ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue(path="", message="no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue(path="", message=f"cannot read: {exc}")]) from None
    return parse_config(text, source, overrides)


def parse_config(text: str, source_name: str = "<config>", overrides: Sequence[str] = ()) -> SocietyConfig:
    data, lines = load_yaml_with_lines(text, source_name)
    data, issues = _apply_overrides({} if data is None else data, overrides, lines)
    try:
        config = SocietyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source_name, _sorted(issues + _pydantic_issues(exc, data, lines))) from None
    if issues:
        raise ConfigError(source_name, _sorted(issues))
    config._lines = lines
    issues = check_references(config) + validate_graph(config)
    if issues:
        raise ConfigError(source_name, _sorted(issues))
    return config


def apply_overrides(data: Any, overrides: Sequence[str]) -> Any:
    """Apply `a.b=c` overrides to raw config data (in place); raise ConfigError for bad ones."""
    data, issues = _apply_overrides(data, overrides, LineMap())
    if issues:
        raise ConfigError("--set", issues)
    return data


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    # Command-line problems first, then in file order.
    return sorted(issues, key=lambda i: (0, 0) if i.line == "--set" else (1, i.line or 0))


def _dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) for p in path)


# --- cross-field checks ----------------------------------------------------------------------------


def check_references(config: SocietyConfig) -> list[ConfigIssue]:
    """Checks that span fields: engine and agent references, roles versus policies, trainers."""
    issues: list[ConfigIssue] = []
    for name, agent in config.agents.items():
        at = ("agents", name)
        if agent.engine is not None and agent.engine not in config.engines:
            issues.append(
                config.issue(
                    *at,
                    "engine",
                    message=f"unknown engine '{agent.engine}'{one_of(agent.engine, config.engines)}",
                )
            )
        if agent.role == "teacher":
            if agent.policy is None:
                issues.append(
                    config.issue(*at, message="a teacher needs `policy: procedural` or `policy: llm`")
                )
            elif agent.policy == "llm" and agent.engine is None:
                issues.append(config.issue(*at, message="an LLM teacher (policy: llm) needs an `engine`"))
            if agent.policy == "procedural" and agent.trainable:
                issues.append(
                    config.issue(*at, "trainable", message="a procedural teacher has no model to train")
                )
        else:
            if agent.policy is not None:
                issues.append(
                    config.issue(
                        *at,
                        "policy",
                        message=f"`policy` is for teachers only; a {agent.role} is an LLM on its `engine`",
                    )
                )
            if agent.engine is None:
                issues.append(config.issue(*at, message=f"a {agent.role} needs an `engine`"))
        # An LLM teacher may keep its curriculum block, so `--set agents.X.policy=...` flips it alone.
        if agent.curriculum is not None and agent.role != "teacher":
            issues.append(
                config.issue(*at, "curriculum", message="`curriculum` is only used by a procedural teacher")
            )
    for index, trainer in enumerate(config.trainers):
        at2 = ("trainers", index)
        roles = TRAINER_ROLES.get(trainer.kind)
        if roles is None:
            issues.append(
                config.issue(
                    *at2,
                    "kind",
                    message=f"unknown trainer kind '{trainer.kind}'{one_of(trainer.kind, TRAINER_ROLES)}",
                )
            )
        target = config.agents.get(trainer.agent)
        if target is None:
            issues.append(
                config.issue(
                    *at2,
                    "agent",
                    message=f"unknown agent '{trainer.agent}'{one_of(trainer.agent, config.agents)}",
                )
            )
            continue
        if not target.trainable:
            issues.append(
                config.issue(
                    *at2,
                    "agent",
                    message=f"agent '{trainer.agent}' is not trainable "
                    f"(set agents.{trainer.agent}.trainable: true)",
                )
            )
        if roles is not None and target.role not in roles:
            issues.append(
                config.issue(
                    *at2,
                    "agent",
                    message=f"{trainer.kind} trains a {' or '.join(sorted(roles))}, "
                    f"but '{trainer.agent}' is a {target.role}",
                )
            )
    return issues


# --- pydantic errors → issues ----------------------------------------------------------------------


def _pydantic_issues(exc: ValidationError, data: Any, lines: LineMap) -> list[ConfigIssue]:
    by_path: dict[str, ConfigIssue] = {}
    for error in exc.errors():
        path = _data_path(data, error["loc"], error["type"])
        if error["type"] == "extra_forbidden":
            key = str(path[-1])
            fields = _fields(_schema_at(path[:-1])) or {}
            message = f"unknown key '{key}'{did_you_mean(key, fields)}; allowed: {', '.join(fields)}"
        elif error["type"] == "model_type" and not path:
            message = "a society config is a YAML mapping (name:, engines:, agents:, graph:, ...)"
        elif error["type"] == "missing":
            message = "required field is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
        dotted = _dotted(path)
        if dotted in by_path:  # a union reports once per member: one issue, both reasons
            by_path[dotted] = replace(by_path[dotted], message=f"{by_path[dotted].message}, or {message}")
        else:
            by_path[dotted] = ConfigIssue(path=dotted, line=lines.line_of(path), message=message)
    return list(by_path.values())


def _data_path(data: Any, loc: tuple[int | str, ...], error_type: str) -> tuple[PathPart, ...]:
    """The error's location as a path into the data, without pydantic's union and key tags."""
    path: list[PathPart] = []
    node = data
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif error_type == "missing" and index == len(loc) - 1:
            pass  # the missing field itself: name it, though it is not in the data
        else:
            continue  # a tag such as 'str', 'list[str]' or '[key]'
        path.append(part)
    return tuple(path)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that holds the value."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(args) == 1:
            tp = args[0]
            continue
        return tp


def _fields(tp: Any) -> dict[str, Any] | None:
    """Field name → type for a model or TypedDict; None for anything else (a free mapping)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: info.annotation for name, info in tp.model_fields.items()}
    if is_typeddict(tp):
        return typing.get_type_hints(tp, include_extras=True)
    return None


def _schema_at(path: Sequence[PathPart]) -> Any:
    """The declared type of the value at `path` in a SocietyConfig; None where the path leaves the schema."""
    tp: Any = SocietyConfig
    for part in path:
        tp = _unwrap(tp)
        fields = _fields(tp)
        origin = typing.get_origin(tp)
        if fields is not None:
            if part not in fields:
                return None
            tp = fields[str(part)]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        elif origin is list and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        else:
            return None
    return _unwrap(tp)


# --- overrides -------------------------------------------------------------------------------------


def _apply_overrides(data: Any, overrides: Sequence[str], lines: LineMap) -> tuple[Any, list[ConfigIssue]]:
    issues: list[ConfigIssue] = []
    for text in overrides:
        key, sep, raw_value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            issues.append(ConfigIssue(path=key, line="--set", message=f"expected KEY=VALUE, got '{text}'"))
            continue
        try:
            value = yaml.safe_load(raw_value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            issues.append(ConfigIssue(path=key, line="--set", message=f"value is not valid YAML: {problem}"))
            continue
        parts: list[PathPart] = [int(p) if p.isdigit() else p for p in key.split(".")]
        error = _set_path(data, parts, value)
        if error is not None:
            issues.append(ConfigIssue(path=key, line="--set", message=error))
        else:
            lines.overridden.add(tuple(parts))
    return data, issues


def _set_path(data: Any, parts: list[PathPart], value: Any) -> str | None:
    """Set data[parts...] = value; an error message when the path does not lead anywhere.

    Digit parts index lists; in a mapping they are keys, so `parts` is normalised in place.
    """
    node = data
    for index, part in enumerate(parts):
        if isinstance(node, dict) and isinstance(part, int):
            part = parts[index] = str(part)
        here = parts[:index]
        last = index == len(parts) - 1
        where = _dotted(here) or "the config"
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return f"'{part}' is not an index of {where} (it has {len(node)} items, 0..{len(node) - 1})"
        elif isinstance(node, dict):
            fields = _fields(_schema_at(here))
            if part not in node:
                known = set(fields or ()) | {str(k) for k in node}
                # A known field may be created; a free mapping (engines, agents, args) may gain a
                # new key only at the end of the path, since a missing middle key is usually a typo.
                if (fields is not None and part not in fields) or (fields is None and not last):
                    return f"{where} has no key '{part}'{did_you_mean(str(part), known)}"
                if not last:
                    created = _container_for([*here, part])
                    if created is None:
                        return f"{_dotted([*here, part])} is not set, so it has no '{parts[index + 1]}'"
                    node[part] = created
        else:
            return f"{where} is a {type(node).__name__}, not a mapping or list"
        if last:
            node[part] = value
            return None
        child = node[part]
        if child is None:  # e.g. `memory:` left empty, then --set memory.url=...
            child = _container_for([*here, part])
            if child is None:
                return f"{_dotted([*here, part])} is null, so it has no '{parts[index + 1]}'"
            node[part] = child
        node = child
    return None


def _container_for(path: Sequence[PathPart]) -> dict[str, Any] | None:
    """An empty mapping to fill in at `path` when the schema holds a mapping there; else None."""
    schema = _schema_at(path)
    is_mapping = _fields(schema) is not None or typing.get_origin(schema) is dict
    return {} if is_mapping else None
