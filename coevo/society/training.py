"""Training inside a run: when a trainer is due, build its dataset from memory, train a LoRA
adapter (policy version v+1) with TRL, record it, hot-load it into the agent's engine, and let
the next round use it. A failed training run is recorded and the previous policy keeps serving.

Training runs in a worker thread so the event loop (and the TUI) stay responsive. On a GPU the
trainer defaults to the CPU device (`device: cpu` in trainer args) unless told otherwise, so it
never competes with vLLM for GPU memory; point `device: auto` at a free GPU to train there.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coevo.agents.base import LLMRole, Policy
from coevo.society.config import SocietyConfig, TrainerConfig
from coevo.society.events import AdapterLoaded, TrainingFinished, TrainingStarted
from coevo.tasks.prompts import solver_messages
from coevo.trainers.common import TrainResult, TrainSettings
from coevo.trainers.records import AttemptRec, ProblemRec, with_replay

if TYPE_CHECKING:
    from coevo.memory.store import Store
    from coevo.society.runner import SocietyRunner

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class TrainerSpec:
    config_class: type[TrainSettings]
    # (store, run_id, agent, rounds window, settings, rng) -> training rows
    build: Callable[[Store, str, str, range, Any, random.Random], Rows]
    train: Callable[[Any, Rows, str, Path | None, Path], TrainResult]


def attempt_records(store: Store, run_id: str, agent: str, rounds: range | None) -> list[AttemptRec]:
    """The agent's graded attempts at curriculum problems (inside the success band) as plain records."""
    problems = {p.problem_id: p for p in store.problems(run_id, in_curriculum=True)}
    records = []
    for a in store.attempts(run_id, agent=agent):
        problem = problems.get(a.problem_id)
        if problem is None or (rounds is not None and a.round not in rounds):
            continue
        records.append(
            AttemptRec(
                problem_id=a.problem_id,
                question=problem.question,
                reference_answer=problem.answer,
                reference_solution=problem.solution,
                response=a.response,
                correct=a.correct,
                round=a.round,
                skills=list(problem.skills),
            )
        )
    return records


def _solver_dpo_rows(
    store: Store, run_id: str, agent: str, window: range, settings: Any, rng: random.Random
) -> Rows:
    from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs

    def pairs(records: list[AttemptRec]) -> Rows:
        return build_dpo_pairs(records, settings.max_pairs_per_problem, rng, messages_for=solver_messages)

    everything = attempt_records(store, run_id, agent, None)
    new = [r for r in everything if r.round in window]
    old = [r for r in everything if r.round < window.start]
    return with_replay(pairs(new), pairs(old), settings.replay_fraction, rng)


def _stat_sft_rows(
    store: Store, run_id: str, agent: str, window: range, settings: Any, rng: random.Random
) -> Rows:
    from coevo.tasks.procedural import generate
    from coevo.tasks.profiles import missing_skill_profile, skill_profile
    from coevo.tasks.skills import get_skill
    from coevo.trainers.stat_sft_trainer import (
        build_sft_rows,
        select_by_missing_skills,
        synthesize_for_skills,
    )

    problems = {p.problem_id: p for p in store.problems(run_id)}
    records = [
        {"skills": problems[a.problem_id].skills, "correct": a.correct}
        for a in store.attempts(run_id, agent=agent)
        if a.round in window and a.problem_id in problems
    ]
    profile = missing_skill_profile(skill_profile(records))
    pool = [
        ProblemRec(p.problem_id, p.question, p.answer, p.solution, list(p.skills)) for p in problems.values()
    ]
    missing = [s for s, rate in sorted(profile.items(), key=lambda kv: -kv[1]) if rate > 0]
    selected = select_by_missing_skills(profile, pool, settings.select_per_skill * len(missing), rng)

    run = store.get_run(run_id)
    _, levels = SocietyConfig.model_validate_json(run.config_json).curriculum_space() if run else (None, None)

    def procedural(skill: str, r: random.Random) -> ProblemRec:
        # STAT-Syn done procedurally: a new problem of the skill at a random difficulty inside
        # the run's curriculum levels.
        spec = get_skill(skill).restrict(levels)
        p = generate(skill, spec.denormalize([r.random() for _ in range(3)]), seed=r.randrange(2**31))
        return ProblemRec(p.id, p.question, p.answer, p.solution, list(p.skills))

    synthesized = synthesize_for_skills(
        missing, settings.synth_per_skill, procedural, rng, max_tries=settings.synth_max_tries
    )
    return build_sft_rows([*selected, *synthesized], messages_for=solver_messages)


def _generator_sft_rows(
    store: Store, run_id: str, agent: str, window: range, settings: Any, rng: random.Random
) -> Rows:
    from coevo.society.events import Demonstration
    from coevo.trainers.records import DemoRec
    from coevo.trainers.socratic_generator_sft_trainer import build_generator_sft

    success: dict[str, list[bool]] = {}
    for a in store.attempts(run_id):
        success.setdefault(a.problem_id, []).append(a.correct)
    problems = {p.problem_id: p for p in store.problems(run_id)}
    demos = []
    for event in store.events(run_id, types=["Demonstration"]):
        assert isinstance(event, Demonstration)
        outcomes = success.get(event.target_problem_id)
        target = problems.get(event.target_problem_id)
        if not outcomes or target is None:
            continue  # the refined problem has not been attempted yet: its weight is unknown
        demos.append(
            DemoRec(
                source_question=problems[event.source_problem_id].question,
                failed_response=event.failed_response,
                target_question=target.question,
                target_answer=target.answer,
                target_success_rate=sum(outcomes) / len(outcomes),
            )
        )
    return build_generator_sft(demos, settings.weight_center, settings.weight_sigma)


def trainer_specs() -> dict[str, TrainerSpec]:
    from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig
    from coevo.trainers.socratic_generator_sft_trainer import train_generator_sft
    from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
    from coevo.trainers.socratic_solver_dpo_trainer import train_solver_dpo
    from coevo.trainers.stat_sft_config import StatSFTConfig
    from coevo.trainers.stat_sft_trainer import train_sft

    return {
        "socratic_solver_dpo": TrainerSpec(SolverDPOConfig, _solver_dpo_rows, train_solver_dpo),
        "socratic_generator_sft": TrainerSpec(GeneratorSFTConfig, _generator_sft_rows, train_generator_sft),
        "stat_sft": TrainerSpec(StatSFTConfig, _stat_sft_rows, train_sft),
    }


def adapter_name(agent: str, version: int) -> str:
    # A fresh name per version: engines cache adapters by name, and older versions stay servable.
    return f"{agent}-v{version}"


def _done(store: Store, run_id: str, trainer: TrainerConfig, round_index: int) -> bool:
    """Whether this trainer already ran after this round (resume must not train twice)."""
    if any(
        t.trainer == trainer.kind and t.round == round_index
        for t in store.training_runs(run_id, trainer.agent)
    ):
        return True
    return any(
        p.trainer == trainer.kind and p.created_round == round_index
        for p in store.policy_versions(run_id, trainer.agent)
    )


async def restore_policies(runner: SocietyRunner) -> None:
    """After a restart, serve each trainable agent's latest adapter again."""
    for name, role in runner.trainable_roles().items():
        latest = runner.store.latest_policy(runner.run_id, name)
        if latest is None or latest.adapter_path is None:
            continue
        adapter = adapter_name(name, latest.version)
        await role.engine.load_adapter(adapter, latest.adapter_path)
        role.policy = Policy(version=latest.version, adapter=adapter)


async def train_due(runner: SocietyRunner, round_index: int) -> None:
    for trainer in runner.config.trainers:
        if (round_index + 1) % trainer.every != 0 or _done(runner.store, runner.run_id, trainer, round_index):
            continue
        role = runner.trainable_roles().get(trainer.agent)
        if role is None:
            continue  # the society has no live agent for it (validated configs name trainable agents)
        await train_one(runner, trainer, role, round_index)


async def train_one(runner: SocietyRunner, trainer: TrainerConfig, role: LLMRole, round_index: int) -> None:
    from coevo.engines.builtin import resolve_model

    store, run_id = runner.store, runner.run_id
    spec = trainer_specs()[trainer.kind]
    from_version = role.policy.version
    version = from_version + 1
    common: dict[str, Any] = {"run_id": run_id, "round": round_index, "sender": "trainer"}
    rng = random.Random(f"{runner.config.seed}:train:{trainer.kind}:{round_index}")
    window = range(max(0, round_index - trainer.every + 1), round_index + 1)
    error: str | None = None
    rows: Rows = []
    try:
        settings = spec.config_class(
            **{**lora_settings(runner, trainer.agent), "seed": runner.config.seed, **trainer.args}
        )
        rows = spec.build(store, run_id, trainer.agent, window, settings, rng)
    except (ValidationError, ValueError) as exc:
        error = f"bad trainer settings or data: {exc}"
    runner.publish_now(
        TrainingStarted(**common, trainer=trainer.kind, agent=trainer.agent, examples=len(rows))
    )
    output_dir = runner.run_dir / "adapters" / trainer.agent / f"v{version}"
    result: TrainResult | None = None
    if error is None:
        try:
            engine = runner.config.engine_spec(trainer.agent)
            assert engine is not None  # validated: trainable agents have engines
            base_model = resolve_model(engine.model)
            init = store.latest_policy(run_id, trainer.agent)
            init_adapter = Path(init.adapter_path) if init and init.adapter_path else None
            result = await asyncio.to_thread(spec.train, settings, rows, base_model, init_adapter, output_dir)
        except Exception as exc:  # any failure leaves the previous policy serving
            error = f"{type(exc).__name__}: {exc}"
    if result is None:
        store.record_training(
            run_id,
            trainer.agent,
            trainer.kind,
            round_index,
            from_version,
            ok=False,
            error=error,
            examples=len(rows),
        )
        runner.publish_now(
            TrainingFinished(
                **common, trainer=trainer.kind, agent=trainer.agent, ok=False, new_version=None, error=error
            )
        )
        return
    metrics = {k: v for k, v in result.metrics.items() if k in REPORTED_METRICS}
    store.add_policy_version(
        run_id,
        trainer.agent,
        version,
        adapter_path=str(result.adapter_path),
        trainer=trainer.kind,
        created_round=round_index,
        metrics=result.metrics,
    )
    store.record_training(
        run_id,
        trainer.agent,
        trainer.kind,
        round_index,
        from_version,
        ok=True,
        to_version=version,
        examples=len(rows),
        metrics=result.metrics,
        adapter_path=str(result.adapter_path),
    )
    adapter = adapter_name(trainer.agent, version)
    await role.engine.load_adapter(adapter, result.adapter_path)
    role.policy = Policy(version=version, adapter=adapter)
    runner.publish_now(
        TrainingFinished(
            **common,
            trainer=trainer.kind,
            agent=trainer.agent,
            ok=True,
            new_version=f"v{version}",
            metrics=metrics,
        )
    )
    runner.publish_now(
        AdapterLoaded(**common, agent=trainer.agent, version=f"v{version}", path=str(result.adapter_path))
    )


# The handful of numbers worth showing per training run (all of them are stored).
REPORTED_METRICS = {
    "train_loss",
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "mean_token_accuracy",
    "train_runtime",
}


def lora_settings(runner: SocietyRunner, agent: str) -> dict[str, Any]:
    """The agent's `lora:` block as trainer settings ("all-linear" keeps the trainers' default:
    the projections vLLM can serve)."""
    lora = runner.config.agents[agent].lora
    if lora is None:
        return {}
    settings: dict[str, Any] = {"lora_r": lora.r, "lora_alpha": int(lora.alpha), "lora_dropout": lora.dropout}
    if lora.target_modules != "all-linear":
        modules = lora.target_modules
        settings["lora_target_modules"] = [modules] if isinstance(modules, str) else list(modules)
    return settings
