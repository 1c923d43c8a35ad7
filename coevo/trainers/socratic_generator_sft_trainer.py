"""Socratic-Zero Generator training: SFT on the Teacher's refinements, each example's loss scaled
by its value weight.

The weight is applied in the loss (per-example token-mean NLL × U, averaged over the batch),
not by duplicating rows: a demonstration with U = 0.04 contributes 4% of a full one's gradient,
and a batch of low-value rows yields a small update rather than being renormalised to a full one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coevo.engines.base import ChatMessage
from coevo.trainers.common import TrainResult, finish, load_policy, require_rows, scratch_dir, trainer_kwargs
from coevo.trainers.records import DemoRec
from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig

if TYPE_CHECKING:
    import torch
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


def generator_weight(success_rate: float, center: float = 0.5, sigma: float = 0.2) -> float:
    """U = exp(−(s − center)² / (2·sigma²)): 1 at 4/8, 0.46 at 2/8, 0.04 at 0/8."""
    if not 0.0 <= success_rate <= 1.0:
        raise ValueError(f"success rate must be in [0, 1], got {success_rate}")
    return math.exp(-((success_rate - center) ** 2) / (2 * sigma**2))


def _default_messages(question: str, failed_response: str) -> list[ChatMessage]:
    from coevo.agents.generator import generator_messages

    return generator_messages(question, failed_response)


def build_generator_sft(
    demos: Sequence[DemoRec],
    center: float = 0.5,
    sigma: float = 0.2,
    messages_for: Callable[[str, str], list[ChatMessage]] = _default_messages,
) -> list[dict[str, Any]]:
    """Conversational `{prompt, completion, weight}` rows. The prompt is the Generator agent's own
    (failed problem + failed attempt); the completion is the refined problem in the
    "Problem: … / Answer: …" form the agent's parser reads."""
    return [
        {
            "prompt": messages_for(d.source_question, d.failed_response),
            "completion": [
                {"role": "assistant", "content": f"Problem: {d.target_question}\nAnswer: {d.target_answer}"}
            ],
            "weight": generator_weight(d.target_success_rate, center, sigma),
        }
        for d in demos
    ]


def _weighted_sft_classes() -> tuple[type[SFTTrainer], type[DataCollatorForLanguageModeling]]:
    """The trainer and collator classes, built on first use so that importing this module does
    not import TRL."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    class WeightedCollator(DataCollatorForLanguageModeling):
        """TRL's collator drops every column but the token ids; carry the weights along."""

        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            batch = super().torch_call(examples)
            batch["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
            return batch

    class WeightedSFTTrainer(SFTTrainer):
        """SFTTrainer whose loss is the value-weighted per-example NLL."""

        # The loss below is a per-micro-batch mean, so let `Trainer` divide it by the
        # gradient-accumulation steps.
        loss_is_scaled_for_ga = False  # type: ignore[assignment]  # TRL annotates it as None-only

        def _set_signature_columns_if_needed(self) -> None:
            # `remove_unused_columns` keeps only signature columns; "weight" must survive to the collator.
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and "weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "weight"]

        def compute_loss(
            self,
            model: torch.nn.Module,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: torch.Tensor | int | None = None,
        ) -> torch.Tensor | tuple[torch.Tensor, Any]:
            weights = inputs.pop("weight")
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            targets = labels[:, 1:]
            logits = outputs.logits[:, :-1, :].transpose(1, 2).float()
            token_nll = F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")
            mask = (targets != -100).float()
            per_example = (token_nll * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            loss = (per_example * weights.to(per_example.device)).mean()
            mode = "train" if model.training else "eval"
            self._metrics[mode]["weighted_nll"].append(loss.item())
            self._metrics[mode]["mean_nll"].append(per_example.mean().item())
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer, WeightedCollator


def train_generator_sft(
    config: GeneratorSFTConfig,
    rows: list[dict[str, Any]],
    base_model: str,
    init_adapter: Path | None,
    output_dir: Path,
) -> TrainResult:
    """Value-weighted SFT (completion-only loss) on `rows` from `build_generator_sft`."""
    require_rows(rows, "generator demonstrations")
    if any("weight" not in r for r in rows):
        raise ValueError("every generator SFT row needs a 'weight' (use build_generator_sft)")
    from datasets import Dataset
    from trl import SFTConfig

    model, tokenizer, peft_config = load_policy(config, base_model, init_adapter)
    trainer_class, collator_class = _weighted_sft_classes()
    with scratch_dir(output_dir) as scratch:
        args = SFTConfig(**trainer_kwargs(config, Path(scratch)), completion_only_loss=True)
        trainer = trainer_class(
            model=model,
            args=args,
            data_collator=collator_class(pad_token_id=tokenizer.pad_token_id),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        return finish(trainer, output_dir)
