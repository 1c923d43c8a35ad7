"""Evaluating a run's policies: which engine and adapter serve an agent's `base`, `latest` or
`vN` policy, the evaluation itself (coevo.tasks.evaluate), and storing the result in the run's
memory. `compare` is the before/after table that `coevo demo` ends with."""

from __future__ import annotations

from pathlib import Path

from coevo.engines.base import Engine, SamplingParams
from coevo.memory.store import Store
from coevo.society.config import SocietyConfig
from coevo.society.session import load_snapshot, memory_url, run_id_for
from coevo.society.training import adapter_name
from coevo.tasks.evaluate import EvalReport, evaluate
from coevo.tasks.problem import Problem


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

    spec = config.engine_spec(agent)
    if spec is None:
        raise PolicyError(f"agent {agent} runs on no engine (a procedural teacher)")
    kind = engine_kind if engine_kind not in (None, "auto") else spec.kind
    return make_engine(kind, spec.model, **(spec.options if kind == spec.kind else {}))


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


def format_comparison(before: tuple[str, EvalReport], after: tuple[str, EvalReport]) -> str:
    (b_label, b), (a_label, a) = before, after
    skills = sorted(set(b.per_skill) | set(a.per_skill))
    lines = [
        f"{'skill':<24} {b_label:>10} {a_label:>10} {'change':>8}",
        f"{'-' * 24} {'-' * 10} {'-' * 10} {'-' * 8}",
    ]
    for skill in skills:
        ab = b.per_skill.get(skill, (0, 0.0))[1]
        aa = a.per_skill.get(skill, (0, 0.0))[1]
        lines.append(f"{skill:<24} {ab:>10.1%} {aa:>10.1%} {100 * (aa - ab):>+7.1f}p")
    lines.append(
        f"{'all (' + str(a.n) + ' problems)':<24} {b.accuracy:>10.1%} {a.accuracy:>10.1%} "
        f"{100 * (a.accuracy - b.accuracy):>+7.1f}p"
    )
    lines.append(
        f"95% CI: {b_label} [{b.ci_low:.1%}, {b.ci_high:.1%}]   {a_label} [{a.ci_low:.1%}, {a.ci_high:.1%}]"
    )
    return "\n".join(lines)


async def compare(run_dir: Path, agent: str, limit: int, seed: int = 0, engine: Engine | None = None) -> str:
    """Base versus latest policy on the procedural held-out set, over the run's skills and levels
    (on `engine` if given, else on a new engine like the run's)."""
    from coevo.tasks.loaders import load_dataset_spec

    config = load_snapshot(run_dir, [])
    skills, levels = config.curriculum_space()
    problems = load_dataset_spec("procedural-heldout", "test", limit, skills=skills, seed=seed, levels=levels)
    serving = engine or run_engine(config, agent)
    try:
        # Arithmetic answers fit in 128 tokens; longer outputs are rambling that cannot turn correct.
        before, after = [
            await evaluate_policy(
                run_dir, agent, policy, problems, "procedural-heldout", engine=serving, max_tokens=128
            )
            for policy in ("base", "latest")
        ]
    finally:
        if engine is None:
            await serving.close()
    return format_comparison(before, after)
