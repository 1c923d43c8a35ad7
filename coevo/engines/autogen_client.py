"""`EngineChatCompletionClient`: autogen-core's `ChatCompletionClient` on top of a coevo `Engine`.

With it an autogen-agentchat agent (`AssistantAgent`, a GraphFlow team) runs on whichever
engine coevo uses, so its calls are batched with every other agent's by that engine. Only
text chat is offered: no tools, images or JSON mode (model_info says so, and autogen checks
it before asking). Streaming yields the whole reply as one chunk, then the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from autogen_core import CancellationToken, FunctionCall
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from coevo.engines.base import ChatMessage, Engine, EngineError, GenerationRequest, SamplingParams

# Without the engine's tokenizer at hand, token counts are estimated from text length.
_CHARS_PER_TOKEN = 4
_SAMPLING_FIELDS = {f.name for f in dataclasses.fields(SamplingParams)}


def _calls_text(calls: Sequence[FunctionCall]) -> str:
    return "\n".join(f"{c.name}({c.arguments})" for c in calls)


def to_chat_messages(messages: Sequence[LLMMessage]) -> list[ChatMessage]:
    """autogen messages → coevo chat messages (tool calls and results become plain text)."""
    out: list[ChatMessage] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": m.content})
        elif isinstance(m, UserMessage):
            if isinstance(m.content, str):
                out.append({"role": "user", "content": m.content})
            else:
                if not all(isinstance(part, str) for part in m.content):
                    raise EngineError("this model client takes text only; the message holds an image")
                out.append({"role": "user", "content": "\n".join(str(p) for p in m.content)})
        elif isinstance(m, AssistantMessage):
            text = m.content if isinstance(m.content, str) else _calls_text(m.content)
            out.append({"role": "assistant", "content": text})
        elif isinstance(m, FunctionExecutionResultMessage):
            results = "\n".join(f"Result of {r.name}: {r.content}" for r in m.content)
            out.append({"role": "user", "content": results})
        else:
            raise EngineError(f"unsupported autogen message type {type(m).__name__}")
    return out


class EngineChatCompletionClient(ChatCompletionClient):
    """A `ChatCompletionClient` that sends every call to a coevo `Engine` (one sample per call)."""

    def __init__(
        self,
        engine: Engine,
        *,
        adapter: str | None = None,
        params: SamplingParams | None = None,
        context_length: int = 8192,
        family: str = ModelFamily.UNKNOWN,
    ) -> None:
        self.engine = engine
        self.adapter = adapter
        self.params = params or SamplingParams()
        self.context_length = context_length
        self._model_info: ModelInfo = {
            "vision": False,
            "function_calling": False,
            "json_output": False,
            "structured_output": False,
            "family": family,
            "multiple_system_messages": True,
        }
        self._last_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        if tools:
            raise EngineError("this model client does not support tools (model_info.function_calling=False)")
        if json_output:
            raise EngineError("this model client does not support JSON or structured output")
        params = self._params(extra_create_args)
        request = GenerationRequest(messages=to_chat_messages(messages), params=params, adapter=self.adapter)
        task = asyncio.ensure_future(self.engine.generate([request]))
        if cancellation_token is not None:
            cancellation_token.link_future(task)
        result = (await task)[0]
        usage = RequestUsage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
        self._last_usage = usage
        self._total_usage = RequestUsage(
            prompt_tokens=self._total_usage.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._total_usage.completion_tokens + usage.completion_tokens,
        )
        completion = result.completions[0]
        finish: Literal["stop", "length", "unknown"] = "unknown"
        if completion.finish_reason in ("stop", "length"):
            finish = "stop" if completion.finish_reason == "stop" else "length"
        return CreateResult(finish_reason=finish, content=completion.text, usage=usage, cached=False)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        result = await self.create(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )
        assert isinstance(result.content, str)
        yield result.content
        yield result

    async def close(self) -> None:
        # The engine is shared by many clients; its owner closes it.
        return None

    def actual_usage(self) -> RequestUsage:
        return self._last_usage

    def total_usage(self) -> RequestUsage:
        return self._total_usage

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        chars = sum(len(m["content"]) for m in to_chat_messages(messages))
        return -(-chars // _CHARS_PER_TOKEN)

    def remaining_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        return self.context_length - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        return {"vision": False, "function_calling": False, "json_output": False}

    @property
    def model_info(self) -> ModelInfo:
        return self._model_info

    def _params(self, extra: Mapping[str, Any]) -> SamplingParams:
        """The client's sampling params, with per-call overrides from `extra_create_args`."""
        unknown = set(extra) - _SAMPLING_FIELDS
        if unknown:
            raise EngineError(
                f"unknown extra_create_args {sorted(unknown)}; allowed: {sorted(_SAMPLING_FIELDS)}"
            )
        overrides = dict(extra)
        if "stop" in overrides:
            overrides["stop"] = tuple(overrides["stop"])
        params = dataclasses.replace(self.params, **overrides)
        if params.n != 1:
            raise EngineError("a chat completion client returns one reply; ask the engine directly for n > 1")
        return params
