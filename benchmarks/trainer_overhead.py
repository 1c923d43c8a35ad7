"""Seconds per DPO step of coevo's Solver trainer against a bare TRL `DPOTrainer` on the same
rows with the same settings, measured in one run with the society's vLLM engine alive in the
same process (as in a real run, where the trainer runs in a worker thread beside the engine).

    python benchmarks/trainer_overhead.py [--steps 8] [--pairs 60] [--repeats 3] [--no-engine-alive]
                                          [--learning-check] [--check-steps 15]

Rows: `--pairs` demo-like preference pairs built by coevo's own `build_dpo_pairs` from
procedural problems of the demo's skills and levels (add/sub, 1-3 digits, 2-3 terms): chosen =
the reference solution ("... The answer is N."), rejected = a wrong attempt about as long as the
base model's typical 64-token ramble. Settings: those of configs/demo.yaml's Solver trainer
(DPO + NLL, β 0.1, α 1, LoRA r16/α32/dropout 0.05 on all seven projections, batch 4, lr 2e-4
constant, max_length 256), for `--steps` steps.

Trainings, each in a worker thread, `--repeats` times in rotated order, the median reported:
- coevo: `train_solver_dpo` with its defaults (frozen base projections in bf16);
- bare TRL, fp32: `DPOTrainer` as TRL's documentation writes it, on an fp32 model (TRL's CPU default);
- bare TRL, bf16: the same with TRL's own `bf16=True` (autocast).
Each reports seconds per step inside `Trainer.train` (`train_runtime / steps`) and, separately,
the rest of its wall time (model load, tokenization, saving).

`--engine-alive` (the default) first starts `VLLMEngine` on the built-in model
(`gpu_memory_utilization=0.3`, like the demo) and serves a demo-shaped round (16 prompts x 4
samples) before every training, so each starts right after generation, as in a society.

`--learning-check` then trains coevo's trainer for `--check-steps` steps twice, with
`base_precision` bf16 and fp32, and reports greedy accuracy on 100 held-out problems of the same
skills and levels for the base model and both adapters, served by the engine (needs it alive).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from coevo.trainers.records import AttemptRec
from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs

if TYPE_CHECKING:
    from collections.abc import Callable

    from coevo.engines.base import Engine

MODEL = "builtin:smollm2-135m-instruct"
SKILLS = ["add_no_carry", "add_carry", "sub_no_borrow", "sub_borrow"]
LEVELS = {"digits": (1, 3), "steps": (1, 2), "distractors": (0, 0)}
PROGRESS = "[bench] "


@dataclass(frozen=True)
class Timing:
    name: str
    steps: int
    train_s: float  # inside Trainer.train
    wall_s: float  # the whole call
    final_loss: float

    @property
    def per_step(self) -> float:
        return self.train_s / self.steps


def demo_pairs(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` preference pairs, one per procedural problem, through coevo's pair builder."""
    from coevo.tasks.procedural import generate

    rng = random.Random(seed)
    attempts = []
    for i in range(count):
        levels = {"digits": rng.randint(1, 3), "steps": rng.randint(1, 2), "distractors": 0}
        problem = generate(SKILLS[i % len(SKILLS)], levels, seed=seed * 100_000 + i)
        wrong = int(problem.answer) + rng.choice([-11, -2, -1, 1, 3, 10])
        expression = problem.question.removeprefix("What is ").rstrip("?")
        # The base model's failed attempts ramble for ~55 tokens (its 64-token limit); this keeps
        # the padded batch shapes of a demo training.
        response = (
            f"To solve this, we first need to work out {expression}. Taking the numbers in order "
            f"gives {expression} = {wrong}.\n\nNow we check the sum by subtracting the first number. "
            f"The answer is {wrong}."
        )
        attempts.append(
            AttemptRec(problem.id, problem.question, problem.answer, problem.solution, response, False, 0)
        )
    return build_dpo_pairs(attempts, 1, rng)


def demo_config(steps: int, **overrides: Any) -> SolverDPOConfig:
    """configs/demo.yaml's Solver trainer settings (its `lora:` block and `args:`)."""
    settings: dict[str, Any] = {
        "learning_rate": 2e-4,
        "lr_scheduler_type": "constant",
        "max_steps": steps,
        "beta": 0.1,
        "rpo_alpha": 1.0,
        "max_length": 256,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
    }
    return SolverDPOConfig(**{**settings, **overrides})


def train_coevo(config: SolverDPOConfig, pairs: list[dict[str, Any]], base: str, out: Path) -> Timing:
    from coevo.trainers.socratic_solver_dpo_trainer import train_solver_dpo

    started = time.perf_counter()
    result = train_solver_dpo(config, pairs, base, None, out)
    wall = time.perf_counter() - started
    name = f"coevo ({config.base_precision} base)"
    return Timing(name, result.steps, result.metrics["train_runtime"], wall, result.metrics["train_loss"])


def train_bare(
    config: SolverDPOConfig, pairs: list[dict[str, Any]], base: str, out: Path, bf16: bool
) -> Timing:
    """The same training written directly against TRL, as its documentation shows it."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import DPOConfig, DPOTrainer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    args = DPOConfig(
        output_dir=str(out),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        max_length=config.max_length,
        beta=config.beta,
        loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, config.rpo_alpha],
        use_cpu=True,
        bf16=bf16,
        seed=config.seed,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    # As coevo does: per-step dicts on stdout would bury the figures.
    trainer.remove_callback(PrinterCallback)
    output = trainer.train()
    trainer.save_model(str(out))
    wall = time.perf_counter() - started
    name = f"bare TRL ({'bf16=True' if bf16 else 'fp32'})"
    return Timing(
        name, output.global_step, output.metrics["train_runtime"], wall, output.metrics["train_loss"]
    )


async def demo_round(engine: Engine) -> None:
    """16 arithmetic prompts x 4 samples at temperature 0.7, at most 64 tokens: a demo round."""
    from coevo.engines.base import GenerationRequest, SamplingParams
    from coevo.tasks.prompts import solver_messages

    requests = [
        GenerationRequest(
            messages=solver_messages(f"What is {13 + 7 * i % 80} + {5 + 11 * i % 90}?"),
            params=SamplingParams(n=4, temperature=0.7, max_tokens=64, seed=i),
        )
        for i in range(16)
    ]
    await engine.generate(requests)


async def heldout_accuracy(engine: Engine, adapter: str | None) -> float:
    from coevo.engines.base import GenerationRequest, SamplingParams
    from coevo.tasks.answers import grade
    from coevo.tasks.heldout import heldout_set
    from coevo.tasks.prompts import solver_messages

    problems = heldout_set(100, skills=SKILLS, levels=LEVELS)
    params = SamplingParams(temperature=0.0, max_tokens=96)
    requests = [GenerationRequest(solver_messages(p.question), params, adapter) for p in problems]
    results = await engine.generate(requests)
    correct = [
        grade(r.completions[0].text, p.answer, p.question).correct
        for p, r in zip(problems, results, strict=True)
    ]
    return sum(correct) / len(correct)


async def learning_check(
    engine: Engine, pairs: list[dict[str, Any]], base: str, steps: int, scratch: Path
) -> None:
    precisions: list[Literal["bf16", "fp32"]] = ["bf16", "fp32"]
    accuracy = {"base model": await heldout_accuracy(engine, None)}
    for precision in precisions:
        config = demo_config(steps, base_precision=precision)
        timing = await asyncio.to_thread(train_coevo, config, pairs, base, scratch / f"check-{precision}")
        await engine.load_adapter(precision, scratch / f"check-{precision}")
        accuracy[f"{timing.name}, {steps} steps, loss {timing.final_loss:.3f}"] = await heldout_accuracy(
            engine, precision
        )
    print(f"\nheld-out greedy accuracy (100 problems of {', '.join(SKILLS)}, 1-3 digits, 2-3 terms):")
    for name, value in accuracy.items():
        print(f"  {name:<48} {value:6.1%}")


async def run(args: argparse.Namespace) -> None:
    from coevo.engines.builtin import resolve_model

    base = resolve_model(args.model)
    pairs = demo_pairs(args.pairs)
    engine: Engine | None = None
    if args.engine_alive:
        from coevo.engines.factory import make_engine

        started = time.perf_counter()
        engine = make_engine("vllm", args.model, gpu_memory_utilization=0.3)
        print(f"{PROGRESS}engine start-up {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    try:
        with tempfile.TemporaryDirectory() as folder:
            scratch = Path(folder)
            await asyncio.to_thread(import_training_stack)
            timings = await compare(engine, pairs, base, args.steps, args.repeats, scratch)
            report(timings, len(pairs), args.steps, engine is not None)
            if args.learning_check:
                if engine is None:
                    raise SystemExit(
                        "--learning-check serves the adapters on the engine: drop --no-engine-alive"
                    )
                await learning_check(engine, pairs, base, args.check_steps, scratch)
    finally:
        if engine is not None:
            await engine.close()


def import_training_stack() -> None:
    """Import TRL, PEFT and datasets before timing, so no training pays the first import."""
    import datasets  # noqa: F401
    import peft  # noqa: F401
    import trl  # noqa: F401


async def compare(
    engine: Engine | None, pairs: list[dict[str, Any]], base: str, steps: int, repeats: int, scratch: Path
) -> list[Timing]:
    """The three trainings `repeats` times, each right after a demo round on the engine (as in a
    society), the order rotated each time so that no trainer always comes first in the process:
    one process's first training ran up to 40% slower than its later ones (measured)."""
    config = demo_config(steps)
    runs: list[Callable[[Path], Timing]] = [
        lambda out: train_coevo(config, pairs, base, out),
        lambda out: train_bare(config, pairs, base, out, bf16=False),
        lambda out: train_bare(config, pairs, base, out, bf16=True),
    ]
    timings = []
    for repeat in range(repeats):
        for index in [(repeat + i) % len(runs) for i in range(len(runs))]:
            if engine is not None:
                await demo_round(engine)
            timing = await asyncio.to_thread(runs[index], scratch / f"run-{repeat}-{index}")
            print(f"{PROGRESS}{timing}", file=sys.stderr, flush=True)
            timings.append(timing)
    return timings


def report(timings: list[Timing], pairs: int, steps: int, engine_alive: bool) -> None:
    by_name: dict[str, list[Timing]] = {}
    for timing in timings:
        by_name.setdefault(timing.name, []).append(timing)
    coevo = statistics.median(t.per_step for t in timings if t.name.startswith("coevo"))
    alive = "alive" if engine_alive else "not started"
    print(
        f"\n{pairs} pairs, {steps} steps of batch 4, vLLM engine {alive}; median of {len(timings) // 3} runs:"
    )
    print(
        f"  {'trainer':<24} {'s/step':>7} {'other s':>8} {'loss':>7}  {'coevo vs this':>13}  s/step per run"
    )
    for name, runs in by_name.items():
        per_step = statistics.median(t.per_step for t in runs)
        other = statistics.median(t.wall_s - t.train_s for t in runs)
        each = " ".join(f"{t.per_step:.2f}" for t in runs)
        ratio = coevo / per_step
        print(f"  {name:<24} {per_step:7.2f} {other:8.1f} {runs[0].final_loss:7.3f}  {ratio:12.2f}x  {each}")


def main() -> None:
    parser = argparse.ArgumentParser(description="coevo's DPO trainer against bare TRL, seconds per step.")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--engine-alive", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--learning-check", action="store_true")
    parser.add_argument("--check-steps", type=int, default=15)
    args = parser.parse_args()
    # vLLM's start-up and weight-swap lines would bury the figures.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
