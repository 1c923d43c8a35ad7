"""The vLLM engine on the built-in model: real generation, seeded sampling, LoRA hot-loading."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from coevo.engines.base import EngineError, GenerationRequest, SamplingParams
from coevo.engines.vllm_engine import VLLMEngine

# The shared engine lives on the session event loop, so these tests must run on it too.
pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

QUESTION = "What is 17 + 25?"


def ask(adapter: str | None = None, **params: object) -> GenerationRequest:
    defaults: dict[str, object] = {"max_tokens": 24}
    defaults.update(params)
    return GenerationRequest(
        messages=[{"role": "user", "content": QUESTION}],
        params=SamplingParams(**defaults),  # type: ignore[arg-type]
        adapter=adapter,
    )


async def greedy_text(engine: VLLMEngine, adapter: str | None = None) -> str:
    [result] = await engine.generate([ask(adapter)])
    return result.completions[0].text


async def test_greedy_generation_is_nonempty_and_deterministic(vllm_engine: VLLMEngine) -> None:
    first, second = await vllm_engine.generate([ask(), ask()])
    assert first.completions[0].text.strip()
    assert first.completions == second.completions
    completion = first.completions[0]
    assert first.completion_tokens == len(completion.token_ids) > 0
    assert first.prompt_tokens > 5  # the chat template adds a system prompt and role markers
    assert completion.finish_reason in {"stop", "length"}


async def test_max_tokens_and_logprobs(vllm_engine: VLLMEngine) -> None:
    [result] = await vllm_engine.generate([ask(max_tokens=3, logprobs=True)])
    completion = result.completions[0]
    assert len(completion.token_ids) == 3
    assert completion.finish_reason == "length"
    assert completion.logprobs is not None and len(completion.logprobs) == 3
    assert all(lp <= 0.0 for lp in completion.logprobs)


async def test_seeded_sampling_with_n_is_reproducible(vllm_engine: VLLMEngine) -> None:
    request = ask(n=4, temperature=1.0, seed=7)
    [a] = await vllm_engine.generate([request])
    [b] = await vllm_engine.generate([request])
    assert len(a.completions) == 4
    assert [c.text for c in a.completions] == [c.text for c in b.completions]
    assert len({c.text for c in a.completions}) > 1  # the n samples differ from each other


async def test_concurrent_callers_all_get_answers(vllm_engine: VLLMEngine) -> None:
    results = await asyncio.gather(*(vllm_engine.generate([ask(max_tokens=8)]) for _ in range(16)))
    texts = {r[0].completions[0].text for r in results}
    assert len(texts) == 1 and texts != {""}


async def test_lora_changes_output_and_base_is_unchanged(vllm_engine: VLLMEngine, lora_adapter: Path) -> None:
    base = await greedy_text(vllm_engine)
    await vllm_engine.load_adapter("random-lora", lora_adapter)
    tuned, base_again = await asyncio.gather(
        greedy_text(vllm_engine, "random-lora"), greedy_text(vllm_engine)
    )
    assert tuned != base
    assert base_again == base


async def test_interleaved_policies_each_get_their_own_weights(
    vllm_engine: VLLMEngine, lora_adapter: Path
) -> None:
    # With merged weights the engine swaps policies between requests; none may see the wrong one.
    await vllm_engine.load_adapter("interleaved", lora_adapter)
    base, tuned = await greedy_text(vllm_engine), await greedy_text(vllm_engine, "interleaved")
    policies = ["interleaved" if i % 2 else None for i in range(8)]
    texts = await asyncio.gather(*(greedy_text(vllm_engine, policy) for policy in policies))
    assert texts == [tuned if policy else base for policy in policies]


async def test_replacing_an_adapter_uses_the_new_weights(
    vllm_engine: VLLMEngine, lora_adapter: Path, second_lora_adapter: Path, tmp_path: Path
) -> None:
    await vllm_engine.load_adapter("first", lora_adapter)
    await vllm_engine.load_adapter("second", second_lora_adapter)
    first = await greedy_text(vllm_engine, "first")
    second = await greedy_text(vllm_engine, "second")
    assert first != second

    # A trainer overwrites the same folder with new weights and reloads it under the same name.
    folder = tmp_path / "policy"
    shutil.copytree(lora_adapter, folder)
    await vllm_engine.load_adapter("policy", folder)
    assert await greedy_text(vllm_engine, "policy") == first
    shutil.rmtree(folder)
    shutil.copytree(second_lora_adapter, folder)
    await vllm_engine.load_adapter("policy", folder)
    assert await greedy_text(vllm_engine, "policy") == second


async def test_unknown_adapter_names_the_known_ones(vllm_engine: VLLMEngine, lora_adapter: Path) -> None:
    await vllm_engine.load_adapter("known-one", lora_adapter)
    with pytest.raises(EngineError, match=r"unknown adapter 'nope'.*known-one"):
        await vllm_engine.generate([ask("nope")])


async def test_bad_adapter_folder_is_a_clear_error(vllm_engine: VLLMEngine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not a PEFT LoRA adapter"):
        await vllm_engine.load_adapter("broken", tmp_path)


async def test_stop_strings_end_the_completion(vllm_engine: VLLMEngine) -> None:
    base = await greedy_text(vllm_engine)
    stop = base.strip().split()[1] if len(base.split()) > 1 else base.strip()[:2]
    [result] = await vllm_engine.generate([ask(stop=(stop,))])
    assert stop not in result.completions[0].text
    assert result.completions[0].finish_reason == "stop"
