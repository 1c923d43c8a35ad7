"""Output tokens/s of coevo's engines at several concurrencies, beside raw `vllm.LLM.chat`.

    python benchmarks/engine_throughput.py [--engines vllm,transformers] [--concurrency 1,16,64,256]
                                           [--max-tokens 64] [--model builtin:smollm2-135m-instruct]

At concurrency c, c coroutines each await one request at a time from a shared queue of
max(c, --min-requests) chat prompts (short arithmetic questions, greedy). The baseline is one
`LLM.chat` call on a batch of max(concurrency) of the same prompts, with the engine's vLLM
settings (LoRA enabled), so the ratio shows what the async engine costs over vLLM's own batch
path. Each engine runs in its own subprocess so one's memory and worker processes are gone
before the next starts; an engine that fails to import or start is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from coevo.engines.base import ChatMessage

RAW = "raw-vllm"
PROGRESS = "[bench] "  # marks the worker's progress lines among vLLM's log lines
TRANSFORMERS_MAX_CONCURRENCY = 64  # transformers is slow here; higher levels add nothing but time


def prompts(count: int) -> list[list[ChatMessage]]:
    return [
        [{"role": "user", "content": f"What is {13 + 7 * i % 80} + {5 + 11 * i % 90}? Explain briefly."}]
        for i in range(count)
    ]


def _raw_vllm(model: str, batch: int, max_tokens: int) -> dict[str, Any]:
    from vllm import LLM, SamplingParams

    from coevo.engines.builtin import resolve_model

    started = time.perf_counter()
    # The same settings VLLMEngine uses by default, so only the calling path differs.
    llm = LLM(
        resolve_model(model),
        gpu_memory_utilization=0.3,
        max_model_len=2048,
        enable_lora=True,
        max_lora_rank=16,
        max_loras=4,
        seed=0,
        disable_log_stats=True,
    )
    startup = time.perf_counter() - started
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    # vLLM types messages as OpenAI's message params; ours are the same dicts.
    warmup: Any = prompts(2)
    conversations: Any = prompts(batch)
    llm.chat(warmup, params, use_tqdm=False)
    started = time.perf_counter()
    outputs = llm.chat(conversations, params, use_tqdm=False)
    elapsed = time.perf_counter() - started
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"startup_s": startup, "levels": {str(batch): {"tokens": tokens, "seconds": elapsed}}}


async def _engine_levels(
    kind: str, model: str, levels: list[int], max_tokens: int, min_requests: int
) -> dict[str, Any]:
    from coevo.engines.base import GenerationRequest, SamplingParams
    from coevo.engines.factory import make_engine

    started = time.perf_counter()
    engine = make_engine(kind, model)
    startup = time.perf_counter() - started
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    results: dict[str, Any] = {}
    try:
        await engine.generate([GenerationRequest(messages=m, params=params) for m in prompts(2)])
        for concurrency in levels:
            queue: asyncio.Queue[list[ChatMessage]] = asyncio.Queue()
            for messages in prompts(max(concurrency, min_requests)):
                queue.put_nowait(messages)
            tokens = 0

            async def worker(queue: asyncio.Queue[list[ChatMessage]]) -> None:
                nonlocal tokens
                while not queue.empty():
                    messages = queue.get_nowait()
                    [result] = await engine.generate([GenerationRequest(messages=messages, params=params)])
                    tokens += result.completion_tokens

            started = time.perf_counter()
            await asyncio.gather(*(worker(queue) for _ in range(concurrency)))
            results[str(concurrency)] = {"tokens": tokens, "seconds": time.perf_counter() - started}
            print(
                f"{PROGRESS}{kind} c={concurrency}: {tokens / results[str(concurrency)]['seconds']:.1f} tok/s"
            )
    finally:
        await engine.close()
    return {"startup_s": startup, "levels": results}


def _worker(args: argparse.Namespace) -> None:
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.worker == RAW:
        result = _raw_vllm(args.model, max(levels), args.max_tokens)
    else:
        if args.worker == "transformers":
            levels = [c for c in levels if c <= TRANSFORMERS_MAX_CONCURRENCY] or levels[:1]
        result = asyncio.run(
            _engine_levels(args.worker, args.model, levels, args.max_tokens, args.min_requests)
        )
    Path(args.result_file).write_text(json.dumps(result))


def _run_worker(name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--worker", name, "--result-file", str(out)]
        cmd += ["--concurrency", args.concurrency, "--max-tokens", str(args.max_tokens)]
        cmd += ["--model", args.model, "--min-requests", str(args.min_requests)]
        print(f"running {name} ...", flush=True)
        log = Path(tmp) / "log.txt"
        with log.open("w") as log_file:
            proc = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT)
        if proc.returncode != 0 or not out.exists():
            tail = log.read_text().strip().splitlines()[-5:]
            print(f"  skipped {name} (exit {proc.returncode}):\n    " + "\n    ".join(tail))
            return None
        for line in log.read_text().splitlines():
            if line.startswith(PROGRESS):
                print("  " + line.removeprefix(PROGRESS))
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--engines", default="vllm,transformers", help="comma-separated engine kinds")
    parser.add_argument("--concurrency", default="1,16,64,256", help="comma-separated levels")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--min-requests", type=int, default=16, help="requests per level at least")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    raw = _run_worker(RAW, args)
    raw_rate = None
    if raw is not None:
        [(batch, level)] = raw["levels"].items()
        raw_rate = level["tokens"] / level["seconds"]
        print(
            f"{RAW:>14}  LLM.chat batch {batch}: {raw_rate:8.1f} tok/s  (start-up {raw['startup_s']:.0f} s)"
        )
    for kind in args.engines.split(","):
        result = _run_worker(kind, args)
        if result is None:
            continue
        print(f"{kind:>14}  start-up {result['startup_s']:.0f} s")
        for concurrency, level in result["levels"].items():
            rate = level["tokens"] / level["seconds"]
            ratio = f"{rate / raw_rate:.2f}x raw" if raw_rate else "n/a"
            print(f"{'':>14}  c={concurrency:>4}: {rate:8.1f} tok/s  {ratio}")


if __name__ == "__main__":
    main()
