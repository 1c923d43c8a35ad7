"""Merging a LoRA adapter into its base model's weights, for engines that serve a policy as plain
weights instead of as a LoRA adapter (vLLM's CPU LoRA kernels are ~4x slower than the base model;
see `VLLMEngine`'s `lora_serving`)."""

from __future__ import annotations

from pathlib import Path

from coevo.engines.base import EngineError


def merge_adapter(base_model: str | Path, adapter: str | Path, out_dir: str | Path) -> Path:
    """Write base + adapter (W + BA·α/r, via PEFT's `merge_and_unload`) as a full checkpoint in
    `out_dir`, in the base model's own dtype. The folder holds weights and config only: the
    engine keeps the tokenizer it started with."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype="auto")
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        with torch.no_grad():
            merged.save_pretrained(str(out), safe_serialization=True)
    except Exception as exc:
        raise EngineError(f"could not merge adapter {adapter} into {base_model}: {exc}") from exc
    return out
