"""Engine fixtures: one in-process vLLM engine per test session (it takes tens of seconds to start),
a second LoRA adapter with different weights for testing adapter replacement, and a milder one."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from coevo.engines.vllm_engine import VLLMEngine


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=["merged", "adapter"])
async def vllm_engine(
    builtin_model_path: str, vllm_works: None, request: pytest.FixtureRequest
) -> AsyncIterator[VLLMEngine]:
    """The built-in model on vLLM, shared by every test in the session. Without a working vLLM its
    tests fail (`vllm_works`: setup installs vLLM, so a silent skip would hide a broken install).
    Every test runs once per way of serving LoRA policies (merged weights, vLLM LoRA); pytest
    finishes every test of one mode, closing its engine, before it starts the other's.

    It is bound to the session event loop: tests using it need
    `@pytest.mark.asyncio(loop_scope="session")`.
    """
    engine = VLLMEngine(builtin_model_path, lora_serving=request.param)
    yield engine
    await engine.close()


@pytest.fixture(scope="session")
def second_lora_adapter(lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `lora_adapter` fixture with its B matrices negated: same shape, different output."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("lora2") / "adapter"
    shutil.copytree(lora_adapter, out)
    weights_file = out / "adapter_model.safetensors"
    weights = load_file(weights_file)
    save_file({k: (-v if "lora_B" in k else v) for k, v in weights.items()}, weights_file)
    return out


@pytest.fixture(scope="session")
def mild_lora_adapter(lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `lora_adapter` fixture with its B matrices quartered: it still changes the built-in model's
    greedy answers, but into sentences (the full-strength adapter makes it repeat one token)."""
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("lora-mild") / "adapter"
    shutil.copytree(lora_adapter, out)
    weights_file = out / "adapter_model.safetensors"
    weights = load_file(weights_file)
    save_file({k: (v / 4 if "lora_B" in k else v) for k, v in weights.items()}, weights_file)
    return out
