"""`TransformersEngine`: in-process Hugging Face `generate` with request micro-batching.

The fallback backend where vLLM is not installed. Requests from many coroutines are queued;
a batcher task waits a few milliseconds for more to arrive, packs up to `max_batch_size`
sample rows (a request with `n` samples is `n` rows) that use the same LoRA adapter into one
left-padded `generate` call, and runs it on a single worker thread so the event loop never
blocks and the model is only ever touched by one thread.

Sampling is done per row by a logits processor (`_RowSampler`) while `generate` itself runs
greedily: each row gets its own temperature, top-p, token budget, stop strings and its own
seeded `torch.Generator`, so one `generate` call can serve requests with different sampling
parameters, and a seeded request draws the same random numbers whatever its batch mates are. Its
logits, though, are computed in a batch whose shape (how many rows, how much padding) depends on
which requests arrived together, and a batch's shape changes them in their last bits: where two
tokens are nearly tied, that decides the sample. For bit-exact repeats across runs, give
`max_batch_size: 1` (one request per call, its n samples together), as `coevo check --determinism
--engine transformers` does.

There is no constrained decoding here: a request's `json_schema` (structured output) is not
enforced, and the reply is whatever the model writes. The autogen client therefore reports neither
structured nor JSON output for this engine (`coevo.engines.autogen_client`), and callers validate
the reply (the Coach, for one, then reads it leniently and records why it did not validate).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coevo.engines.base import (
    Completion,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)
from coevo.engines.builtin import resolve_model

if TYPE_CHECKING:
    import torch

_ROLES = ("system", "user", "assistant")
_SEED_SPACE = 2**63
_NUCLEUS_CANDIDATES = 256


def _row_seed(seed: int, index: int) -> int:
    """Seed of sample `index` of a request seeded with `seed` (distinct rows, reproducible)."""
    return (seed * 1_000_003 + index) % _SEED_SPACE


@dataclass
class _Pending:
    """A queued request, its per-row seeds (fixed when it was submitted) and its future."""

    request: GenerationRequest
    seeds: list[int]
    future: asyncio.Future[GenerationResult]


@dataclass
class _RowState:
    """What the sampler has produced so far for one sample row."""

    params: SamplingParams
    generator: torch.Generator
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None


def _check_request(request: GenerationRequest) -> None:
    p = request.params
    if p.n < 1:
        raise EngineError(f"n must be >= 1, got {p.n}")
    if p.max_tokens < 1:
        raise EngineError(f"max_tokens must be >= 1, got {p.max_tokens}")
    if p.temperature < 0:
        raise EngineError(f"temperature must be >= 0, got {p.temperature}")
    if not 0 < p.top_p <= 1:
        raise EngineError(f"top_p must be in (0, 1], got {p.top_p}")
    if not request.messages:
        raise EngineError("a generation request needs at least one chat message")
    for m in request.messages:
        if m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise EngineError(f"bad chat message {m!r}: role must be one of {_ROLES} and content a string")


class _RowSampler:
    """A logits processor that picks every row's next token itself.

    It returns scores that are -inf everywhere but at the chosen token, so the greedy
    `generate` loop around it emits exactly that token. Rows that are finished (budget spent
    or a stop string seen) are forced to EOS so `generate` stops as soon as all rows are done.
    """

    def __init__(self, rows: list[_RowState], prompt_len: int, eos_id: int, tokenizer: Any) -> None:
        self.rows = rows
        self.prompt_len = prompt_len
        self.eos_id = eos_id
        self.tokenizer = tokenizer
        self.want_logprobs = any(r.params.logprobs for r in rows)
        # Stop strings are checked on a decoded tail a little longer than the longest stop.
        self.tails = [max((len(s) for s in r.params.stop), default=0) + 4 for r in rows]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        scores = scores.float()
        chosen = scores.argmax(dim=-1)
        sampled: list[int] = []
        for i, row in enumerate(self.rows):
            if row.finish_reason is not None:
                chosen[i] = self.eos_id
            elif row.params.temperature > 0:
                sampled.append(i)
        if sampled:
            self._sample(scores, sampled, chosen)
        if self.want_logprobs:
            picked = torch.log_softmax(scores, dim=-1).gather(1, chosen.unsqueeze(1)).squeeze(1).tolist()
        ids = chosen.tolist()
        for i, row in enumerate(self.rows):
            if row.finish_reason is not None:
                continue
            row.tokens.append(ids[i])
            if row.params.logprobs:
                row.logprobs.append(picked[i])
            if ids[i] == self.eos_id or (row.params.stop and self._hit_stop(row, self.tails[i])):
                row.finish_reason = "stop"
            elif len(row.tokens) >= row.params.max_tokens:
                row.finish_reason = "length"
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(len(ids)), chosen] = 0.0
        return forced

    def _sample(self, scores: torch.Tensor, sampled: list[int], chosen: torch.Tensor) -> None:
        """Draw the next token of each sampled row, all rows' distributions computed at once."""
        import torch

        rows = [self.rows[i] for i in sampled]
        temperature = torch.tensor([[r.params.temperature] for r in rows], device=scores.device)
        probs = torch.softmax(scores[sampled] / temperature, dim=-1)
        top_p = torch.tensor([[r.params.top_p] for r in rows], device=scores.device)
        order: torch.Tensor | None = None
        if bool((top_p < 1.0).any()):
            # The nucleus nearly always lies within the top few hundred tokens; a top-k is much
            # cheaper than sorting the vocabulary, and exact whenever it holds every row's nucleus.
            top_probs, top_ids = probs.topk(min(_NUCLEUS_CANDIDATES, probs.shape[1]), dim=-1)
            if bool((top_probs.sum(-1, keepdim=True) >= top_p).all()):
                probs, order = top_probs, top_ids
            else:
                probs, order = probs.sort(dim=-1, descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            probs[probs.cumsum(-1) - probs >= top_p] = 0.0
        # Inverse-CDF draws: one uniform number per row from the row's own generator, so a
        # seeded row ignores its batch mates (and this is ~100x faster than per-row multinomial).
        cdf = probs.cumsum(-1)
        u = torch.cat([torch.rand(1, generator=r.generator, device=scores.device) for r in rows])
        picked = torch.searchsorted(cdf, (u.unsqueeze(1) * cdf[:, -1:]), right=True)
        picked = picked.clamp_(max=probs.shape[1] - 1)
        if order is not None:
            picked = order.gather(1, picked)
        chosen[sampled] = picked.squeeze(1)

    def _hit_stop(self, row: _RowState, tail: int) -> bool:
        text = self.tokenizer.decode(row.tokens[-tail:], skip_special_tokens=True)
        return any(s in text for s in row.params.stop)


class TransformersEngine:
    """An `Engine` on Hugging Face transformers, batching concurrent requests into one `generate`."""

    kind = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 32,
        batch_window_ms: float = 5.0,
        seed: int = 0,
    ) -> None:
        if max_batch_size < 1:
            raise EngineError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.model = model
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_ms / 1000.0
        # How many `generate` calls have run: lets callers (and tests) see batching at work.
        self.generate_calls = 0
        self._device = device
        self._dtype = dtype
        self._rng = random.Random(seed)
        self._hf_model: Any = None
        self._tokenizer: Any = None
        # Public adapter name -> name inside the model. A replaced adapter gets a fresh inner
        # name, so the new weights are loaded before the old ones are deleted.
        self._adapters: dict[str, str] = {}
        self._adapter_versions = itertools.count(1)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coevo-transformers")
        self._queue: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._batcher: asyncio.Task[None] | None = None
        self._batcher_loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ----------------------------------------------------------------- Engine protocol

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self._closed:
            raise EngineError("the transformers engine is closed")
        for request in requests:
            _check_request(request)
            if request.adapter is not None and request.adapter not in self._adapters:
                known = ", ".join(sorted(self._adapters)) or "none"
                raise EngineError(f"unknown adapter {request.adapter!r} (loaded: {known})")
        loop = asyncio.get_running_loop()
        wakeup = self._ensure_batcher(loop)
        futures: list[asyncio.Future[GenerationResult]] = []
        for request in requests:
            future: asyncio.Future[GenerationResult] = loop.create_future()
            self._queue.append(_Pending(request, self._seeds_for(request.params), future))
            futures.append(future)
        wakeup.set()
        return list(await asyncio.gather(*futures))

    async def load_adapter(self, name: str, path: str | Path) -> None:
        if self._closed:
            raise EngineError("the transformers engine is closed")
        if not (Path(path) / "adapter_config.json").exists():
            raise EngineError(f"{path} is not a PEFT adapter folder (no adapter_config.json)")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load_adapter_sync, name, str(path))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # A batcher left on another (possibly closed) loop is not ours to touch from here.
        if self._batcher is not None and self._batcher_loop is loop:
            self._batcher.cancel()
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(EngineError("the transformers engine was closed"))
        self._queue.clear()
        await loop.run_in_executor(self._executor, self._unload_sync)
        self._executor.shutdown(wait=False)

    # ----------------------------------------------------------------- batching

    def _seeds_for(self, params: SamplingParams) -> list[int]:
        if params.seed is not None:
            return [_row_seed(params.seed, i) for i in range(params.n)]
        return [self._rng.randrange(_SEED_SPACE) for _ in range(params.n)]

    def _ensure_batcher(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        # One batcher per event loop: an engine shared across loops (tests, notebooks) restarts
        # it on the loop that calls it, since asyncio objects cannot cross loops.
        if self._batcher is None or self._batcher.done() or self._batcher_loop is not loop:
            self._queue = [p for p in self._queue if p.future.get_loop() is loop]
            self._wakeup = asyncio.Event()
            self._batcher_loop = loop
            self._batcher = loop.create_task(
                self._batch_loop(self._wakeup), name="coevo-transformers-batcher"
            )
        assert self._wakeup is not None
        return self._wakeup

    async def _batch_loop(self, wakeup: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await wakeup.wait()
            # Let requests sent in the same instant join this batch.
            await asyncio.sleep(self.batch_window_s)
            adapter, batch = self._take_batch()
            if not self._queue:
                wakeup.clear()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, adapter, batch)
            except Exception as exc:
                error = exc if isinstance(exc, EngineError) else EngineError(f"generation failed: {exc!r}")
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    def _take_batch(self) -> tuple[str | None, list[_Pending]]:
        """The oldest request's adapter, and queued requests on it up to `max_batch_size` rows."""
        self._queue = [p for p in self._queue if not p.future.done()]
        if not self._queue:
            return None, []
        adapter = self._queue[0].request.adapter
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        rows = 0
        for pending in self._queue:
            n = pending.request.params.n
            # A request is never split; one larger than the limit runs on its own.
            if pending.request.adapter == adapter and (not batch or rows + n <= self.max_batch_size):
                batch.append(pending)
                rows += n
            else:
                rest.append(pending)
        self._queue = rest
        return adapter, batch

    # ----------------------------------------------------------------- worker thread

    def _ensure_loaded(self) -> None:
        if self._hf_model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(self.model)
        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=self._dtype)
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load model {self.model!r} from {path}: {exc}") from exc
        if tokenizer.chat_template is None:
            raise EngineError(f"model {self.model!r} has no chat template; the engine speaks chat messages")
        if tokenizer.eos_token_id is None:
            raise EngineError(f"model {self.model!r} has no EOS token")
        self._tokenizer = tokenizer
        self._hf_model = model.to(device).eval()

    def _unload_sync(self) -> None:
        self._hf_model = None
        self._tokenizer = None

    def _load_adapter_sync(self, name: str, path: str) -> None:
        self._ensure_loaded()
        inner = f"{name}@v{next(self._adapter_versions)}"
        try:
            with warnings.catch_warnings():
                # peft warns that a model holding several adapters is unusual; here it is the point.
                warnings.filterwarnings("ignore", message=".*multiple adapters.*")
                self._hf_model.load_adapter(path, adapter_name=inner, hotswap=False)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise EngineError(f"cannot load LoRA adapter {name!r} from {path}: {exc}") from exc
        old = self._adapters.get(name)
        self._adapters[name] = inner
        if old is not None:
            self._hf_model.delete_adapter(old)

    def _select_adapter(self, adapter: str | None) -> None:
        if not self._adapters:
            return
        if adapter is None:
            self._hf_model.disable_adapters()
        else:
            self._hf_model.enable_adapters()
            self._hf_model.set_adapter(self._adapters[adapter])

    def _encode(self, request: GenerationRequest) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            [dict(m) for m in request.messages], tokenize=False, add_generation_prompt=True
        )
        ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def _run_batch(self, adapter: str | None, batch: list[_Pending]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        self._ensure_loaded()
        model, tokenizer = self._hf_model, self._tokenizer
        device = model.device
        prompts = [self._encode(p.request) for p in batch]
        row_prompts: list[list[int]] = []
        rows: list[_RowState] = []
        for pending, prompt in zip(batch, prompts, strict=True):
            for seed in pending.seeds:
                generator = torch.Generator(device=device).manual_seed(seed)
                rows.append(_RowState(pending.request.params, generator))
                row_prompts.append(prompt)
        eos_id = tokenizer.eos_token_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
        width = max(len(p) for p in row_prompts)
        # Left padding keeps every row's last prompt token in the last column, where generation starts.
        input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in row_prompts], device=device)
        attention_mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in row_prompts], device=device
        )
        sampler = _RowSampler(rows, width, eos_id, tokenizer)
        # A fresh config: greedy, nothing from the model's own generation_config (repetition
        # penalties, warpers) that would alter the tokens the sampler picks.
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(r.params.max_tokens for r in rows) + 1,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        self._select_adapter(adapter)
        with torch.inference_mode():
            model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
            )
        self.generate_calls += 1

        results: list[GenerationResult] = []
        row_iter = iter(rows)
        for pending, prompt in zip(batch, prompts, strict=True):
            completions = [self._completion(next(row_iter), eos_id) for _ in range(pending.request.params.n)]
            results.append(
                GenerationResult(
                    completions=tuple(completions),
                    prompt_tokens=len(prompt),
                    completion_tokens=sum(len(c.token_ids) for c in completions),
                )
            )
        return results

    def _completion(self, row: _RowState, eos_id: int) -> Completion:
        text: str = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
        finish = row.finish_reason or "length"
        cuts = [i for i in (text.find(s) for s in row.params.stop) if i >= 0]
        if cuts:
            # Like vLLM and OpenAI: the text ends before the stop string.
            text = text[: min(cuts)]
            finish = "stop"
        return Completion(
            text=text,
            token_ids=tuple(row.tokens),
            finish_reason=finish,
            logprobs=tuple(row.logprobs) if row.params.logprobs else None,
        )
