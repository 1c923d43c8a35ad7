"""EngineChatCompletionClient: autogen's `AssistantAgent` running on a coevo engine.

A tiny in-test engine (it answers with a fixed text and records what it was asked) checks
the message conversion and the usage counters exactly; one slow test runs the agent on the
real built-in model through TransformersEngine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import StructuredMessage
from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from pydantic import BaseModel

from coevo.engines.autogen_client import EngineChatCompletionClient, to_chat_messages
from coevo.engines.base import (
    Completion,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)


class FixedReplyEngine:
    """Answers every request with `reply`; usage: one prompt token per word, two per reply."""

    kind = "fixed"
    model = "fixed-reply"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[GenerationRequest] = []

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.requests.extend(requests)
        return [
            GenerationResult(
                completions=(Completion(text=self.reply, token_ids=(1, 2), finish_reason="stop"),),
                prompt_tokens=sum(len(m["content"].split()) for m in r.messages),
                completion_tokens=2,
            )
            for r in requests
        ]

    async def load_adapter(self, name: str, path: str | Path) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_assistant_agent_round_trip_and_usage() -> None:
    engine = FixedReplyEngine("The answer is 42.")
    client = EngineChatCompletionClient(engine, adapter="solver", params=SamplingParams(max_tokens=32))
    agent = AssistantAgent("solver", model_client=client, system_message="You solve math problems.")

    result = await agent.run(task="What is 17 + 25?")
    assert result.messages[-1].to_text() == "The answer is 42."
    [request] = engine.requests
    assert request.adapter == "solver"
    assert request.params.max_tokens == 32
    assert [m["role"] for m in request.messages] == ["system", "user"]
    assert request.messages[1]["content"] == "What is 17 + 25?"
    first = client.actual_usage()
    assert (first.prompt_tokens, first.completion_tokens) == (9, 2)

    await agent.run(task="And 1 + 1?")
    second = client.actual_usage()
    total = client.total_usage()
    assert second.completion_tokens == 2
    assert second.prompt_tokens > first.prompt_tokens  # the history is sent again
    assert total.prompt_tokens == first.prompt_tokens + second.prompt_tokens
    assert total.completion_tokens == 4


async def test_stream_extra_args_and_model_info() -> None:
    engine = FixedReplyEngine("ok")
    client = EngineChatCompletionClient(engine)
    chunks = [c async for c in client.create_stream([UserMessage(content="hi", source="user")])]
    assert chunks[0] == "ok" and chunks[-1].content == "ok"  # type: ignore[union-attr]
    await client.create([UserMessage(content="hi", source="user")], extra_create_args={"temperature": 0.7})
    assert engine.requests[-1].params.temperature == 0.7
    with pytest.raises(EngineError, match="unknown extra_create_args"):
        await client.create([UserMessage(content="hi", source="user")], extra_create_args={"foo": 1})
    info = client.model_info
    assert info["function_calling"] is True and info["vision"] is False
    assert {"json_output", "family", "structured_output"} <= set(info)
    assert client.remaining_tokens([UserMessage(content="abcdefgh", source="u")]) == 8192 - 2


def test_message_conversion() -> None:
    messages = to_chat_messages(
        [
            SystemMessage(content="sys"),
            UserMessage(content=["part one", "part two"], source="user"),
            AssistantMessage(content=[FunctionCall(id="1", name="add", arguments='{"a": 1}')], source="a"),
            FunctionExecutionResultMessage(
                content=[FunctionExecutionResult(content="2", name="add", call_id="1", is_error=False)]
            ),
            AssistantMessage(content="done", source="a"),
        ]
    )
    assert messages == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "part one\npart two"},
        {"role": "assistant", "content": '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'},
        {"role": "user", "content": "Result of add: 2"},
        {"role": "assistant", "content": "done"},
    ]


class Verdict(BaseModel):
    answer: int
    sure: bool


async def test_structured_output_asks_the_engine_for_the_schema() -> None:
    engine = FixedReplyEngine('{"answer": 42, "sure": true}')
    client = EngineChatCompletionClient(engine, params=SamplingParams(seed=5))
    agent = AssistantAgent("judge", model_client=client, output_content_type=Verdict)
    result = await agent.run(task="What is 17 + 25?")
    reply = result.messages[-1]
    assert isinstance(reply, StructuredMessage) and reply.content == Verdict(answer=42, sure=True)
    [request] = engine.requests
    assert request.params.json_schema == Verdict.model_json_schema()
    assert request.params.seed == 5


def test_structured_output_is_claimed_only_where_the_engine_constrains_decoding() -> None:
    from coevo.engines.openai_engine import OpenAIEngine
    from coevo.engines.replay import ReplayEngine
    from coevo.engines.transformers_engine import TransformersEngine
    from coevo.engines.vllm_engine import VLLMEngine

    engines = {
        "vllm": object.__new__(VLLMEngine),  # not started: the client reads only what engine it is
        "openai": OpenAIEngine("served", "http://127.0.0.1:9/v1"),
        "transformers": TransformersEngine("builtin:smollm2-135m-instruct"),  # loads on first use
        "replay": ReplayEngine({}),
        "fixed": FixedReplyEngine("{}"),
    }
    claims = {}
    for name, engine in engines.items():
        client = EngineChatCompletionClient(engine)
        info = client.model_info
        assert info["json_output"] == info["structured_output"] == client.capabilities["json_output"]
        claims[name] = info["structured_output"]
    # vLLM and OpenAI-compatible servers enforce the schema; the others only pass it on.
    assert claims == {"vllm": True, "openai": True, "transformers": False, "replay": False, "fixed": False}


async def test_tools_are_offered_in_text_and_calls_come_back_as_function_calls() -> None:
    calls: list[str] = []

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        calls.append(f"{a}+{b}")
        return a + b

    class ToolEngine(FixedReplyEngine):
        async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
            last = requests[0].messages[-1]["content"]
            self.reply = (
                "The answer is 42."
                if last.startswith("Result of add")
                else 'Let me add. <tool_call>{"name": "add", "arguments": {"a": 17, "b": 25}}</tool_call>'
            )
            return await super().generate(requests)

    engine = ToolEngine("")
    client = EngineChatCompletionClient(engine)
    agent = AssistantAgent("solver", model_client=client, tools=[add], reflect_on_tool_use=True)
    result = await agent.run(task="What is 17 + 25?")
    assert calls == ["17+25"]
    assert result.messages[-1].to_text() == "The answer is 42."
    offered = engine.requests[0].messages[0]["content"]
    assert "<tool_call>" in offered and '"name": "add"' in offered
    assert engine.requests[1].messages[-1]["content"] == "Result of add: 42"


async def test_a_malformed_tool_call_is_plain_text() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    engine = FixedReplyEngine(
        '<tool_call>{"name": "mul", "arguments": {}}</tool_call> <tool_call>{oops</tool_call>'
    )
    agent = AssistantAgent("solver", model_client=EngineChatCompletionClient(engine), tools=[add])
    result = await agent.run(task="hi")
    assert "mul" in result.messages[-1].to_text()


@pytest.mark.slow
async def test_assistant_agent_on_transformers_engine() -> None:
    from coevo.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine("builtin:smollm2-135m-instruct")
    try:
        client = EngineChatCompletionClient(engine, params=SamplingParams(max_tokens=16))
        agent = AssistantAgent("solver", model_client=client)
        result = await agent.run(task="What is 17 + 25?")
        assert result.messages[-1].to_text().strip()
        usage = client.total_usage()
        assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16
    finally:
        await engine.close()
