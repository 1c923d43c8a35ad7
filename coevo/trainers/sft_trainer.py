"""Plain SFT with a completion-only loss on conversational prompt/completion rows: what STAT and
rejection-sampling SFT (`kind: sft`) train with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coevo.trainers.common import (
    TrainResult,
    TrainSettings,
    finish,
    load_policy,
    require_rows,
    scratch_dir,
    trainer_kwargs,
)


def train_sft(
    config: TrainSettings,
    rows: list[dict[str, Any]],
    base_model: str,
    init_adapter: Path | None,
    output_dir: Path,
) -> TrainResult:
    """Plain SFT with completion-only loss on prompt/completion rows (e.g. from `build_sft_rows`)."""
    require_rows(rows, "SFT rows")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer, peft_config = load_policy(config, base_model, init_adapter)
    with scratch_dir(output_dir) as scratch:
        args = SFTConfig(**trainer_kwargs(config, Path(scratch)), completion_only_loss=True)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        return finish(trainer, output_dir)
