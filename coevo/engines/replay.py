"""The `replay` engine: a TEST DOUBLE ONLY, never a model. It answers from a callable or from a
prompt → response mapping, deterministically, so tests of agents, societies and trainers can
run without loading any weights. Tokens are counted by whitespace; token ids are word indexes.

It records every adapter load and which adapter served each request, so tests can check that
a new policy version was hot-loaded and then used. Log-probabilities, when asked for, are a
deterministic function of the adapter and the token position (not of any model): a policy change
is then visible to a probe, as it would be on a real engine.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from coevo.engines.base import (
    ChatMessage,
    Completion,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)

# (messages, params, adapter, sample_index, seed) → the completion text
Responder = Callable[[Sequence[ChatMessage], SamplingParams, str | None, int, int | None], str]


class ReplayEngine:
    """Test double. With a mapping, the key is the last user message's content; a prompt that
    is not in the mapping is an EngineError listing a few known prompts."""

    kind = "replay"

    def __init__(self, responses: Responder | Mapping[str, str], model: str = "replay") -> None:
        self.model = model
        self._responder: Responder = (
            _mapping_responder(dict(responses)) if isinstance(responses, Mapping) else responses
        )
        self.adapters: dict[str, Path] = {}
        # Every load_adapter call in order, so tests can see replacements too.
        self.adapter_loads: list[tuple[str, Path]] = []
        # The adapter named by each request served, in order (None = base model).
        self.served_adapters: list[str | None] = []
        self.closed = False

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.closed:
            raise EngineError("this replay engine is closed")
        results = []
        for request in requests:
            if request.adapter is not None and request.adapter not in self.adapters:
                known = ", ".join(sorted(self.adapters)) or "none loaded"
                raise EngineError(f"unknown adapter {request.adapter!r}; known adapters: {known}")
            self.served_adapters.append(request.adapter)
            completions = tuple(
                self._complete(request, index, _sample_seed(request.params.seed, index))
                for index in range(request.params.n)
            )
            results.append(
                GenerationResult(
                    completions=completions,
                    prompt_tokens=sum(len(m["content"].split()) for m in request.messages),
                    completion_tokens=sum(len(c.token_ids) for c in completions),
                )
            )
        return results

    def _complete(self, request: GenerationRequest, index: int, seed: int | None) -> Completion:
        text = self._responder(request.messages, request.params, request.adapter, index, seed)
        finish = "stop"
        for stop in request.params.stop:
            if stop in text:
                text = text[: text.index(stop)]
        words = text.split()
        if len(words) > request.params.max_tokens:
            words = words[: request.params.max_tokens]
            text = " ".join(words)
            finish = "length"
        return Completion(
            text=text,
            token_ids=tuple(range(len(words))),
            finish_reason=finish,
            logprobs=_logprobs(request.adapter, len(words)) if request.params.logprobs else None,
        )

    async def load_adapter(self, name: str, path: str | Path) -> None:
        self.adapters[name] = Path(path)
        self.adapter_loads.append((name, Path(path)))

    async def close(self) -> None:
        self.closed = True


def _logprobs(adapter: str | None, count: int) -> tuple[float, ...]:
    rng = random.Random(f"replay-logprobs:{adapter}")
    return tuple(-rng.random() for _ in range(count))


def _sample_seed(seed: int | None, index: int) -> int | None:
    # The same rule vLLM uses for n > 1: sample i of a seeded request gets seed + i.
    return None if seed is None else seed + index


def _mapping_responder(responses: dict[str, str]) -> Responder:
    def respond(
        messages: Sequence[ChatMessage],
        params: SamplingParams,
        adapter: str | None,
        index: int,
        seed: int | None,
    ) -> str:
        prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if prompt not in responses:
            known = ", ".join(repr(p) for p in list(responses)[:5])
            raise EngineError(f"replay engine has no response for {prompt!r}; it knows: {known}")
        return responses[prompt]

    return respond
