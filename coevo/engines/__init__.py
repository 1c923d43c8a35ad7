"""Inference engines: one async `Engine` protocol, several backends (vllm, openai, transformers, replay)."""

from coevo.engines.base import (
    ChatMessage,
    Completion,
    Engine,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)

__all__ = [
    "ChatMessage",
    "Completion",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "SamplingParams",
]
