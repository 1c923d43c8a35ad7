"""Start-up time and generation speed of `VLLMEngine` per compilation setting, with a cold and
a warm compile cache.

    python benchmarks/vllm_startup.py [--options eager,compiled,compiled-aot]
                                      [--requests 64] [--max-tokens 64] [--lora-serving merged]

Each option is started twice in its own subprocess, both times with the same fresh cache folders
(`VLLM_CACHE_ROOT`, `TORCHINDUCTOR_CACHE_DIR`): the first start finds them empty (cold, as on a
fresh machine), the second finds what the first wrote (warm, as on every later run). After each
start the worker sends `--requests` short arithmetic chats at once (greedy, at most
`--max-tokens` new tokens), twice, and reports output tokens/s of the faster round; then it sends
one seeded request (4 samples at temperature 1.0) 5 times and counts the repeats that match the
first. From the worker's vLLM log: how long compiling took and whether the compile cache loaded.

Options:
- eager: `enforce_eager=True` (plain PyTorch, nothing to compile).
- compiled: coevo's default (`enforce_eager=False`): Dynamo traces the model once and Inductor
  compiles it to C++, with vLLM's AOT compile cache off (Inductor's own caches only).
- compiled-aot: the same with `VLLM_USE_AOT_COMPILE=1`, vLLM's own CPU setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROGRESS = "[bench] "  # marks the worker's progress lines among vLLM's log lines
REPLAYS = 5  # sends of one seeded request (n=4, temperature 1.0) per start
# option name → (VLLMEngine options, environment for the worker)
OPTIONS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "eager": ({"enforce_eager": True}, {}),
    "compiled": ({"enforce_eager": False}, {}),
    "compiled-aot": ({"enforce_eager": False}, {"VLLM_USE_AOT_COMPILE": "1"}),
}
# What vLLM's compilation code logs about its AOT cache, first match wins.
CACHE_LOG = {
    "Directly load AOT compilation": "AOT cache loaded",
    "Compiling model again due to a load failure": "AOT cache failed to load",
    "saved AOT compiled function": "AOT cache saved",
}
# The worker's compile step starts and ends with these lines (none in eager mode).
COMPILE_START = "Warming up model for the compilation"
COMPILE_END = "Warming up done"
TIMESTAMP = re.compile(r"\d\d-\d\d (\d\d):(\d\d):(\d\d)")


async def _measure(
    model: str, option: str, requests: int, max_tokens: int, lora_serving: str
) -> dict[str, Any]:
    from coevo.engines.base import GenerationRequest, SamplingParams
    from coevo.engines.vllm_engine import VLLMEngine

    started = time.perf_counter()
    engine = VLLMEngine(model, lora_serving=lora_serving, **OPTIONS[option][0])  # type: ignore[arg-type]
    result: dict[str, Any] = {"startup_s": time.perf_counter() - started}
    try:
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        batch = [
            GenerationRequest(
                messages=[{"role": "user", "content": f"What is {13 + 7 * i % 80} + {5 + 11 * i % 90}?"}],
                params=params,
            )
            for i in range(requests)
        ]
        await engine.generate(batch[:2])  # warm-up: the first batch pays one-time allocations
        rounds = []
        for _ in range(2):
            started = time.perf_counter()
            outputs = await engine.generate(batch)
            seconds = time.perf_counter() - started
            rounds.append(sum(o.completion_tokens for o in outputs) / seconds)
        # The faster round: on a shared machine the slower one mostly measures the neighbours.
        result["tok_s"] = max(rounds)
        # coevo seeds its sampled attempts so a run can be replayed: the same seeded request
        # must give the same samples every time it is sent.
        seeded = GenerationRequest(
            messages=[{"role": "user", "content": "What is 17 + 25?"}],
            params=SamplingParams(n=4, temperature=1.0, seed=7, max_tokens=24),
        )
        samples = [[c.text for c in (await engine.generate([seeded]))[0].completions] for _ in range(REPLAYS)]
        result["reproducible"] = sum(s == samples[0] for s in samples[1:])
        print(f"{PROGRESS}{option}: start-up {result['startup_s']:.1f} s, {rounds} tok/s", file=sys.stderr)
    finally:
        await engine.close()
    return result


def _compile_report(log: str) -> str:
    """Seconds between the worker's compile log lines (1 s resolution), and the AOT cache's fate."""
    lines = log.splitlines()
    start = next((line for line in lines if COMPILE_START in line), None)
    end = next((line for line in lines if COMPILE_END in line), None)
    if start is None or end is None:
        return "no compilation"
    seconds = [
        sum(int(v) * f for v, f in zip(m.groups(), (3600, 60, 1), strict=True))
        for m in map(TIMESTAMP.search, (start, end))
        if m
    ]
    cache = next((label for needle, label in CACHE_LOG.items() if needle in log), "no AOT cache")
    took = f"{seconds[1] - seconds[0]} s" if len(seconds) == 2 else "?"
    return f"compiled in {took}, {cache}"


def _run_worker(args: argparse.Namespace, option: str, cache: Path, out: Path, log: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "VLLM_CACHE_ROOT": str(cache / "vllm"),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
        **OPTIONS[option][1],
    }
    command = [sys.executable, __file__, "--worker", f"{option}:{out}", "--model", args.model]
    command += ["--requests", str(args.requests), "--max-tokens", str(args.max_tokens)]
    command += ["--lora-serving", args.lora_serving]
    with log.open("w") as handle:
        subprocess.run(command, check=True, env=env, stdout=handle, stderr=subprocess.STDOUT)
    result: dict[str, Any] = json.loads(out.read_text())
    result["compile"] = _compile_report(log.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="VLLMEngine start-up and tok/s per compilation setting.")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--lora-serving", default="merged", choices=["merged", "adapter"])
    parser.add_argument("--keep-logs", default=None, help="folder to copy the workers' vLLM logs into")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # OPTION:OUT
    args = parser.parse_args()
    if args.worker:
        option, out = args.worker.split(":", 1)
        result = asyncio.run(_measure(args.model, option, args.requests, args.max_tokens, args.lora_serving))
        Path(out).write_text(json.dumps(result))
        return
    options = [o for o in args.options.split(",") if o]
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        parser.error(f"unknown options {unknown}; known: {', '.join(OPTIONS)}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for option in options:
            cache = Path(scratch) / option
            for state in ("cold", "warm"):
                name = f"{option}-{state}"
                log = Path(scratch) / f"{name}.log"
                result = _run_worker(args, option, cache, Path(scratch) / f"{name}.json", log)
                rows.append((option, state, result))
                print(f"{PROGRESS}{name}: {result}", file=sys.stderr, flush=True)
                if args.keep_logs:
                    Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                    # Drop terminal colour codes so the copies read as plain text.
                    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())
                    (Path(args.keep_logs) / log.name).write_text(text)
    print(f"{'option':<14} {'cache':<5} {'start-up s':>10} {'tok/s':>8} {'same samples':>12}  compilation")
    for option, state, r in rows:
        same = f"{r['reproducible']}/{REPLAYS - 1}"
        print(
            f"{option:<14} {state:<5} {r['startup_s']:>10.1f} {r['tok_s']:>8.1f} {same:>12}  {r['compile']}"
        )


if __name__ == "__main__":
    main()
