"""The `Engine` protocol every inference backend implements, and the request/result types it speaks.

An engine takes a batch of chat requests and returns one result per request. Each request
asks for `n` samples so group sampling (k attempts at one problem) is one call that the
backend can batch; the LoRA adapter to use is named per request so several policy
versions can be served by one engine at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class EngineError(RuntimeError):
    """A failure an engine reports with a message meant for the user (no bare traceback)."""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    # A JSON schema the reply must follow (structured output). Engines that can constrain decoding
    # (vLLM, OpenAI-compatible servers) do; the others only pass it on, and the caller validates.
    json_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[ChatMessage]
    params: SamplingParams = field(default_factory=SamplingParams)
    # Name given to `Engine.load_adapter`; None means the base model.
    adapter: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    token_ids: tuple[int, ...]
    finish_reason: str  # "stop" | "length" | backend-specific
    # Per generated token log-probability, when the request asked for logprobs.
    logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True)
class GenerationResult:
    completions: tuple[Completion, ...]
    prompt_tokens: int
    completion_tokens: int


@runtime_checkable
class Engine(Protocol):
    """An inference backend. All methods are async so many agents can await one engine."""

    # Short backend name ("vllm", "transformers", "openai", "replay").
    kind: str
    # The model this engine serves (a path, hub id or builtin name).
    model: str

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order."""
        ...

    async def load_adapter(self, name: str, path: str | Path) -> None:
        """Register (or replace) a PEFT LoRA adapter; later requests naming it use these weights."""
        ...

    async def close(self) -> None: ...
