"""What the three trainers share: LoRA/optimizer settings, loading the policy (base model plus
a fresh or continued LoRA adapter), the TRL argument defaults for this machine, and saving the
trained adapter as the next policy version.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

# vLLM's LoRA support covers exactly these projections of Llama-style models; naming them
# (instead of PEFT's "all-linear") keeps every saved adapter loadable by `LoRARequest`.
DEFAULT_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainSettings(BaseModel):
    """Optimizer, length and LoRA settings common to every method; each method's config adds its own."""

    model_config = ConfigDict(extra="forbid")

    # LoRA on SmolLM2-135M (benchmarks/train_smollm2_addition.py): SFT at 2e-4 for 25 steps took
    # held-out 2-digit addition from 22% to 78%; 5e-4 has produced gibberish (DESIGN §6).
    learning_rate: float = Field(default=2e-4, gt=0)
    # Each training run of a society is short and continues the last adapter: "constant" keeps the
    # full rate for every step instead of decaying to zero at the end of each run.
    lr_scheduler_type: Literal["linear", "constant", "cosine"] = "linear"
    max_steps: int = Field(default=25, gt=0)
    per_device_train_batch_size: int = Field(default=4, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    max_length: int = Field(default=512, gt=0)
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    seed: int = 0
    # "cpu" forces the CPU even where CUDA exists (the GPU may be busy serving vLLM); "auto" lets
    # transformers pick the accelerator.
    device: Literal["cpu", "auto"] = "cpu"


@dataclass(frozen=True)
class TrainResult:
    """The saved adapter (policy version v+1), final training metrics, and optimizer steps taken."""

    adapter_path: Path
    metrics: dict[str, float]
    steps: int


class TrainingError(RuntimeError):
    """A training request that cannot run (no rows, missing model or adapter), with a readable reason."""


def lora_config(settings: TrainSettings) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def load_policy(
    settings: TrainSettings, base_model: str, init_adapter: Path | None
) -> tuple[PreTrainedModel | PeftModel, PreTrainedTokenizerBase, LoraConfig | None]:
    """The model to train, its tokenizer, and the LoRA config to hand to TRL (None when an
    existing adapter is continued: the returned model is then already a trainable `PeftModel`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(base_model).exists():
        raise TrainingError(f"base model folder not found: {base_model} (resolve builtin: names first)")
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # fp32: bf16 matmuls on these CPUs are slower and numerically worse for LoRA updates this small.
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    if init_adapter is None:
        return model, tokenizer, lora_config(settings)
    if not (Path(init_adapter) / "adapter_config.json").exists():
        raise TrainingError(f"no PEFT adapter at {init_adapter} (adapter_config.json missing)")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True), tokenizer, None


def trainer_kwargs(settings: TrainSettings, scratch_dir: Path) -> dict[str, Any]:
    """Arguments shared by `SFTConfig` and `DPOConfig`: no checkpoints (the adapter is saved once,
    at the end), no gradient checkpointing or bf16 (both slow or unsupported on these CPUs)."""
    return {
        "output_dir": str(scratch_dir),
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": settings.lr_scheduler_type,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.per_device_train_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "warmup_steps": settings.warmup_steps,
        "max_length": settings.max_length,
        "seed": settings.seed,
        "use_cpu": settings.device == "cpu",
        "bf16": False,
        "gradient_checkpointing": False,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "disable_tqdm": True,
    }


def scratch_dir(output_dir: Path) -> tempfile.TemporaryDirectory[str]:
    """Where TRL may write its run files, next to (never inside) the adapter folder, so the
    folder handed to the engine holds only the adapter."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f".{output_dir.name}-", dir=output_dir.parent)


def finish(trainer: Trainer, output_dir: Path) -> TrainResult:
    """Train, save only the policy's own adapter ("default"; DPO also holds a frozen "ref" copy),
    and collect the final metrics."""
    from transformers import PrinterCallback

    # Metrics reach the caller (and the run's events) through the result; per-step dicts printed
    # to stdout would only interleave with the caller's progress display.
    trainer.remove_callback(PrinterCallback)
    output = trainer.train()
    model = trainer.accelerator.unwrap_model(trainer.model)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir), selected_adapters=["default"])
    metrics: dict[str, float] = {}
    # The last logged step carries the method's own numbers (DPO reward margins, SFT token
    # accuracy); the train output adds loss averaged over the run and runtime.
    for entry in [*trainer.state.log_history, output.metrics]:
        for key, value in entry.items():
            if isinstance(value, int | float) and math.isfinite(value):
                metrics[key] = float(value)
    return TrainResult(adapter_path=output_dir, metrics=metrics, steps=int(output.global_step))


def require_rows(rows: list[Any], what: str) -> None:
    if not rows:
        raise TrainingError(f"no {what} to train on")
