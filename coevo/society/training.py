"""The training service of a run: when a trainer is due, build its rows from memory (the trainer
registry's builder), train a LoRA adapter (policy version v+1) with TRL, record it, hot-load it into
the agent's engine, check that the engine really serves it, and let the next round use it.

Its interface is three calls the runner makes — `restore` after a restart, `train_due` after each
round, `evaluate_due` for periodic evaluation. A training is one unit (kill -9 anywhere leaves it
either complete or absent): its TrainingStarted is journaled provisionally, the adapter is written
to a scratch folder (`adapters/<agent>/.partial-vN`) and renamed into place when complete, and then
one transaction records the training, the policy version and the finishing events together. A
resume deletes the provisional event and any scratch or unrecorded adapter folder, and trains once.

A failed training stops the run with the reason (`on_training_error: stop`, the default), or is
recorded while the previous policy keeps serving (`continue`). After a new adapter is loaded, a
fixed probe prompt must come back different (text, or log-probabilities) from the previous
policy's: an engine that silently kept serving the old weights stops the run.

Training runs in a worker thread so the event loop (journal, heartbeat, a TUI) stays responsive.
On a GPU the trainer defaults to the CPU device (`device: cpu` in trainer args) unless told
otherwise, so it never competes with vLLM for GPU memory; `device: auto` trains on a free GPU.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from coevo.agents.base import LLMRole, Policy
from coevo.memory.journal import JournalWriter
from coevo.memory.store import Store
from coevo.messages import (
    AdapterLoaded,
    EvalFinished,
    Event,
    TrainingFinished,
    TrainingStarted,
    TrainingStep,
    derive_event_id,
)
from coevo.society.config import SocietyConfig, TrainerConfig
from coevo.society.errors import PolicyNotServedError, TrainingFailedError
from coevo.society.secrets import redact
from coevo.society.validate import lora_settings
from coevo.tasks.verifier import Grader
from coevo.trainers.common import TrainResult, progress_bars_off, reporting_steps
from coevo.trainers.datasets import RowRequest, Rows, training_rng

log = logging.getLogger(__name__)

# The handful of numbers worth showing per training run (all of them are stored).
REPORTED_METRICS = {
    "train_loss",
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "mean_token_accuracy",
    "train_runtime",
}


PROBE_QUESTION = "What is 17 + 25?"


def adapter_name(agent: str, version: int) -> str:
    # A fresh name per version: engines cache adapters by name, and older versions stay servable.
    return f"{agent}-v{version}"


class TrainingService:
    def __init__(
        self,
        config: SocietyConfig,
        store: Store,
        run_id: str,
        run_dir: Path,
        journal: JournalWriter,
        show: Callable[[Event], None],
        grader: Grader,
    ) -> None:
        self.config = config
        # The run's verifier, which periodic evaluation grades with.
        self.grader = grader
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.journal = journal
        # Shows an event at once (the event bus); storing is the service's own business.
        self.show = show

    def publish(self, event: Event) -> None:
        """An event outside any training unit (periodic evaluation): stored and shown at once."""
        self.store.add_events(self.run_id, [event])
        self.show(event)

    async def restore(self, roles: Mapping[str, LLMRole]) -> None:
        """After a restart: delete what interrupted trainings left on disk, and serve each
        trainable agent's latest recorded adapter again."""
        recorded = {p.adapter_path for name in roles for p in self.store.policy_versions(self.run_id, name)}
        for folder in sorted((self.run_dir / "adapters").glob("*/*")):
            if folder.name.startswith(".") or (folder.is_dir() and str(folder) not in recorded):
                shutil.rmtree(folder, ignore_errors=True)
        for name, role in roles.items():
            latest = self.store.latest_policy(self.run_id, name)
            if latest is None or latest.adapter_path is None:
                continue
            adapter = adapter_name(name, latest.version)
            await role.engine.load_adapter(adapter, latest.adapter_path)
            role.policy = Policy(version=latest.version, adapter=adapter)

    async def train_due(self, round_index: int, roles: Mapping[str, LLMRole]) -> None:
        for trainer in self.config.trainers:
            if (round_index + 1) % trainer.every != 0 or self._done(trainer, round_index):
                continue
            await self.train_one(trainer, roles[trainer.agent], round_index)

    def _done(self, trainer: TrainerConfig, round_index: int) -> bool:
        """Whether this trainer already ran after this round (resume must not train twice)."""
        if any(
            t.trainer == trainer.kind and t.round == round_index
            for t in self.store.training_runs(self.run_id, trainer.agent)
        ):
            return True
        return any(
            p.trainer == trainer.kind and p.created_round == round_index
            for p in self.store.policy_versions(self.run_id, trainer.agent)
        )

    def _step_reporter(
        self, trainer: TrainerConfig, round_index: int
    ) -> Callable[[int, int, dict[str, float]], None]:
        """A live step counter: each optimizer step becomes a TrainingStep event, journaled (as
        provisional, committed with the training) and shown. Called in the training thread, so the
        event is handed to the event loop's thread."""
        loop = asyncio.get_running_loop()

        def report(step: int, max_steps: int, figures: dict[str, float]) -> None:
            metrics = {k: v for k, v in figures.items() if k in REPORTED_METRICS}
            event = TrainingStep(
                trainer=trainer.kind, agent=trainer.agent, step=step, max_steps=max_steps, metrics=metrics
            )
            loop.call_soon_threadsafe(
                self._record_step, self._event(event, round_index, trainer.kind, trainer.agent, step)
            )

        return report

    def _record_step(self, event: Event) -> None:
        self.journal.add(event)
        self.show(event)

    def _event(self, event: Event, round_index: int, *key: object) -> Event:
        event.id = derive_event_id(round_index, "training", *key, event.type)
        event.run_id, event.round, event.sender = self.run_id, round_index, "trainer"
        return event

    async def train_one(self, trainer: TrainerConfig, role: LLMRole, round_index: int) -> None:
        from coevo.engines.builtin import resolve_model
        from coevo.trainers.registry import TRAINERS

        store, run_id = self.store, self.run_id
        kind = TRAINERS[trainer.kind]
        from_version = role.policy.version
        version = from_version + 1
        key = (trainer.kind, trainer.agent)
        rng = training_rng(self.config.seed, trainer.kind, round_index)
        window = range(max(0, round_index - trainer.every + 1), round_index + 1)
        error: str | None = None
        # What made the training fail (kept so that the run's error is chained to it) in one line.
        cause: BaseException | None = None
        reason = ""
        rows: Rows = []
        settings: Any = None
        try:
            settings = kind.config_class(
                **{**lora_settings(self.config, trainer.agent), "seed": self.config.seed, **trainer.args}
            )
            _, levels = self.config.curriculum_space()
            rows = kind.rows(RowRequest(store, run_id, trainer.agent, window, rng, levels), settings)
        except (ValidationError, ValueError) as exc:
            # Redacted before it is stored or shown: pydantic quotes the input (`hub_token`, say).
            cause, error = exc, redact(f"bad trainer settings or data: {exc}")
            reason = error
        log.info(
            "training %s with %s after round %d on %d rows",
            trainer.agent,
            trainer.kind,
            round_index,
            len(rows),
        )
        started = self._event(
            TrainingStarted(trainer=trainer.kind, agent=trainer.agent, examples=len(rows)), round_index, *key
        )
        self.journal.add(started)
        self.show(started)
        await self.journal.flush()
        folder = self.run_dir / "adapters" / trainer.agent
        scratch, final = folder / f".partial-v{version}", folder / f"v{version}"
        result: TrainResult | None = None
        if error is None:
            try:
                engine = self.config.engine_spec(trainer.agent)
                assert engine is not None  # validated: trainable agents have engines
                base_model = resolve_model(engine.model)
                init = store.latest_policy(run_id, trainer.agent)
                init_adapter = Path(init.adapter_path) if init and init.adapter_path else None
                with reporting_steps(self._step_reporter(trainer, round_index)), progress_bars_off():
                    result = await asyncio.to_thread(
                        kind.train, settings, rows, base_model, init_adapter, scratch
                    )
            except Exception as exc:
                # The whole traceback goes to the event (so the TUI and `coevo show` have it) and
                # to the log; the run's own error is chained to the exception.
                cause, reason = exc, redact(f"{type(exc).__name__}: {exc}")
                error = redact("".join(traceback.format_exception(exc)).rstrip())
        if error is not None:
            log.error(
                "training %s with %s after round %d failed",
                trainer.agent,
                trainer.kind,
                round_index,
                exc_info=cause,
            )
        # The step events the training thread handed over are journaled before the training is
        # committed, so that its commit confirms them (a step left behind would stay provisional).
        await asyncio.sleep(0)
        await self.journal.flush()
        record = {
            "agent": trainer.agent,
            "trainer": trainer.kind,
            "round": round_index,
            "from_version": from_version,
            "examples": len(rows),
            "started_at": started.created_at,
        }
        if result is None:
            shutil.rmtree(scratch, ignore_errors=True)
            failed = self._event(
                TrainingFinished(
                    trainer=trainer.kind, agent=trainer.agent, ok=False, new_version=None, error=error
                ),
                round_index,
                *key,
            )
            store.commit_training(run_id, {**record, "ok": False, "error": error}, [failed])
            self.show(failed)
            if self.config.on_training_error == "stop":
                raise TrainingFailedError(
                    f"training {trainer.agent} with {trainer.kind} after round {round_index} failed: "
                    f"{reason} (the traceback is in {self.run_dir / 'coevo.log'}; set on_training_error: "
                    "continue to keep the previous policy and go on)"
                ) from cause
            log.warning("keeping %s's previous policy (on_training_error: continue)", trainer.agent)
            return
        if final.exists():  # renamed by a run killed before it could record it
            shutil.rmtree(final)
        scratch.rename(final)
        metrics = {k: v for k, v in result.metrics.items() if k in REPORTED_METRICS}
        finished = TrainingFinished(
            trainer=trainer.kind, agent=trainer.agent, ok=True, new_version=f"v{version}", metrics=metrics
        )
        loaded = AdapterLoaded(agent=trainer.agent, version=f"v{version}", path=str(final))
        events = [self._event(finished, round_index, *key), self._event(loaded, round_index, *key)]
        store.commit_training(
            run_id,
            {
                **record,
                "ok": True,
                "to_version": version,
                "metrics_json": result.metrics,
                "adapter_path": str(final),
            },
            events,
            policy={
                "agent": trainer.agent,
                "version": version,
                "adapter_path": str(final),
                "trainer": trainer.kind,
                "created_round": round_index,
                "metrics_json": result.metrics,
            },
        )
        before = await probe(role)
        adapter = adapter_name(trainer.agent, version)
        await role.engine.load_adapter(adapter, final)
        role.policy = Policy(version=version, adapter=adapter)
        if await probe(role) == before:
            raise PolicyNotServedError(
                f"after loading {adapter} the engine still answers the probe prompt exactly as "
                f"{trainer.agent}'s previous policy did: it is not serving the new adapter"
            )
        for event in events:
            self.show(event)
        log.info("%s now serves %s (%s)", trainer.agent, adapter, final)

    async def evaluate_due(self, round_index: int, roles: Mapping[str, LLMRole]) -> None:
        """Every `schedule.eval_every` rounds: each trainable agent's current policy, greedy, on
        held-out problems of the run's curriculum (skills and levels), stored as an evaluation."""
        every = self.config.schedule.eval_every
        if every == 0 or (round_index + 1) % every != 0:
            return
        from coevo.engines.base import SamplingParams
        from coevo.tasks.evaluate import evaluate
        from coevo.tasks.heldout import heldout_set

        schedule = self.config.schedule
        skills, levels = self.config.curriculum_space()
        problems = heldout_set(n=schedule.eval_problems, skills=skills, seed=self.config.seed, levels=levels)
        for name, role in roles.items():
            report = await evaluate(
                role.engine,
                problems,
                adapter=role.policy.adapter,
                params=SamplingParams(temperature=0.0, max_tokens=schedule.eval_max_tokens),
                progress=False,
                prompt=role.eval_messages,
                verifier=self.grader,
            )
            per_skill = {skill: acc for skill, (_, acc) in report.per_skill.items()}
            self.store.record_eval(
                name,
                role.policy.label,
                "procedural-heldout",
                report.n,
                report.correct,
                report.ci_low,
                report.ci_high,
                run_id=self.run_id,
                per_skill={skill: {"n": n, "accuracy": acc} for skill, (n, acc) in report.per_skill.items()},
            )
            event = EvalFinished(
                agent=name,
                policy=role.policy.label,
                dataset="procedural-heldout",
                n=report.n,
                accuracy=report.accuracy,
                ci_low=report.ci_low,
                ci_high=report.ci_high,
                per_skill=per_skill,
            )
            self.publish(self._event(event, round_index, "eval", name))


async def probe(role: LLMRole) -> tuple[str, tuple[float, ...] | None]:
    """The role's greedy answer to a fixed prompt, with its log-probabilities where the engine
    gives them: what a policy change must change."""
    from coevo.tasks.prompts import solver_messages

    result = await role.sample(
        solver_messages(PROBE_QUESTION), n=1, seed=0, temperature=0.0, max_tokens=16, logprobs=True
    )
    completion = result.completions[0]
    logprobs = None if completion.logprobs is None else tuple(round(p, 4) for p in completion.logprobs)
    return completion.text, logprobs
