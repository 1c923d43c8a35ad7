"""The society config: YAML → pydantic models and `--set a.b=c` overrides, with every structural
problem named by field and line.

This module is the first of two passes: the structure (types, unknown keys, missing fields,
ranges), checked by pydantic, with every error reported at once (`parse_structure`). The second
pass, which needs the role and trainer registries, the task layer and the engines, is
coevo.society.validate; coevo.society.loading runs both (`load_config`, `parse_config`).
"""

from __future__ import annotations

import re
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

from coevo.society.config_errors import ConfigError, ConfigIssue, did_you_mean
from coevo.society.secrets import redact, remember
from coevo.society.yaml_lines import Line, LineMap, PathPart, load_yaml_with_lines
from coevo.tasks.loaders import MAX_QUESTION_CHARS

EngineKind = Literal["auto", "vllm", "transformers", "openai", "replay"]
Activation = Literal["any", "all"]
# Names end up in --set paths (split on ".") and in directory names, so keep them plain.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]
RunName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")]


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
    # An integer: the trainers' settings (and PEFT's and vLLM's adapter configs) take lora_alpha as
    # one, so 16.5 is refused here rather than quietly trained as 16.
    alpha: int = Field(default=32, gt=0)
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


class ProblemSpec(_Strict):
    # Bounded like a dataset's questions (coevo.tasks.loaders): each attempt sends it to a model.
    question: Annotated[str, StringConstraints(max_length=MAX_QUESTION_CHARS)]
    answer: str | int | float
    solution: str | None = None
    skills: list[str] = Field(default_factory=list)


class PoolConfig(_Strict):
    """Problems an LLM Teacher poses from: a dataset (a name such as gsm8k, or a JSONL file;
    `coevo eval --dataset` accepts the same), and/or problems written in the config."""

    dataset: str | None = None
    split: str = "train"
    limit: int | None = Field(default=None, ge=1)
    problems: list[ProblemSpec] = Field(default_factory=list)


class AutogenConfig(_Strict):
    # "package.module:function" or "path/to/file.py:function" (relative to the config file): a
    # callable (name, model_client, system_message) -> an autogen-agentchat agent.
    factory: str


class AgentConfig(_Strict):
    role: str  # a role of the registry (coevo roles lists them)
    engine: str | None = None
    policy: str | None = None  # for roles with policy variants (teacher: procedural or llm)
    curriculum: CurriculumConfig | None = None  # teachers: a procedural problem source
    pool: PoolConfig | None = None  # LLM teachers: problems from a dataset or listed here
    trainable: bool = False
    lora: LoraConfig | None = None
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig())
    prompt_version: str = "v1"
    # Role settings, checked against the role's own params model (coevo roles shows them).
    params: dict[str, Any] = Field(default_factory=dict)
    # Fan-in for every message this agent receives (overrides the role's default; an edge's own
    # `activation` overrides this).
    activation: Activation | None = None
    # Put the user's own autogen-agentchat agent in this role's place.
    autogen: AutogenConfig | None = None

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
    message: str  # a message type of coevo.messages.MESSAGE_TYPES
    # A predicate name in coevo.society.predicates.PREDICATES; only on a type the source's role sends
    # with an outcome (`outcomes` in the role registry), since a condition reads that outcome.
    when: str | None = None
    # Turns the edge may carry per episode (a turn is one batch, e.g. the k attempts at a problem);
    # null = unbounded, and every cycle needs at least one bounded edge. Left out on a reply edge
    # (the answer to work its source must answer: a Solver's attempts, a Student's exam), the
    # checker sets it to as many turns as the source can be handed that work in an episode, so no
    # answer is dropped (coevo.society.graph.reply_turns), and refuses a given value below that.
    max_turns: int | None = Field(default=1, ge=1)
    # "next_round": the message opens an episode of the next round instead of being handled now
    # (Socratic-Zero's refined problems join the next round's curriculum); only a type the target's
    # role can open an episode with (`holdable` in the role registry).
    deliver: Literal["now", "next_round"] = "now"
    # Fan-in of messages along this edge: "any" = handled as they arrive, "all" = the target waits
    # until the episode is otherwise quiet and handles everything that arrived together.
    activation: Activation | None = None


class ScheduleConfig(_Strict):
    rounds: int = Field(default=1, ge=1)
    problems_per_round: int = Field(default=32, ge=1)
    attempts_per_problem: int = Field(default=8, ge=1)
    max_concurrency: int = Field(default=64, ge=1)
    # Every N rounds, evaluate each trainable agent's policy on held-out problems (0 = never).
    eval_every: int = Field(default=0, ge=0)
    eval_problems: int = Field(default=100, ge=1)
    eval_max_tokens: int = Field(default=128, ge=1)
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
    kind: str  # a trainer kind of coevo.trainers.registry
    agent: str
    every: int = Field(default=1, ge=1)  # train after every N rounds
    args: dict[str, Any] = Field(default_factory=dict)  # passed through to the TRL config


class SocietyConfig(_Strict):
    name: RunName
    seed: int = 0
    run_dir: str | None = None  # default runs/<name>
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    # Modules ("package.module") or files ("roles.py", relative to the config) to import before
    # the config is checked: where user roles register themselves.
    plugins: list[str] = Field(default_factory=list)
    engines: dict[Name, EngineConfig] = Field(default_factory=dict)
    agents: dict[Name, AgentConfig] = Field(min_length=1)
    graph: list[EdgeConfig] = Field(default_factory=list)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    trainers: list[TrainerConfig] = Field(default_factory=list)
    # A failed training stops the run ("stop") or is recorded while the previous policy keeps
    # serving ("continue").
    on_training_error: Literal["stop", "continue"] = "stop"

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


# --- the structural pass --------------------------------------------------------------------------


# A society config is a page or two of YAML; a file this big is a mistake (or hostile), and is
# refused before it is read.
MAX_CONFIG_BYTES = 4 * 2**20


def read_config_text(path: str | Path) -> str:
    """A config file's text; ConfigError (naming the file) when it cannot be read or is larger
    than `MAX_CONFIG_BYTES`."""
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            message = f"{size:,} bytes, over the {MAX_CONFIG_BYTES:,} a config may hold"
            raise ConfigError(source, [ConfigIssue(path="", message=message)])
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [ConfigIssue(path="", message="no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue(path="", message=f"cannot read: {exc}")]) from None


def parse_structure(text: str, source_name: str = "<config>", overrides: Sequence[str] = ()) -> SocietyConfig:
    """YAML text plus overrides → a structurally valid config (types, keys, ranges); ConfigError
    listing every structural problem. Cross-field checks are coevo.society.validate's."""
    data, lines = load_yaml_with_lines(text, source_name)
    data, issues = _apply_overrides({} if data is None else data, overrides, lines)
    remember(data)  # from here on, no message this process prints shows the config's secrets
    try:
        config = SocietyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source_name, sort_issues(issues + _pydantic_issues(exc, data, lines))) from None
    if issues:
        raise ConfigError(source_name, sort_issues(issues))
    config._lines = lines
    return config


def apply_overrides(data: Any, overrides: Sequence[str]) -> Any:
    """Apply `a.b=c` overrides to raw config data (in place); raise ConfigError for bad ones."""
    data, issues = _apply_overrides(data, overrides, LineMap())
    if issues:
        raise ConfigError("--set", issues)
    return data


def sort_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    # Command-line problems first, then in file order.
    return sorted(issues, key=lambda i: (0, 0) if i.line == "--set" else (1, i.line or 0))


def _dotted(path: Sequence[PathPart]) -> str:
    return ".".join(str(p) for p in path)


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
            # A validator's message may quote the value it refused: a literal key, say.
            message = redact(error["msg"].removeprefix("Value error, "))
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
            # Named by its leading key path only: the rest may be a value (`api_key:sk-...`).
            path = re.split(r"[^\w.-]", text.strip(), maxsplit=1)[0]
            issues.append(ConfigIssue(path=path, line="--set", message="expected KEY=VALUE"))
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
