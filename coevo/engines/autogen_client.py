"""`EngineChatCompletionClient`: autogen-core's `ChatCompletionClient` on top of a coevo `Engine`.

With it an autogen-agentchat agent (`AssistantAgent`, a GraphFlow team) runs on whichever
engine coevo uses, so its calls are batched with every other agent's by that engine.

- Structured output: `json_output=True` or a pydantic model type (what `AssistantAgent` passes
  for an `output_content_type`) becomes the request's JSON schema, which the vLLM and OpenAI
  engines enforce by constrained decoding; the caller validates the reply either way. Other
  engines (transformers, test doubles) get the schema too but generate free text, so for them the
  client's `model_info` says `structured_output` and `json_output` are False: the reply may not
  follow the schema, and a caller that needs it to must not rely on the engine.
- Tools: the engines serve plain chat, so tools are offered in text. Their JSON schemas are
  appended to the system message with the instruction to answer a call as
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; such a reply comes back as
  `FunctionCall`s (finish reason "function_calls"), and tool results go back as user messages.
  This is the Hermes-style convention many open chat models are tuned on.
- Images are refused. Streaming yields the whole reply as one chunk, then the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
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
_SAMPLING_FIELDS = {f.name for f in dataclasses.fields(SamplingParams)} - {"json_schema"}
# Engine kinds that constrain decoding to a request's JSON schema (vLLM's structured outputs, an
# OpenAI-compatible server's `response_format`): the only ones the client reports structured output for.
CONSTRAINED_DECODING_KINDS = frozenset({"vllm", "openai"})
_TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)
TOOLS_PROMPT = (
    "You can call these tools. To call one, reply with only "
    '<tool_call>{{"name": NAME, "arguments": {{...}}}}</tool_call> and nothing else. '
    "When you have the answer, reply normally.\nTools: {tools}"
)


def _calls_text(calls: Sequence[FunctionCall]) -> str:
    return "\n".join(
        f"<tool_call>{json.dumps({'name': c.name, 'arguments': _arguments(c)})}</tool_call>" for c in calls
    )


def _arguments(call: FunctionCall) -> Any:
    try:
        return json.loads(call.arguments)
    except json.JSONDecodeError:
        return call.arguments


def _tool_schemas(tools: Sequence[Tool | ToolSchema]) -> list[dict[str, Any]]:
    return [dict(t.schema) if isinstance(t, Tool) else dict(t) for t in tools]


def parse_tool_calls(text: str, known: set[str]) -> list[FunctionCall]:
    """The `<tool_call>` blocks of a reply that name a known tool with a JSON object of arguments."""
    calls = []
    for block in _TOOL_CALL_RE.findall(text[:20_000]):
        try:
            data = json.loads(block)
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict) or data.get("name") not in known:
            continue
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            continue
        calls.append(
            FunctionCall(
                id=f"call_{uuid.uuid4().hex[:12]}", name=data["name"], arguments=json.dumps(arguments)
            )
        )
    return calls


def json_schema_for(json_output: bool | type[BaseModel] | None) -> dict[str, Any] | None:
    """The JSON schema a `json_output` argument asks for (None: free text)."""
    if json_output is None or json_output is False:
        return None
    if json_output is True:
        return {"type": "object"}
    return json_output.model_json_schema()


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
        # Claimed only where the engine enforces the schema (see CONSTRAINED_DECODING_KINDS).
        self.constrained = engine.kind in CONSTRAINED_DECODING_KINDS
        self._model_info: ModelInfo = {
            "vision": False,
            "function_calling": True,
            "json_output": self.constrained,
            "structured_output": self.constrained,
            "family": family,
            "multiple_system_messages": True,
        }
        self._last_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._total_usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        # The text of the last reply, kept for callers whose agent rejected it (a structured
        # reply that did not validate), so the raw output can still be recorded; and the chat
        # messages the engine was given for it, so a trainer can train on exactly that prompt.
        self.last_text = ""
        self.last_messages: list[ChatMessage] = []

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
        params = dataclasses.replace(
            self._params(extra_create_args), json_schema=json_schema_for(json_output)
        )
        chat = to_chat_messages(messages)
        if tools and tool_choice != "none":
            offer = TOOLS_PROMPT.format(tools=json.dumps(_tool_schemas(tools)))
            if chat and chat[0]["role"] == "system":
                chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{offer}"}
            else:
                chat.insert(0, {"role": "system", "content": offer})
        request = GenerationRequest(messages=chat, params=params, adapter=self.adapter)
        self.last_messages = [ChatMessage(role=m["role"], content=m["content"]) for m in chat]
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
        self.last_text = completion.text
        if tools and tool_choice != "none":
            known = {str(schema["name"]) for schema in _tool_schemas(tools)}
            calls = parse_tool_calls(completion.text, known)
            if calls:
                return CreateResult(finish_reason="function_calls", content=calls, usage=usage, cached=False)
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
        if isinstance(result.content, str):
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
        return {"vision": False, "function_calling": True, "json_output": self.constrained}

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
