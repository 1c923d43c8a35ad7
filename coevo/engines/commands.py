"""The `coevo models` and `coevo generate` commands (the parsers live in coevo/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time

from coevo.engines.base import EngineError, GenerationRequest, SamplingParams
from coevo.engines.builtin import BUILTIN_PREFIX, BUILTINS, cached_models, models_dir


def models_command(args: argparse.Namespace) -> int:
    print("Built-in models:")
    for spec in BUILTINS.values():
        installed = importlib.util.find_spec(spec.package) is not None
        converted = (models_dir() / spec.name / "config.json").exists()
        if converted:
            state = "converted"
        elif installed:
            state = "installed (converted on first use)"
        else:
            state = f"not installed: {spec.pip_install}"
        print(f"  {BUILTIN_PREFIX}{spec.name:<28} {state}")
        print(f"    {spec.description}")
    folders = cached_models()
    print(f"Cached model folders in {models_dir()}:" if folders else f"No cached models in {models_dir()}")
    for folder in folders:
        print(f"  {folder}")
    return 0


def generate_command(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_generate(args))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _generate(args: argparse.Namespace) -> int:
    from coevo.engines.factory import make_engine, resolve_kind

    kind, reason = resolve_kind(args.engine)
    options = {"base_url": args.base_url} if kind == "openai" and args.base_url else {}
    print(f"engine: {kind} ({reason}), model: {args.model}", flush=True)
    engine = make_engine(kind, args.model, **options)
    request = GenerationRequest(
        messages=[{"role": "user", "content": args.prompt}],
        params=SamplingParams(
            n=args.n, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed
        ),
    )
    try:
        started = time.perf_counter()
        [result] = await engine.generate([request])
        elapsed = time.perf_counter() - started
    finally:
        await engine.close()
    for index, completion in enumerate(result.completions):
        print(f"--- completion {index + 1}/{len(result.completions)} ({completion.finish_reason})")
        print(completion.text)
    rate = result.completion_tokens / elapsed if elapsed > 0 else 0.0
    print(
        f"--- {kind}: {result.prompt_tokens} prompt + {result.completion_tokens} completion tokens "
        f"in {elapsed:.2f} s ({rate:.1f} tokens/s)"
    )
    return 0
