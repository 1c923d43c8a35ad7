"""Socratic-Zero Solver training: preference pairs from graded attempts, then DPO (+ NLL) on TRL
with a LoRA adapter.

Pairs, per problem: chosen = a correct attempt, or the reference solution when every attempt
failed; rejected = an incorrect attempt at the same problem; a problem every attempt solved
gives no pair (nothing to prefer against).

Reference model: TRL computes the reference log-probs with the same PEFT model. For a fresh
adapter that is the base model (adapters disabled). For a continued adapter TRL (1.16, with
peft ≥ 0.20) adds a frozen copy of it named "ref", so the reference is the Solver as it was at
the start of this training run — the paper's "freeze the Solver as DPO reference" each iteration.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from coevo.engines.base import ChatMessage
from coevo.tasks.prompts import solution_text, solver_messages
from coevo.trainers.common import (
    DPOSettings,
    TrainResult,
    finish,
    load_policy,
    require_rows,
    scratch_dir,
    trainer_kwargs,
)
from coevo.trainers.records import AttemptRec


def build_dpo_pairs(
    attempts: Sequence[AttemptRec],
    max_pairs_per_problem: int,
    rng: random.Random,
    messages_for: Callable[[str], list[ChatMessage]] = solver_messages,
) -> list[dict[str, Any]]:
    """Conversational `{prompt, chosen, rejected}` rows, at most `max_pairs_per_problem` per problem,
    drawn at random from all (chosen, rejected) combinations of that problem."""
    by_problem: dict[str, list[AttemptRec]] = defaultdict(list)
    for attempt in attempts:
        by_problem[attempt.problem_id].append(attempt)
    pairs: list[dict[str, Any]] = []
    for group in by_problem.values():
        rejected = [a.response for a in group if not a.correct]
        if not rejected:
            continue
        first = group[0]
        chosen = [a.response for a in group if a.correct] or [
            solution_text(first.reference_solution, first.reference_answer)
        ]
        combos = [(c, r) for c in chosen for r in rejected]
        prompt = messages_for(first.question)
        for c, r in rng.sample(combos, min(max_pairs_per_problem, len(combos))):
            pairs.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": c}],
                    "rejected": [{"role": "assistant", "content": r}],
                }
            )
    return pairs


def train_solver_dpo(
    config: DPOSettings,
    pairs: list[dict[str, Any]],
    base_model: str,
    init_adapter: Path | None,
    output_dir: Path,
) -> TrainResult:
    """DPO (+ NLL on chosen when `rpo_alpha` > 0) on conversational `pairs`; the adapter is saved
    to `output_dir`. Every DPO kind trains with it (the Solver's, the LbT Teacher's): only the rows
    differ."""
    require_rows(pairs, "preference pairs")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tokenizer, peft_config = load_policy(config, base_model, init_adapter)
    losses = ["sigmoid", "sft"] if config.rpo_alpha > 0 else ["sigmoid"]
    weights = [1.0, config.rpo_alpha] if config.rpo_alpha > 0 else [1.0]
    with scratch_dir(output_dir) as scratch:
        args = DPOConfig(
            **trainer_kwargs(config, Path(scratch)),
            beta=config.beta,
            loss_type=losses,
            loss_weights=weights,
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(pairs),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        return finish(trainer, output_dir)
