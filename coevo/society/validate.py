"""The second pass of config checking: everything `coevo run` would otherwise discover at run time,
refused by `coevo check` with the field and its line.

- plugins import, and every agent's role (and policy) is in the role registry;
- each agent has exactly what its role uses: an engine when the role runs on one (and none when
  it does not), `params` valid for the role's params model, a problem source for a Teacher that
  opens episodes (curriculum, pool, or `params.write`), and no block the runtime would ignore
  (an unused engine, `lora` on an agent nothing trains, sampling on an agent without a model);
- curricula build (known skills, valid curriculum parameters, levels that leave each skill some
  range), pools load, autogen factories import and are callable;
- engine options are ones the chosen engine takes (`auto` judged as it resolves here);
- trainers: known kind, a trainable agent of a role the kind trains, `args` valid for the kind's
  settings class, and a society that produces the data the kind trains on;
- periodic evaluation has held-out problems to evaluate (a procedural curriculum);
- the role graph (coevo.society.graph).

Relative file paths (plugins, pool datasets, autogen factories) are made absolute against the
config's folder, so the run's config snapshot works from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from coevo.agents.catalog import policies, role_names, role_spec
from coevo.agents.registry import RoleRegistryError
from coevo.agents.role import RoleSpec
from coevo.society.config import SocietyConfig
from coevo.society.config_errors import ConfigIssue, did_you_mean, one_of
from coevo.society.graph import GraphFlows, agent_spec, entry_agents, live_flows, validate_graph
from coevo.society.secrets import redact

PathPart = str | int


def validate(config: SocietyConfig, base_dir: Path | None = None) -> list[ConfigIssue]:
    """Every problem the second pass finds (empty when the config can run)."""
    issues = _plugin_issues(config, base_dir)
    issues += _agent_issues(config, base_dir)
    issues += _engine_issues(config)
    issues += _memory_issues(config)
    issues += _trainer_issues(config)
    issues += _schedule_issues(config)
    # The graph is judged by the roles' registry entries: only once every agent has one.
    if all(agent_spec(config, name) is not None for name in config.agents):
        issues += validate_graph(config)
    return issues


def _plugin_issues(config: SocietyConfig, base_dir: Path | None) -> list[ConfigIssue]:
    from coevo.agents.catalog import load_plugins
    from coevo.society.sources import resolve_path

    issues = []
    try:
        load_plugins([])  # the roles of installed packages (entry points), which every config sees
    except RoleRegistryError as exc:
        issues.append(config.issue("plugins", message=str(exc)))
    for index, plugin in enumerate(config.plugins):
        resolved = resolve_path(plugin, base_dir) if plugin.endswith(".py") else plugin
        config.plugins[index] = resolved
        try:
            load_plugins([resolved])
        except RoleRegistryError as exc:
            issues.append(config.issue("plugins", index, message=str(exc)))
    return issues


def _agent_issues(config: SocietyConfig, base_dir: Path | None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for name, agent in config.agents.items():
        at: tuple[PathPart, ...] = ("agents", name)
        if agent.role not in role_names():
            issues.append(
                config.issue(
                    *at, "role", message=f"unknown role '{agent.role}'{one_of(agent.role, role_names())}"
                )
            )
            continue
        variants = policies(agent.role)
        if variants and agent.policy not in variants:
            what = "needs" if agent.policy is None else f"has no policy '{agent.policy}'; it needs"
            issues.append(
                config.issue(*at, message=f"a {agent.role} {what} `policy:` one of {', '.join(variants)}")
            )
            continue
        if not variants and agent.policy is not None:
            issues.append(
                config.issue(*at, "policy", message=f"a {agent.role} has no policy variants; remove `policy`")
            )
            continue
        spec = role_spec(agent.role, agent.policy)
        if agent.prompt_version not in spec.prompts:
            issues.append(
                config.issue(
                    *at,
                    "prompt_version",
                    message=f"a {spec.label} has no prompt version '{agent.prompt_version}'"
                    f"{one_of(agent.prompt_version, spec.prompts)}",
                )
            )
        issues += _engine_use(config, name, spec)
        issues += _model_fields(config, (*at, "params"), spec.params, agent.params)
        issues += _source_issues(config, name, spec, base_dir)
        if agent.autogen is not None:
            issues += _autogen_issues(config, name, spec, base_dir)
    return issues


def _engine_use(config: SocietyConfig, name: str, spec: RoleSpec) -> list[ConfigIssue]:
    agent = config.agents[name]
    at = ("agents", name)
    what = f"a {spec.label}"
    issues = []
    if spec.engine == "none":
        if agent.engine is not None:
            issues.append(config.issue(*at, "engine", message=f"{what} runs on no engine; remove `engine`"))
        if agent.trainable:
            issues.append(config.issue(*at, "trainable", message=f"{what} has no model to train"))
        if dict(agent.sampling):
            issues.append(config.issue(*at, "sampling", message=f"{what} samples nothing; remove `sampling`"))
        return issues
    if agent.engine is None:
        issues.append(config.issue(*at, message=f"{what} needs an `engine`"))
    elif agent.engine not in config.engines:
        issues.append(
            config.issue(
                *at,
                "engine",
                message=f"unknown engine '{agent.engine}'{one_of(agent.engine, config.engines)}",
            )
        )
    if agent.lora is not None and not agent.trainable:
        issues.append(
            config.issue(*at, "lora", message="`lora` is used only by a trainable agent (trainable: true)")
        )
    if agent.trainable and not any(t.agent == name for t in config.trainers):
        issues.append(
            config.issue(
                *at,
                "trainable",
                message=f"'{name}' is trainable but no trainer trains it; add one under trainers",
            )
        )
    if agent.trainable and agent.engine in config.engines:
        issues += _trainable_model_issues(config, name)
    return issues


def _trainable_model_issues(config: SocietyConfig, name: str) -> list[ConfigIssue]:
    """A trained agent's engine must serve weights on this disk: the trainer loads the base model
    from them, and the engine then serves the adapter trained on exactly that model."""
    from coevo.engines.builtin import is_builtin

    agent = config.agents[name]
    assert agent.engine is not None and agent.lora is not None
    engine = config.engines[agent.engine]
    at = ("engines", agent.engine)
    issues = []
    if not is_builtin(engine.model) and not (Path(engine.model) / "config.json").is_file():
        issues.append(
            config.issue(
                *at,
                "model",
                message=f"'{name}' is trainable, but '{engine.model}' is not a model folder on this machine "
                "(no config.json there): a served name or a hub id cannot be trained, since the trainer "
                "loads the base weights from disk; give a local folder (e.g. `hf download ID --local-dir "
                "DIR`, served by the engine from DIR too) or a builtin: model",
            )
        )
    limit = _max_lora_rank(engine.kind, engine.options, agent.lora.r)
    if limit is not None:
        issues.append(
            config.issue(
                "agents",
                name,
                "lora",
                "r",
                message=f"rank {agent.lora.r} is above the max_lora_rank {limit} of engine "
                f"'{agent.engine}' (vllm serving adapters): vLLM would refuse the adapter once it is "
                f"trained; lower lora.r or set engines.{agent.engine}.options.max_lora_rank to at least "
                f"{agent.lora.r}",
            )
        )
    return issues


def _max_lora_rank(kind: str, options: dict[str, Any], rank: int) -> int | None:
    """The highest LoRA rank the engine can serve, where `rank` is above it; None where it is not,
    or where nothing limits it (the transformers and openai engines as coevo configures them, and
    vLLM serving merged weights)."""
    import inspect

    from coevo.engines.factory import resolve_kind_quietly

    if resolve_kind_quietly(kind) != "vllm":
        return None
    from coevo.engines.base import EngineError
    from coevo.engines.vllm_engine import VLLMEngine, serving_mode

    defaults = inspect.signature(VLLMEngine.__init__).parameters
    limit = options.get("max_lora_rank", defaults["max_lora_rank"].default)
    if not isinstance(limit, int) or rank <= limit:
        return None
    # Asked only now: "auto" serving resolves by whether CUDA is there, which imports torch.
    try:
        if serving_mode(options.get("lora_serving", defaults["lora_serving"].default)) != "adapter":
            return None
    except EngineError:
        return None  # a bad lora_serving is the engine's to report when it starts
    return limit


def _source_issues(
    config: SocietyConfig, name: str, spec: RoleSpec, base_dir: Path | None
) -> list[ConfigIssue]:
    """Problem sources: a curriculum that builds, a pool that loads, exactly one for an LLM Teacher."""
    from coevo.society.sources import build_curriculum, load_pool, resolve_path

    agent = config.agents[name]
    at = ("agents", name)
    issues: list[ConfigIssue] = []
    opens = bool(spec.opens)
    for block in ("curriculum", "pool"):
        if getattr(agent, block) is not None and not opens:
            issues.append(
                config.issue(
                    *at, block, message=f"`{block}` is a problem source; a {spec.name} poses nothing"
                )
            )
    if not opens:
        return issues
    writes = bool(agent.params.get("write"))
    if spec.engine == "none" and agent.pool is not None:
        issues.append(
            config.issue(
                *at,
                "pool",
                message=f"a {spec.name} ({spec.policy}) poses from its curriculum; a pool needs policy: llm",
            )
        )
    if agent.curriculum is not None:
        try:
            build_curriculum(agent.curriculum, config.seed)
        except ValueError as exc:
            issues.append(config.issue(*at, "curriculum", *_curriculum_field(str(exc)), message=str(exc)))
    if agent.pool is not None:
        if agent.pool.dataset is not None and (
            "/" in agent.pool.dataset or agent.pool.dataset.endswith((".jsonl", ".json"))
        ):
            agent.pool.dataset = resolve_path(agent.pool.dataset, base_dir)
        try:
            pool = load_pool(agent.pool)
        except ValueError as exc:
            issues.append(config.issue(*at, "pool", message=str(exc)))
        else:
            if not pool:
                issues.append(config.issue(*at, "pool", message="the pool holds no problems"))
    if spec.engine != "none":
        sources = [
            s
            for s, on in (("curriculum", agent.curriculum), ("pool", agent.pool), ("params.write", writes))
            if on
        ]
        if not sources:
            issues.append(
                config.issue(
                    *at,
                    message=f"a {spec.name} ({spec.policy}) needs a problem source: `curriculum`, `pool`, "
                    "or `params: {write: true}`",
                )
            )
        elif agent.curriculum is not None and agent.pool is not None:
            issues.append(
                config.issue(*at, "pool", message="give one problem source: `curriculum` or `pool`, not both")
            )
        explains = any(e.source == name and e.message == "Explanation" for e in config.graph)
        if explains and agent.curriculum is None and agent.pool is None:
            issues.append(
                config.issue(
                    *at,
                    message="explaining needs exam problems like the explained one: "
                    "give a `curriculum` or a `pool`",
                )
            )
    return issues


def _curriculum_field(message: str) -> tuple[str, ...]:
    if "skill" in message and "unknown" in message:
        return ("skills",)
    if "levels" in message or "dimension" in message:
        return ("levels",)
    if "parameters" in message:
        return ("params",)
    return ()


def _autogen_issues(
    config: SocietyConfig, name: str, spec: RoleSpec, base_dir: Path | None
) -> list[ConfigIssue]:
    from coevo.society.sources import load_factory, resolve_path

    agent = config.agents[name]
    assert agent.autogen is not None
    at = ("agents", name, "autogen", "factory")
    if spec.engine == "none":
        return [
            config.issue(*at, message=f"a {spec.name} ({spec.policy}) runs no model, so no autogen agent")
        ]
    target, sep, attribute = agent.autogen.factory.rpartition(":")
    if sep and target.endswith(".py"):
        agent.autogen.factory = f"{resolve_path(target, base_dir)}:{attribute}"
    try:
        load_factory(agent.autogen.factory)
    except (ValueError, ImportError, RoleRegistryError) as exc:
        return [config.issue(*at, message=f"cannot load the autogen factory: {exc}")]
    return []


def _engine_issues(config: SocietyConfig) -> list[ConfigIssue]:
    from coevo.engines.builtin import BUILTIN_PREFIX, builtin_names
    from coevo.engines.factory import option_problems
    from coevo.society.secrets import SecretError, engine_options

    used = {a.engine for a in config.agents.values() if a.engine}
    issues = []
    for name, engine in config.engines.items():
        at = ("engines", name)
        if name not in used:
            issues.append(config.issue(*at, message=f"engine '{name}' is used by no agent; remove it"))
            continue
        if engine.model.startswith(BUILTIN_PREFIX) and engine.model not in builtin_names():
            issues.append(
                config.issue(
                    *at,
                    "model",
                    message=f"unknown built-in model '{engine.model}'{one_of(engine.model, builtin_names())}",
                )
            )
        try:
            options = engine_options(engine.options, f"engines.{name}.options")
        except SecretError as exc:
            issues.append(config.issue(*at, "options", message=str(exc)))
            continue
        for option, problem in option_problems(engine.kind, options).items():
            path = (*at, "options", option) if option in engine.options else (*at, "options")
            issues.append(config.issue(*path, message=problem))
    return issues


def _memory_issues(config: SocietyConfig) -> list[ConfigIssue]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from coevo.society.secrets import SecretError, expand, mask_url

    if config.memory.url is None:
        return []
    try:
        # As `coevo run` opens it: `${NAME}` expanded (an unset one is refused, as in engine options).
        make_url(expand(config.memory.url, "memory.url"))
    except SecretError as exc:
        return [config.issue("memory", "url", message=str(exc).removeprefix("memory.url: "))]
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        shown = mask_url(config.memory.url)
        return [
            config.issue(
                "memory",
                "url",
                message=f"not a database URL: {shown!r} (e.g. sqlite:///path/coevo.db or postgresql://...)",
            )
        ]
    return []


def _trainer_issues(config: SocietyConfig) -> list[ConfigIssue]:
    from coevo.trainers.registry import TRAINERS

    issues: list[ConfigIssue] = []
    flows = GraphFlows(config)
    entries = entry_agents(config)
    acting = set(entries) | {config.graph[i].target for i in live_flows(config)}
    for index, trainer in enumerate(config.trainers):
        at: tuple[PathPart, ...] = ("trainers", index)
        kind = TRAINERS.get(trainer.kind)
        if kind is None:
            issues.append(
                config.issue(
                    *at,
                    "kind",
                    message=f"unknown trainer kind '{trainer.kind}'{one_of(trainer.kind, TRAINERS)}",
                )
            )
        target = config.agents.get(trainer.agent)
        if target is None:
            issues.append(
                config.issue(
                    *at,
                    "agent",
                    message=f"unknown agent '{trainer.agent}'{one_of(trainer.agent, config.agents)}",
                )
            )
            continue
        if not target.trainable:
            issues.append(
                config.issue(
                    *at,
                    "agent",
                    message=f"agent '{trainer.agent}' is not trainable "
                    f"(set agents.{trainer.agent}.trainable: true)",
                )
            )
        if kind is None:
            continue
        if target.role not in kind.roles:
            issues.append(
                config.issue(
                    *at,
                    "agent",
                    message=f"{trainer.kind} trains a {' or '.join(sorted(kind.roles))}, "
                    f"but '{trainer.agent}' is a {target.role}",
                )
            )
            continue
        issues += _model_fields(
            config, (*at, "args"), kind.config_class, {**lora_settings(config, trainer.agent), **trainer.args}
        )
        reason = kind.requirement(flows, trainer.agent)
        if reason is not None:
            issues.append(config.issue(*at, message=f"{trainer.kind} {reason}"))
        elif trainer.agent not in acting:
            sources = ", ".join(entries) or "none: no agent opens episodes"
            issues.append(
                config.issue(
                    *at,
                    "agent",
                    message=f"no path leads from a problem source ({sources}) to '{trainer.agent}'",
                )
            )
    return issues


def lora_settings(config: SocietyConfig, agent: str) -> dict[str, Any]:
    """The agent's `lora:` block as trainer settings ("all-linear" keeps the trainers' default:
    the projections vLLM can serve)."""
    lora = config.agents[agent].lora
    if lora is None:
        return {}
    settings: dict[str, Any] = {"lora_r": lora.r, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout}
    if lora.target_modules != "all-linear":
        modules = lora.target_modules
        settings["lora_target_modules"] = [modules] if isinstance(modules, str) else list(modules)
    return settings


def _schedule_issues(config: SocietyConfig) -> list[ConfigIssue]:
    if config.schedule.eval_every == 0:
        return []
    has_curriculum = any(a.curriculum is not None for a in config.agents.values())
    if not has_curriculum:
        return [
            config.issue(
                "schedule",
                "eval_every",
                message="periodic evaluation uses held-out problems of the run's procedural curriculum; "
                "this society has none (use `coevo eval --run` with a dataset instead)",
            )
        ]
    if not any(a.trainable for a in config.agents.values()):
        return [config.issue("schedule", "eval_every", message="no trainable agent to evaluate")]
    return []


def _model_fields(
    config: SocietyConfig, at: tuple[PathPart, ...], model: type[BaseModel], values: dict[str, Any]
) -> list[ConfigIssue]:
    """Validate `values` against a settings model; one issue per bad field, at that field."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            field = [str(p) for p in error["loc"]]
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(model.model_fields)
                near = did_you_mean(field[-1], model.model_fields)
                message = f"unknown setting '{field[-1]}'{near}; allowed: {allowed}"
            else:
                # A validator's message may quote the value it refused: a literal key, say.
                message = redact(error["msg"].removeprefix("Value error, "))
            issues.append(config.issue(*at, *field, message=message))
        return issues
    return []
