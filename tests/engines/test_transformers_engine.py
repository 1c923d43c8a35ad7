"""TransformersEngine on the built-in SmolLM2: greedy generation, micro-batching, sampling
parameters, and LoRA adapters (loaded, replaced, mixed with base-model requests)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from coevo.engines.base import Engine, EngineError, GenerationRequest, SamplingParams
from coevo.engines.transformers_engine import TransformersEngine

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

GREEDY = SamplingParams(max_tokens=16)


def ask(question: str, params: SamplingParams = GREEDY, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": question}], params=params, adapter=adapter)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[TransformersEngine]:
    eng = TransformersEngine("builtin:smollm2-135m-instruct", batch_window_ms=20)
    yield eng
    await eng.close()


async def text_of(engine: TransformersEngine, request: GenerationRequest) -> str:
    return (await engine.generate([request]))[0].completions[0].text


async def test_greedy_generation(engine: TransformersEngine) -> None:
    assert isinstance(engine, Engine)
    [result] = await engine.generate([ask("What is 17 + 25?")])
    [completion] = result.completions
    assert completion.text.strip()
    assert completion.finish_reason in ("stop", "length")
    assert 0 < len(completion.token_ids) <= GREEDY.max_tokens
    assert result.completion_tokens == len(completion.token_ids)
    assert result.prompt_tokens > 5
    # Greedy is deterministic.
    assert await text_of(engine, ask("What is 17 + 25?")) == completion.text


async def test_concurrent_requests_are_batched_and_match_solo_output(engine: TransformersEngine) -> None:
    questions = [f"What is {a} + {a + 7}?" for a in range(3, 7)]
    solo = [await text_of(engine, ask(q)) for q in questions]
    calls = engine.generate_calls
    together = await asyncio.gather(*(text_of(engine, ask(q)) for q in questions))
    assert engine.generate_calls == calls + 1
    assert list(together) == solo


async def test_max_batch_size_splits_rows(engine: TransformersEngine) -> None:
    small = TransformersEngine(engine.model, max_batch_size=4, batch_window_ms=20)
    try:
        params = SamplingParams(n=3, max_tokens=4)
        await asyncio.gather(*(small.generate([ask(f"Say {i}", params)]) for i in range(3)))
        # 3 requests of 3 rows with at most 4 rows per batch: one request per `generate`.
        assert small.generate_calls == 3
    finally:
        await small.close()


async def test_seeded_sampling_is_reproducible(engine: TransformersEngine) -> None:
    params = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_tokens=8, seed=7)
    [first] = await engine.generate([ask("Tell me about cats.", params)])
    texts = [c.text for c in first.completions]
    assert len(texts) == 3 and len(set(texts)) > 1  # distinct samples per row
    # Same seed, different batch mates: the same samples.
    first_again, _ = await asyncio.gather(
        engine.generate([ask("Tell me about cats.", params)]),
        engine.generate([ask("What is 2 + 2?", SamplingParams(temperature=0.8, max_tokens=8, seed=1))]),
    )
    assert [c.text for c in first_again[0].completions] == texts


async def test_stop_strings_max_tokens_and_logprobs(engine: TransformersEngine) -> None:
    full = await text_of(engine, ask("What is 17 + 25?"))
    stop = full.split()[2]  # a word from inside the greedy answer
    [result] = await engine.generate([ask("What is 17 + 25?", SamplingParams(max_tokens=16, stop=(stop,)))])
    [completion] = result.completions
    assert completion.text == full[: full.index(stop)]
    assert completion.finish_reason == "stop"

    [short] = await engine.generate([ask("What is 17 + 25?", SamplingParams(max_tokens=3, logprobs=True))])
    [completion] = short.completions
    assert completion.finish_reason == "length"
    assert len(completion.token_ids) == 3
    assert completion.logprobs is not None and len(completion.logprobs) == 3
    assert all(lp <= 0 for lp in completion.logprobs)


async def test_bad_requests_fail_clearly(engine: TransformersEngine) -> None:
    with pytest.raises(EngineError, match="unknown adapter"):
        await engine.generate([ask("hi", adapter="nope")])
    with pytest.raises(EngineError, match="role"):
        await engine.generate([GenerationRequest(messages=[{"role": "robot", "content": "hi"}])])  # type: ignore[typeddict-item]
    with pytest.raises(EngineError, match="n must be"):
        await engine.generate([ask("hi", SamplingParams(n=0))])
    with pytest.raises(EngineError, match="not a PEFT adapter"):
        await engine.load_adapter("x", "/nonexistent")


def zeroed_copy(adapter: Path, target: Path) -> Path:
    """The adapter with lora_B set to zero: a no-op adapter, so output equals the base model's."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(adapter, target)
    weights = target / "adapter_model.safetensors"
    tensors = {k: (v * 0 if "lora_B" in k else v) for k, v in load_file(weights).items()}
    save_file(tensors, weights)
    return target


async def test_lora_adapters(engine: TransformersEngine, lora_adapter: Path, tmp_path: Path) -> None:
    question = "What is 17 + 25?"
    base = await text_of(engine, ask(question))
    await engine.load_adapter("solver", lora_adapter)
    tuned = await text_of(engine, ask(question, adapter="solver"))
    assert tuned != base
    assert await text_of(engine, ask(question)) == base

    # A batch mixing the adapter and the base model is split by adapter, each right.
    calls = engine.generate_calls
    mixed = await asyncio.gather(
        text_of(engine, ask(question, adapter="solver")), text_of(engine, ask(question))
    )
    assert list(mixed) == [tuned, base]
    assert engine.generate_calls == calls + 2

    # Replacing the adapter loads the new weights (a zero adapter behaves like the base model).
    await engine.load_adapter("solver", zeroed_copy(lora_adapter, tmp_path / "zero"))
    assert await text_of(engine, ask(question, adapter="solver")) == base


async def test_a_json_schema_is_not_enforced_and_the_autogen_client_says_so(
    engine: TransformersEngine,
) -> None:
    from coevo.agents.coach import CoachReview
    from coevo.engines.autogen_client import EngineChatCompletionClient, json_schema_for

    # No constrained decoding: asked for the Coach's report schema, greedy output is the same free
    # text as without one, not JSON.
    schema = SamplingParams(max_tokens=16, json_schema=json_schema_for(CoachReview))
    free = await text_of(engine, ask("Review this lesson: 2 + 3 = 5."))
    assert await text_of(engine, ask("Review this lesson: 2 + 3 = 5.", schema)) == free
    assert not free.lstrip().startswith("{")
    # So the client autogen agents run on does not claim structured (or JSON) output for it.
    info = EngineChatCompletionClient(engine).model_info
    assert info["structured_output"] is False and info["json_output"] is False
