"""The replay engine (a test double): deterministic answers, token counting, adapter records."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from coevo.engines.base import ChatMessage, Engine, EngineError, GenerationRequest, SamplingParams
from coevo.engines.replay import ReplayEngine


def request(text: str, adapter: str | None = None, **params: object) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
        params=SamplingParams(**params),  # type: ignore[arg-type]
        adapter=adapter,
    )


def echo(
    messages: Sequence[ChatMessage], params: SamplingParams, adapter: str | None, index: int, seed: int | None
) -> str:
    return f"{messages[-1]['content']} from {adapter} sample {index} seed {seed}"


def test_is_an_engine() -> None:
    assert isinstance(ReplayEngine({}), Engine)


async def test_mapping_answers_and_counts_words() -> None:
    engine = ReplayEngine({"What is 2 + 2?": "It is 4."})
    [result] = await engine.generate([request("What is 2 + 2?")])
    assert result.completions[0].text == "It is 4."
    assert result.completions[0].token_ids == (0, 1, 2)
    assert result.prompt_tokens == 2 + 5
    assert result.completion_tokens == 3


async def test_unknown_prompt_is_an_engine_error() -> None:
    engine = ReplayEngine({"known": "yes"})
    with pytest.raises(EngineError, match=r"no response for 'other'.*'known'"):
        await engine.generate([request("other")])


async def test_callable_sees_index_seed_and_adapter() -> None:
    engine = ReplayEngine(echo)
    await engine.load_adapter("v1", "/adapters/v1")
    [result] = await engine.generate([request("q", adapter="v1", n=2, seed=10)])
    assert [c.text for c in result.completions] == [
        "q from v1 sample 0 seed 10",
        "q from v1 sample 1 seed 11",
    ]
    again = await engine.generate([request("q", adapter="v1", n=2, seed=10)])
    assert again[0] == result


async def test_max_tokens_stop_and_logprobs() -> None:
    engine = ReplayEngine({"q": "one two three. four five"})
    [cut, stopped] = await engine.generate(
        [request("q", max_tokens=2, logprobs=True), request("q", stop=(".",))]
    )
    assert cut.completions[0].text == "one two"
    assert cut.completions[0].finish_reason == "length"
    assert cut.completions[0].logprobs is not None and len(cut.completions[0].logprobs) == 2
    assert stopped.completions[0].text == "one two three"
    assert stopped.completions[0].finish_reason == "stop"


async def test_adapter_loads_and_use_are_recorded() -> None:
    engine = ReplayEngine(echo)
    await engine.load_adapter("policy", "/a/v1")
    await engine.load_adapter("policy", "/a/v2")
    await engine.generate([request("q", adapter="policy"), request("q")])
    assert [name for name, _ in engine.adapter_loads] == ["policy", "policy"]
    assert str(engine.adapters["policy"]) == "/a/v2"
    assert engine.served_adapters == ["policy", None]
    with pytest.raises(EngineError, match="unknown adapter 'other'; known adapters: policy"):
        await engine.generate([request("q", adapter="other")])


async def test_closed_engine_refuses_work() -> None:
    engine = ReplayEngine(echo)
    await engine.close()
    with pytest.raises(EngineError, match="closed"):
        await engine.generate([request("q")])
