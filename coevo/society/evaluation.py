"""Evaluating a run's policies: which engine and adapter serve an agent's `base`, `latest` or
`vN` policy, the evaluation itself (coevo.tasks.evaluate), and storing the result in the run's
memory (the demo's before/after table is coevo.society.demo)."""

from __future__ import annotations

from pathlib import Path

from coevo.engines.base import Engine, SamplingParams
from coevo.memory.store import Store
from coevo.society.config import SocietyConfig
from coevo.society.session import load_snapshot, memory_url, run_id_for
from coevo.society.training import adapter_name
from coevo.tasks.evaluate import EvalReport, evaluate
from coevo.tasks.problem import Problem
from coevo.tasks.verifier import Grader


class PolicyError(ValueError):
    """A policy name that the run does not have."""


def policy_adapter(store: Store, run_id: str, agent: str, policy: str) -> tuple[str, int, str | None]:
    """(label, version, adapter path) for `base`, `latest` or `vN`."""
    versions = {p.version: p for p in store.policy_versions(run_id, agent)}
    if policy == "base":
        return "base", 0, None
    if policy == "latest":
        if not versions:
            return "base", 0, None
        version = max(versions)
    else:
        try:
            version = int(policy.removeprefix("v"))
        except ValueError:
            raise PolicyError(f"policy must be base, latest or vN, not {policy!r}") from None
        if version == 0:
            return "base", 0, None
        if version not in versions:
            known = ", ".join(["base", *(f"v{v}" for v in sorted(versions))])
            raise PolicyError(f"agent {agent} has no policy v{version}; it has: {known}")
    return f"v{version}", version, versions[version].adapter_path


def run_engine(config: SocietyConfig, agent: str, engine_kind: str | None = None) -> Engine:
    """The engine the agent used in the run (or another kind of engine on the same model)."""
    from coevo.engines.factory import make_engine
    from coevo.society.secrets import engine_options

    spec = config.engine_spec(agent)
    if spec is None:
        raise PolicyError(f"agent {agent} runs on no engine (a procedural teacher)")
    kind = engine_kind if engine_kind not in (None, "auto") else spec.kind
    options = engine_options(spec.options, f"engines.{config.agents[agent].engine}.options")
    return make_engine(kind, spec.model, **(options if kind == spec.kind else {}))


async def evaluate_policy(
    run_dir: Path,
    agent: str,
    policy: str,
    problems: list[Problem],
    dataset: str,
    *,
    engine: Engine,
    max_tokens: int = 256,
    progress: bool = True,
    verifier: Grader | None = None,
) -> tuple[str, EvalReport]:
    """Evaluate one policy of a run's agent with greedy decoding, and store the result."""
    config = load_snapshot(run_dir, [])
    store = Store(memory_url(config, run_dir))
    run_id = run_id_for(run_dir)
    label, version, path = policy_adapter(store, run_id, agent, policy)
    adapter = None
    if path is not None:
        adapter = adapter_name(agent, version)
        await engine.load_adapter(adapter, path)
    report = await evaluate(
        engine,
        problems,
        adapter=adapter,
        params=SamplingParams(temperature=0.0, max_tokens=max_tokens),
        progress=progress,
        verifier=verifier,
    )
    store.record_eval(
        agent,
        label,
        dataset,
        report.n,
        report.correct,
        report.ci_low,
        report.ci_high,
        run_id=run_id,
        per_skill={skill: {"n": n, "accuracy": acc} for skill, (n, acc) in report.per_skill.items()},
    )
    return label, report
