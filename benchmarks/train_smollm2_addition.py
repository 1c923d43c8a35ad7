"""Calibrate the trainers' defaults: train the built-in SmolLM2-135M with LoRA on 100 two-digit
additions (SFT, and DPO + NLL on pairs from the base model's own sampled attempts) and report
held-out greedy accuracy (50 problems) before and after, and seconds per step.

    .venv/bin/python benchmarks/train_smollm2_addition.py --method both --lrs 1e-4 2e-4 --steps 25
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from coevo.engines.builtin import DEFAULT_MODEL, resolve_model
from coevo.tasks.prompts import solver_messages
from coevo.trainers.records import AttemptRec, ProblemRec
from coevo.trainers.sft_trainer import train_sft
from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs, train_solver_dpo
from coevo.trainers.stat_sft_config import StatSFTConfig
from coevo.trainers.stat_sft_trainer import build_sft_rows

ANSWER = re.compile(r"answer is\s*\$?(-?\d+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d+")


def additions(n: int, rng: random.Random, exclude: set[tuple[int, int]]) -> list[ProblemRec]:
    problems: list[ProblemRec] = []
    while len(problems) < n:
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if (a, b) in exclude:
            continue
        exclude.add((a, b))
        problems.append(ProblemRec(f"{a}+{b}", f"What is {a} + {b}?", str(a + b), f"{a} + {b} = {a + b}."))
    return problems


def extract(text: str) -> str | None:
    match = ANSWER.search(text)
    if match:
        return match.group(1)
    numbers = NUMBER.findall(text)
    return numbers[-1] if numbers else None


def generate(model: Any, tokenizer: Any, questions: list[str], n: int, temperature: float) -> list[list[str]]:
    """`n` completions per question (greedy when temperature is 0), 48 new tokens at most."""
    import torch

    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(solver_messages(q), tokenize=False, add_generation_prompt=True)
        for q in questions
    ]
    outputs: list[list[str]] = []
    for start in range(0, len(prompts), 32):
        batch = tokenizer(prompts[start : start + 32], return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = model.generate(
                **batch,
                max_new_tokens=48,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=None,
                top_k=None,
                num_return_sequences=n,
                pad_token_id=tokenizer.pad_token_id,
            )
        texts = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        outputs.extend(texts[i : i + n] for i in range(0, len(texts), n))
    return outputs


def load(base: str, adapter: Path | None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is None:
        return model.eval(), tokenizer
    from peft import PeftModel

    # Merged, generation runs at the base model's speed.
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval(), tokenizer


def accuracy(base: str, adapter: Path | None, held_out: list[ProblemRec]) -> tuple[float, str]:
    model, tokenizer = load(base, adapter)
    texts = [t[0] for t in generate(model, tokenizer, [p.question for p in held_out], 1, 0.0)]
    correct = sum(extract(t) == p.answer for t, p in zip(texts, held_out, strict=True))
    return correct / len(held_out), texts[0]


def sampled_attempts(base: str, train: list[ProblemRec], k: int) -> list[AttemptRec]:
    model, tokenizer = load(base, None)
    samples = generate(model, tokenizer, [p.question for p in train], k, 1.0)
    return [
        AttemptRec(p.problem_id, p.question, p.answer, p.solution, text, extract(text) == p.answer, 0)
        for p, texts in zip(train, samples, strict=True)
        for text in texts
    ]


def synthetic_attempts(train: list[ProblemRec], rng: random.Random) -> list[AttemptRec]:
    """One wrong answer per problem in the Solver's format (off by 1–10): no generation needed,
    for a machine too loaded to sample attempts; every pair then has the reference as chosen."""
    attempts = []
    for p in train:
        wrong = int(p.answer) + rng.choice([-1, 1]) * rng.randint(1, 10)
        text = f"{p.question[8:-1]} = {wrong}.\nThe answer is {wrong}."
        attempts.append(AttemptRec(p.problem_id, p.question, p.answer, p.solution, text, False, 0))
    return attempts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", choices=["sft", "dpo", "both"], default="both")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 2e-4, 5e-4])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--k", type=int, default=4, help="sampled attempts per problem for DPO pairs")
    parser.add_argument("--synthetic-rejected", action="store_true", help="DPO pairs without sampling")
    parser.add_argument("--skip-base", action="store_true", help="do not evaluate the base model")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    base = resolve_model(DEFAULT_MODEL)
    seen: set[tuple[int, int]] = set()
    train = additions(100, random.Random(0), seen)
    held_out = additions(50, random.Random(1), seen)
    if not args.skip_base:
        acc, sample = accuracy(base, None, held_out)
        print(f"base: accuracy {acc:.2f}  e.g. {sample!r}", flush=True)

    pairs: list[dict[str, Any]] = []
    if args.method in ("dpo", "both"):
        start = time.perf_counter()
        attempts = (
            synthetic_attempts(train, random.Random(2))
            if args.synthetic_rejected
            else sampled_attempts(base, train, args.k)
        )
        pairs = build_dpo_pairs(attempts, 2, random.Random(0))
        rate = sum(a.correct for a in attempts) / len(attempts)
        print(
            f"sampled {len(attempts)} attempts ({rate:.2f} correct) → {len(pairs)} pairs "
            f"in {time.perf_counter() - start:.0f}s",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        for lr in args.lrs:
            runs = []
            if args.method in ("sft", "both"):
                config = StatSFTConfig(learning_rate=lr, max_steps=args.steps)
                runs.append(
                    ("sft", lambda out, c=config: train_sft(c, build_sft_rows(train), base, None, out))
                )
            if args.method in ("dpo", "both"):
                dpo = SolverDPOConfig(learning_rate=lr, max_steps=args.steps)
                runs.append(("dpo+nll", lambda out, c=dpo: train_solver_dpo(c, pairs, base, None, out)))
            for name, run in runs:
                out = Path(tmp) / f"{name}-{lr}"
                start = time.perf_counter()
                result = run(out)
                per_step = (time.perf_counter() - start) / result.steps
                acc, sample = accuracy(base, result.adapter_path, held_out)
                print(
                    f"{name} lr={lr:g} steps={result.steps} {per_step:.2f}s/step (incl. load) "
                    f"loss={result.metrics.get('train_loss', float('nan')):.3f} accuracy {acc:.2f}  "
                    f"e.g. {sample!r}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
