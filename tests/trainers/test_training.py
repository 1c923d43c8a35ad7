"""Each trainer runs two real TRL steps on a tiny model, changes the LoRA weights, and saves an
adapter that PEFT loads; the generator's weights reach the loss; a bf16 frozen base leaves the
adapter, the gradients and the logits in fp32."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coevo.trainers.common import TrainingError, bf16_frozen_projections
from coevo.trainers.records import AttemptRec, DemoRec, ProblemRec
from coevo.trainers.sft_trainer import train_sft
from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig
from coevo.trainers.socratic_generator_sft_trainer import build_generator_sft, train_generator_sft
from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs, train_solver_dpo
from coevo.trainers.stat_sft_config import StatSFTConfig
from coevo.trainers.stat_sft_trainer import build_sft_rows

FAST = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 128, "lora_r": 4, "lora_alpha": 8}


def adapter_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def assert_loads_with_peft(base: str, adapter: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter))
    assert list(model.peft_config) == ["default"]


def changed(before: dict, after: dict) -> bool:
    import torch

    assert before.keys() == after.keys()
    return any(not torch.equal(before[k], after[k]) for k in before)


def dpo_pairs() -> list[dict]:
    attempts = [
        AttemptRec(f"p{i}", f"What is {i} + 5?", str(i + 5), None, f"The answer is {i + 4}.", False, 1)
        for i in range(4)
    ]
    return build_dpo_pairs(attempts, 2, random.Random(0))


def sft_rows() -> list[dict]:
    problems = [ProblemRec(f"p{i}", f"What is {i} + 5?", str(i + 5), f"{i} + 5 = {i + 5}.") for i in range(4)]
    return build_sft_rows(problems)


@pytest.mark.slow
def test_dpo_trains_fresh_then_continues_adapter(tiny_model: str, tmp_path: Path) -> None:
    config = SolverDPOConfig(learning_rate=1e-2, **FAST)
    first = train_solver_dpo(config, dpo_pairs(), tiny_model, None, tmp_path / "v1")
    assert first.steps == 2
    assert {"loss", "train_runtime"} <= first.metrics.keys()
    v1 = adapter_weights(first.adapter_path)
    assert any(bool(t.abs().sum() > 0) for k, t in v1.items() if "lora_B" in k)  # B starts at zero
    assert {str(t.dtype) for t in v1.values()} == {"torch.float32"}  # the base trained in bf16

    second = train_solver_dpo(config, dpo_pairs(), tiny_model, first.adapter_path, tmp_path / "v2")
    v2 = adapter_weights(second.adapter_path)
    assert changed(v1, v2)
    assert not any(".ref." in k for k in v2)  # TRL's frozen reference copy is not part of the policy
    assert sorted(p.name for p in second.adapter_path.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert_loads_with_peft(tiny_model, second.adapter_path)


def test_bf16_base_keeps_everything_else_fp32(tiny_model: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    bf16_frozen_projections(model)
    layer = model.get_decoder().layers[0]
    assert layer.self_attn.q_proj.weight.dtype == layer.mlp.down_proj.weight.dtype == torch.bfloat16
    assert layer.input_layernorm.weight.dtype == model.lm_head.weight.dtype == torch.float32

    ids = torch.tensor([[1, 5, 9, 14, 2, 7]])
    logits = model(input_ids=ids).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference(input_ids=ids).logits, rtol=0.02, atol=0.02)

    # PEFT keeps the adapter fp32 beside a bf16 layer, and its output reaches the fp32 result.
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "down_proj"]))
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert lora and all(p.dtype == torch.float32 and p.requires_grad for p in lora.values())
    peft_model(input_ids=ids).logits.sum().backward()
    assert all(p.grad is not None for n, p in lora.items() if "lora_B" in n)


@pytest.mark.slow
def test_stat_sft_trains_and_saves(tiny_model: str, tmp_path: Path) -> None:
    result = train_sft(
        StatSFTConfig(learning_rate=1e-2, **FAST), sft_rows(), tiny_model, None, tmp_path / "v1"
    )
    weights = adapter_weights(result.adapter_path)
    assert result.steps == 2
    assert any(bool(t.abs().sum() > 0) for k, t in weights.items() if "lora_B" in k)
    assert_loads_with_peft(tiny_model, result.adapter_path)


@pytest.mark.slow
def test_generator_weights_reach_the_loss(tiny_model: str, tmp_path: Path) -> None:
    demos = [
        DemoRec(f"What is {i} + 5?", "The answer is 3.", f"What is {i} + 15?", str(i + 15), 0.5)
        for i in range(4)
    ]
    config = GeneratorSFTConfig(learning_rate=1e-2, **FAST)
    trained = train_generator_sft(config, build_generator_sft(demos), tiny_model, None, tmp_path / "v1")
    weights = adapter_weights(trained.adapter_path)
    assert any(bool(t.abs().sum() > 0) for k, t in weights.items() if "lora_B" in k)
    assert trained.metrics["weighted_nll"] == pytest.approx(trained.metrics["mean_nll"])  # U = 1 at s = 0.5
    assert_loads_with_peft(tiny_model, trained.adapter_path)

    # Zero-weight rows (s = 0, sigma tiny) give zero gradient: the adapter stays at its init.
    hopeless = [
        DemoRec(d.source_question, d.failed_response, d.target_question, d.target_answer, 0.0) for d in demos
    ]
    zero = build_generator_sft(hopeless, sigma=1e-3)
    assert all(r["weight"] == 0.0 for r in zero)
    untouched = train_generator_sft(config, zero, tiny_model, trained.adapter_path, tmp_path / "v2")
    assert not changed(weights, adapter_weights(untouched.adapter_path))
    assert untouched.metrics["weighted_nll"] == 0.0


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no SFT rows"):
        train_sft(StatSFTConfig(), [], "unused", None, tmp_path / "a")
    with pytest.raises(TrainingError, match="base model folder not found"):
        train_sft(StatSFTConfig(), sft_rows(), str(tmp_path / "missing"), None, tmp_path / "a")
    with pytest.raises(ValueError, match="weight"):
        train_generator_sft(GeneratorSFTConfig(), sft_rows(), "unused", None, tmp_path / "a")
