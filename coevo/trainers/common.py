"""What the trainers share: LoRA/optimizer settings, loading the policy (base model, by default
with its frozen projections in bf16, plus a fresh or continued LoRA adapter), the TRL argument
defaults for this machine, and saving the trained adapter as the next policy version.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
    # held-out 2-digit addition from 22% to 78%; 5e-4 has produced gibberish (README, Training in the loop).
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
    # The dtype the frozen base model's decoder projections are stored and multiplied in. "bf16":
    # bf16 matmuls with fp32 inputs and outputs, so the adapter, the residual stream, norms, the
    # LM head and the loss stay fp32: a quarter to a third less time per DPO step than fp32 on 2
    # CPU cores, with the same losses to within 0.004 (benchmarks/README.md, trainer_overhead.py).
    # Trainer-wide bf16 autocast (TRL's `bf16=True`) was slower and learned a step behind: it
    # rounds the adapter's first, tiny contributions away when adding them to bf16 outputs.
    # "fp32": everything in fp32. "auto" (default): "bf16" where the CPU has bf16 matrix
    # instructions (AVX512-BF16 or AMX) or the training runs on a GPU, else "fp32" — without them
    # a bf16 matmul is emulated: measured 0.8 GFLOP/s against 112 in fp32 on an AVX2-only CPU, so a
    # step would take many times longer (`bf16_is_fast`).
    base_precision: Literal["auto", "bf16", "fp32"] = "auto"


class DPOSettings(TrainSettings):
    """What every DPO trainer adds: the DPO temperature and the NLL term on the chosen side.

    On SmolLM2-135M plain sigmoid DPO lowers accuracy, while DPO plus an NLL term on the chosen
    completions (`rpo_alpha` > 0, i.e. RPO) raises it (README, Training in the loop), so the NLL
    term is on by default; `rpo_alpha=0` is plain DPO.
    """

    beta: float = Field(default=0.1, gt=0)
    # Weight of TRL's "sft" loss (token-mean NLL of the chosen completions) next to "sigmoid".
    rpo_alpha: float = Field(default=1.0, ge=0)


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
    existing adapter is continued: the returned model is then already a trainable `PeftModel`).

    Loaded from disk each time: a fresh copy per training, and loading takes well under a second
    (measured 0.1-0.3 s for SmolLM2-135M), so caching the base model between trainings saves nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not Path(base_model).exists():
        raise TrainingError(f"base model folder not found: {base_model} (resolve builtin: names first)")
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    if precision(settings) == "bf16":
        # Before PEFT wraps the projections, so its LoRA layers wrap the bf16 ones.
        bf16_frozen_projections(model)
    if init_adapter is None:
        return model, tokenizer, lora_config(settings)
    if not (Path(init_adapter) / "adapter_config.json").exists():
        raise TrainingError(f"no PEFT adapter at {init_adapter} (adapter_config.json missing)")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True), tokenizer, None


def precision(settings: TrainSettings) -> Literal["bf16", "fp32"]:
    """The frozen projections' dtype a training uses (`TrainSettings.base_precision`, "auto"
    resolved on this machine)."""
    if settings.base_precision != "auto":
        return settings.base_precision
    import torch

    on_gpu = settings.device == "auto" and torch.cuda.is_available()
    return "bf16" if on_gpu or bf16_is_fast() else "fp32"


def bf16_is_fast() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX tiles): torch's own
    CPU feature checks, read from the CPU, so every process on a machine decides alike (a timing
    could flip between runs and change a run's trainings in their last bits)."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, check, lambda: False)()) for check in checks)


def bf16_frozen_projections(model: PreTrainedModel) -> None:
    """Store the decoder's linear projections in bf16 and run them on bf16 copies of their
    inputs, handing fp32 results back. They are frozen (LoRA trains beside them), so nothing
    updates the rounded weights; bf16 is also the dtype vLLM serves the model in.

    Everything else stays fp32: the LoRA adapters (PEFT keeps them fp32 when their base layer is
    bf16), whose output is added to the fp32 result, so even the first steps' tiny updates count;
    and the embeddings, norms, attention softmax, LM head and loss, so log-probabilities (DPO's
    log-ratios) keep fp32 precision. On CPUs with bf16 matrix instructions a bf16 matmul is
    about 3x an fp32 one (2 cores: 709 vs 237 GFLOP/s at 2048x2048)."""
    import torch
    from torch import nn

    def bf16_input(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0].to(torch.bfloat16), *args[1:])

    def fp32_output(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return output.float()

    for module in model.get_decoder().modules():
        if isinstance(module, nn.Linear):
            module.to(torch.bfloat16)
            module.register_forward_pre_hook(bf16_input)
            module.register_forward_hook(fp32_output)


def trainer_kwargs(settings: TrainSettings, scratch_dir: Path) -> dict[str, Any]:
    """Arguments shared by `SFTConfig` and `DPOConfig`: no checkpoints (the adapter is saved once,
    at the end), no gradient checkpointing (slower on CPU, and memory is not short here), no
    autocast (see `TrainSettings.base_precision`)."""
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


# Called after every optimizer step with (step, max_steps, that step's logged figures). A context
# variable rather than one more argument of every method's train function: the society sets it
# around the call, `asyncio.to_thread` carries it into the training thread, and a caller that
# does not care (tests, benchmarks, export) passes nothing.
StepReport = Callable[[int, int, dict[str, float]], None]
_step_report: ContextVar[StepReport | None] = ContextVar("coevo_step_report", default=None)


@contextmanager
def progress_bars_off() -> Iterator[None]:
    """datasets' and transformers' progress bars (loading weights, tokenizing, writing shards) off
    while the block runs, as they were after it. Inside a society they would only cut through its
    own progress display (a training reports its steps through `reporting_steps`). The switches are
    those libraries' process-wide ones: the block should be the training, not the whole program."""
    import datasets
    import transformers

    data_bars = datasets.utils.logging.is_progress_bar_enabled()
    model_bars = transformers.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if data_bars:
            datasets.enable_progress_bars()
        if model_bars:
            transformers.utils.logging.enable_progress_bar()


@contextmanager
def reporting_steps(report: StepReport) -> Iterator[None]:
    """Trainings started inside this block call `report` after each step."""
    token = _step_report.set(report)
    try:
        yield
    finally:
        _step_report.reset(token)


def _step_callback(report: StepReport) -> Any:
    from transformers import TrainerCallback

    class StepCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs is None or "train_runtime" in logs:  # the end-of-training summary, not a step
                return
            figures = {
                k: float(v) for k, v in logs.items() if isinstance(v, int | float) and math.isfinite(v)
            }
            report(int(state.global_step), int(state.max_steps), figures)

    return StepCallback()


def finish(trainer: Trainer, output_dir: Path) -> TrainResult:
    """Train, save only the policy's own adapter ("default"; DPO also holds a frozen "ref" copy),
    and collect the final metrics."""
    from transformers import PrinterCallback

    # Metrics reach the caller (and the run's events) through the result; per-step dicts printed
    # to stdout would only interleave with the caller's progress display.
    trainer.remove_callback(PrinterCallback)
    report = _step_report.get()
    if report is not None:
        trainer.add_callback(_step_callback(report))
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
