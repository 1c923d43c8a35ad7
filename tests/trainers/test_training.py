"""Each trainer moves the tiny model the way its method says, measured by this test with the trained
model itself: Solver DPO raises the chosen-over-rejected log-probability margin on the trained pairs
(a fresh adapter, and again when it continues its adapter); SFT (`sft`, `stat_sft`) lowers the NLL of
the trained completions; the Generator's weights reach the loss (a row of weight 0 leaves the adapter
exactly as a run without it, and a weighted row's own NLL falls). The measures are computed from
texts the test chose, never read back from the rows, so a builder or trainer that swaps chosen and
rejected, flips a sign or drops the weight fails. Also: `device: auto` trains where
transformers places the model (the CPU here) while `device: cpu` forces the CPU; a bf16 frozen base
leaves the adapter, the gradients and the logits in fp32; requests that cannot train fail clearly."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from coevo.engines.base import ChatMessage
from coevo.tasks.prompts import solution_text, solver_messages
from coevo.trainers.common import TrainingError, bf16_frozen_projections, trainer_kwargs
from coevo.trainers.records import AttemptRec, DemoRec, ProblemRec
from coevo.trainers.registry import TRAINERS
from coevo.trainers.sft_trainer import train_sft
from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig
from coevo.trainers.socratic_generator_sft_trainer import build_generator_sft, train_generator_sft
from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
from coevo.trainers.socratic_solver_dpo_trainer import build_dpo_pairs, train_solver_dpo
from coevo.trainers.stat_sft_config import StatSFTConfig
from coevo.trainers.stat_sft_trainer import build_sft_rows

FAST = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 128, "lora_r": 4, "lora_alpha": 8}

# (prompt, completion) pairs whose log-probability the tests measure.
Example = tuple[list[ChatMessage], str]


def completion_logps(base: str, adapter: Path | None, examples: Sequence[Example]) -> list[tuple[float, int]]:
    """Per example, log p(completion | prompt) under the base model (plus `adapter`), in fp32: the
    sum over the completion's tokens as the chat template writes them (its end-of-turn included),
    and how many tokens that is."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()

    def ids(messages: list[ChatMessage], generation_prompt: bool) -> list[int]:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    results = []
    with torch.no_grad():
        for prompt, completion in examples:
            head = ids(prompt, True)
            full = ids([*prompt, {"role": "assistant", "content": completion}], False)
            assert full[: len(head)] == head, "the prompt's tokens must prefix the conversation's"
            logits = model(input_ids=torch.tensor([full])).logits[0, :-1].float()
            targets = torch.tensor(full[1:])
            token_logps = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
            results.append((float(token_logps[len(head) - 1 :].sum()), len(full) - len(head)))
    return results


def mean_nll(base: str, adapter: Path | None, examples: Sequence[Example]) -> float:
    """The mean per-token NLL of the completions (what SFT minimises), over all examples."""
    measured = completion_logps(base, adapter, examples)
    return -sum(logp for logp, _ in measured) / sum(n for _, n in measured)


def adapter_weights(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


# --- Solver DPO ------------------------------------------------------------------------------------

# (i, question, answer): "What is i + 5?"
QUESTIONS = [(i, f"What is {i} + 5?", i + 5) for i in range(4)]


def graded_attempts() -> list[AttemptRec]:
    """One wrong attempt per problem (answer off by one) and no right one: the builder pairs the
    reference solution (chosen) with the wrong attempt (rejected)."""
    return [
        AttemptRec(f"p{i}", q, str(a), f"{i} + 5 = {a}", f"The answer is {a - 1}.", False, 1)
        for i, q, a in QUESTIONS
    ]


def preference_texts() -> list[tuple[list[ChatMessage], str, str]]:
    """(prompt, right, wrong) of each problem, written here rather than read from the rows."""
    return [
        (solver_messages(q), solution_text(f"{i} + 5 = {a}", str(a)), f"The answer is {a - 1}.")
        for i, q, a in QUESTIONS
    ]


def margins(base: str, adapter: Path | None) -> list[float]:
    """log p(right) - log p(wrong), per problem."""
    texts = preference_texts()
    right = completion_logps(base, adapter, [(p, r) for p, r, _ in texts])
    wrong = completion_logps(base, adapter, [(p, w) for p, _, w in texts])
    return [r - w for (r, _), (w, _) in zip(right, wrong, strict=True)]


@pytest.mark.slow
def test_dpo_raises_the_chosen_over_rejected_margin_then_raises_it_again(
    tiny_model: str, tmp_path: Path
) -> None:
    pairs = build_dpo_pairs(graded_attempts(), 1, random.Random(0))
    assert len(pairs) == len(QUESTIONS)
    config = SolverDPOConfig(learning_rate=2e-2, **FAST)  # 2 steps of 2 pairs: every pair once

    untrained = margins(tiny_model, None)
    first = train_solver_dpo(config, pairs, tiny_model, None, tmp_path / "v1")
    assert first.steps == 2 and {"loss", "train_runtime"} <= first.metrics.keys()
    after_first = margins(tiny_model, first.adapter_path)
    # Measured: every margin rises by 0.9-1.6 nats; with chosen and rejected swapped, each falls.
    assert all(a > u + 0.25 for a, u in zip(after_first, untrained, strict=True)), (untrained, after_first)
    v1 = adapter_weights(first.adapter_path)
    assert {str(t.dtype) for t in v1.values()} == {"torch.float32"}  # the base trained in bf16

    # Continuing the adapter (its reference is now v1, TRL's frozen "ref" copy), plain DPO without
    # the NLL term raises the margin again: the preference term itself pulls the right way.
    plain = SolverDPOConfig(learning_rate=2e-2, rpo_alpha=0.0, **FAST)
    second = train_solver_dpo(plain, pairs, tiny_model, first.adapter_path, tmp_path / "v2")
    after_second = margins(tiny_model, second.adapter_path)
    gains = [b - a for a, b in zip(after_first, after_second, strict=True)]
    # Measured: 0.7-1.2 nats each; with the DPO term's sign flipped, each falls by more than 1.
    assert all(g > 0.1 for g in gains), gains
    assert not any(".ref." in k for k in adapter_weights(second.adapter_path))  # the policy only
    assert sorted(p.name for p in second.adapter_path.iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


# --- LbT Teacher DPO (M2) ----------------------------------------------------------------------------

TEACHER_SYSTEM = "You are a mathematics teacher. Explain step by step how to solve the problem."


def teacher_texts() -> list[tuple[list[ChatMessage], str, str]]:
    """(prompt, the rationale its Students learned from, one they did not), per problem."""
    return [
        (
            [{"role": "system", "content": TEACHER_SYSTEM}, {"role": "user", "content": q}],
            f"Add {i} and 5: {i} + 5 = {a}. The answer is {a}.",
            f"Count up: the answer is {a - 1}.",
        )
        for i, q, a in QUESTIONS
    ]


@pytest.mark.slow
def test_lbt_teacher_dpo_raises_the_better_taught_rationale_s_margin(tiny_model: str, tmp_path: Path) -> None:
    from coevo.tasks.lbt import ScoredRationale
    from coevo.trainers.lbt_teacher_dpo_config import LbTTeacherDPOConfig
    from coevo.trainers.lbt_teacher_dpo_trainer import build_lbt_pairs

    texts = teacher_texts()

    def scored(pid: str, prompt: list[ChatMessage], text: str, correct: bool, lbt: float) -> ScoredRationale:
        return ScoredRationale(pid, tuple((m["role"], m["content"]) for m in prompt), text, correct, lbt, 0.5)

    # The rejected rationale is listed first: the builder must order each pair by score.
    rationales = [
        r
        for i, (prompt, good, bad) in enumerate(texts)
        for r in (scored(f"p{i}", prompt, bad, False, 0.2), scored(f"p{i}", prompt, good, True, 0.9))
    ]
    kind = TRAINERS["lbt_teacher_dpo"]
    config = LbTTeacherDPOConfig(learning_rate=2e-2, **FAST)
    pairs = build_lbt_pairs(rationales, config, random.Random(0))
    assert len(pairs) == len(texts)

    def teacher_margins(adapter: Path | None) -> list[float]:
        good = completion_logps(tiny_model, adapter, [(p, g) for p, g, _ in texts])
        bad = completion_logps(tiny_model, adapter, [(p, b) for p, _, b in texts])
        return [g - b for (g, _), (b, _) in zip(good, bad, strict=True)]

    untrained = teacher_margins(None)
    result = kind.train(config, pairs, tiny_model, None, tmp_path / "v1")
    trained = teacher_margins(result.adapter_path)
    # With chosen and rejected swapped in the builder, every margin falls instead.
    assert all(t > u + 0.25 for t, u in zip(trained, untrained, strict=True)), (untrained, trained)


# --- SFT (sft, stat_sft) -------------------------------------------------------------------------------


def sft_examples() -> list[Example]:
    return [(solver_messages(q), solution_text(f"{i} + 5 = {a}", str(a))) for i, q, a in QUESTIONS]


def sft_rows() -> list[dict[str, Any]]:
    problems = [ProblemRec(f"p{i}", q, str(a), f"{i} + 5 = {a}") for i, q, a in QUESTIONS]
    return build_sft_rows(problems)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "stat_sft"])
def test_sft_lowers_the_nll_of_the_trained_completions(kind: str, tiny_model: str, tmp_path: Path) -> None:
    trainer = TRAINERS[kind]  # the settings and train function a society uses for this kind
    rows = sft_rows()
    assert [(r["prompt"], r["completion"][0]["content"]) for r in rows] == sft_examples()
    before = mean_nll(tiny_model, None, sft_examples())
    # The random tiny model starts near uniform (NLL ≈ ln 49152 ≈ 10.8); 4 steps (each row twice)
    # take ≈ 0.25 nats off, and a flipped loss would add about as much.
    settings = trainer.config_class(**{**FAST, "learning_rate": 3e-2, "max_steps": 4})
    result = trainer.train(settings, rows, tiny_model, None, tmp_path / "v1")
    assert result.steps == 4
    after = mean_nll(tiny_model, result.adapter_path, sft_examples())
    assert after < before - 0.1, (before, after)


# --- Generator value-weighted SFT -----------------------------------------------------------------------


def demo(i: int, success_rate: float) -> DemoRec:
    return DemoRec(f"What is {i} + 5?", "The answer is 3.", f"What is {i} + 15?", str(i + 15), success_rate)


def generator_example(row: dict[str, Any]) -> Example:
    return row["prompt"], row["completion"][0]["content"]


@pytest.mark.slow
def test_a_zero_weight_row_changes_nothing_and_a_weighted_row_learns(tiny_model: str, tmp_path: Path) -> None:
    weighted = build_generator_sft([demo(0, 0.5), demo(1, 0.5)])  # U = 1 at s = 0.5
    [zero] = build_generator_sft([demo(2, 0.0)], sigma=1e-3)  # U = exp(-125000) = 0
    assert [r["weight"] for r in [*weighted, zero]] == [1.0, 1.0, 0.0]

    # The loss is the batch mean of weight x NLL, and here the whole data set is one batch. Two
    # rows of weight 2/3 give (l0 + l1) / 3; the same two of weight 1 beside the zero row give
    # (l0 + l1 + 0 x l2) / 3: the same loss, so the same steps, if and only if the zero row's
    # weight really multiplies its NLL (ignored, it adds l2 / 3). Same seed, same LoRA init.
    settings = {**FAST, "learning_rate": 3e-2, "max_steps": 4}
    without = train_generator_sft(
        GeneratorSFTConfig(**{**settings, "per_device_train_batch_size": 2}),
        [{**r, "weight": 2 / 3} for r in weighted],
        tiny_model,
        None,
        tmp_path / "without",
    )
    with_zero = train_generator_sft(
        GeneratorSFTConfig(**{**settings, "per_device_train_batch_size": 3}),
        [*weighted, zero],
        tiny_model,
        None,
        tmp_path / "with-zero",
    )
    # The weight scales the loss (no renormalisation by the weights' sum).
    assert without.metrics["weighted_nll"] == pytest.approx(2 / 3 * without.metrics["mean_nll"])
    a, b = adapter_weights(without.adapter_path), adapter_weights(with_zero.adapter_path)
    assert a.keys() == b.keys()
    moved = max(float(t.abs().max()) for k, t in a.items() if "lora_B" in k)  # B starts at zero
    assert moved > 1e-2
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5 * moved, (worst, moved)  # measured: identical

    # The weighted rows learned: their own NLL fell.
    examples = [generator_example(r) for r in weighted]
    before = mean_nll(tiny_model, None, examples)
    after = mean_nll(tiny_model, with_zero.adapter_path, examples)
    assert after < before - 0.1, (before, after)


# --- devices, precision, errors -------------------------------------------------------------------------


@pytest.mark.slow
def test_device_auto_trains_where_transformers_places_it_and_cpu_forces_the_cpu(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import coevo.trainers.sft_trainer as sft_trainer

    # `device` reaches TRL as `use_cpu`, which makes transformers ignore any accelerator.
    assert trainer_kwargs(StatSFTConfig(), tmp_path)["use_cpu"] is True  # the default: cpu
    assert trainer_kwargs(StatSFTConfig(device="auto"), tmp_path)["use_cpu"] is False

    seen: dict[str, object] = {}
    real_finish = sft_trainer.finish

    def finish(trainer: Any, output_dir: Path) -> Any:
        result = real_finish(trainer, output_dir)
        seen["use_cpu"] = trainer.args.use_cpu
        seen["args_device"] = trainer.args.device.type
        seen["model_device"] = next(trainer.model.parameters()).device.type
        return result

    monkeypatch.setattr(sft_trainer, "finish", finish)
    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    for device, expected in (("auto", accelerator), ("cpu", "cpu")):
        config = StatSFTConfig(device=device, **{**FAST, "max_steps": 1})
        result = train_sft(config, sft_rows(), tiny_model, None, tmp_path / device)
        assert result.steps == 1
        assert seen == {"use_cpu": device == "cpu", "args_device": expected, "model_device": expected}


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


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no SFT rows"):
        train_sft(StatSFTConfig(), [], "unused", None, tmp_path / "a")
    with pytest.raises(TrainingError, match="base model folder not found"):
        train_sft(StatSFTConfig(), sft_rows(), str(tmp_path / "missing"), None, tmp_path / "a")
    with pytest.raises(ValueError, match="weight"):
        train_generator_sft(GeneratorSFTConfig(), sft_rows(), "unused", None, tmp_path / "a")


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")]
)
def test_auto_precision_is_bf16_only_where_the_cpu_multiplies_bf16_natively(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: str
) -> None:
    import torch

    from coevo.trainers.common import TrainSettings, precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert precision(TrainSettings()) == expected  # the default is "auto"
    assert precision(TrainSettings(base_precision="bf16")) == "bf16"
    assert precision(TrainSettings(base_precision="fp32")) == "fp32"
