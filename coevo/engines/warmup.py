"""`python -m coevo.engines.warmup`: prepare the built-in model once, at setup time.

It converts the built-in GGUF into the safetensors folder the engines load, and starts the vLLM
engine once so that vLLM's compile cache is warm: on CPU the first start of an engine compiles the
model (about a minute, with Inductor), and later starts reuse that cache (about 35 s;
benchmarks/vllm_startup.py measures both). `make setup` runs it, so the first `make demo` starts
warm.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from coevo.engines.base import EngineError, GenerationRequest, SamplingParams
from coevo.engines.builtin import DEFAULT_MODEL, resolve_model


async def _warm() -> float:
    from coevo.engines.vllm_engine import VLLMEngine

    started = time.perf_counter()
    engine = VLLMEngine(DEFAULT_MODEL, gpu_memory_utilization=0.3)
    try:
        request = GenerationRequest(
            [{"role": "user", "content": "What is 2 + 3?"}], SamplingParams(max_tokens=8)
        )
        await engine.generate([request])
    finally:
        await engine.close()
    return time.perf_counter() - started


def main() -> int:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its INFO lines would bury the setup log
    print(f"converting the built-in model: {resolve_model(DEFAULT_MODEL)}", flush=True)
    try:
        seconds = asyncio.run(_warm())
    except EngineError as exc:
        print(f"vLLM warm-up: {exc}", file=sys.stderr)
        return 1
    print(f"vLLM started, generated and stopped in {seconds:.0f} s; its compile cache is warm", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
