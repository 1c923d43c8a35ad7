"""How fast `VLLMEngine` serves a LoRA policy: vLLM's own LoRA ("adapter") versus the adapter
merged into the weights ("merged"), beside the base model, measured in one run.

    python benchmarks/lora_serving.py [--requests 16] [--n 4] [--max-tokens 64]

A demo-shaped workload: `--requests` arithmetic chat prompts sent at once, each sampling `--n`
answers (temperature 0.7, seeded), at most `--max-tokens` new tokens, with a rank-16 adapter on
all seven projections (what coevo's trainers save; small random weights, so the text stays
arithmetic-like). Each serving mode runs in its own subprocess (its own vLLM start-up); the
figures are output tokens/s and each mode's adapter throughput as a ratio to its own base-model
throughput. The adapter is built once, before either mode starts.
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

PROGRESS = "[bench] "
MODES = ("adapter", "merged")


def make_adapter(model: str, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from coevo.engines.builtin import resolve_model
    from coevo.trainers.common import DEFAULT_TARGET_MODULES

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(model), dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, target_modules=DEFAULT_TARGET_MODULES, init_lora_weights=False)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.01)  # a nudge, like a few training steps, not a different model
    peft_model.save_pretrained(str(out))


async def _measure(
    model: str, mode: str, adapter: str, requests: int, n: int, max_tokens: int
) -> dict[str, Any]:
    from coevo.engines.base import GenerationRequest, SamplingParams
    from coevo.engines.vllm_engine import VLLMEngine

    started = time.perf_counter()
    engine = VLLMEngine(model, lora_serving=mode)  # type: ignore[arg-type]
    result: dict[str, Any] = {"mode": mode, "startup_s": round(time.perf_counter() - started, 1)}
    try:
        started = time.perf_counter()
        await engine.load_adapter("bench", adapter)
        result["load_adapter_s"] = round(time.perf_counter() - started, 2)

        def batch(policy: str | None) -> list[GenerationRequest]:
            return [
                GenerationRequest(
                    messages=[{"role": "user", "content": f"What is {13 + 7 * i % 80} + {5 + 11 * i % 90}?"}],
                    params=SamplingParams(n=n, temperature=0.7, max_tokens=max_tokens, seed=i),
                    adapter=policy,
                )
                for i in range(requests)
            ]

        await engine.generate(batch(None)[:2])  # warm-up
        for label, policy in (("base", None), ("policy", "bench")):
            started = time.perf_counter()
            outputs = await engine.generate(batch(policy))
            seconds = time.perf_counter() - started
            tokens = sum(o.completion_tokens for o in outputs)
            result[label] = {
                "seconds": round(seconds, 2),
                "tokens": tokens,
                "tok_s": round(tokens / seconds, 1),
            }
            print(
                f"{PROGRESS}{mode} {label}: {tokens} tokens in {seconds:.1f} s", file=sys.stderr, flush=True
            )
    finally:
        await engine.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description="vLLM LoRA serving: adapter vs merged weights.")
    parser.add_argument("--model", default="builtin:smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # MODE:ADAPTER:OUT
    args = parser.parse_args()
    if args.worker:
        mode, adapter, out = args.worker.split(":", 2)
        result = asyncio.run(_measure(args.model, mode, adapter, args.requests, args.n, args.max_tokens))
        Path(out).write_text(json.dumps(result))
        return
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        adapter = Path(scratch) / "adapter"
        make_adapter(args.model, adapter)
        for mode in MODES:
            out = Path(scratch) / f"{mode}.json"
            command = [sys.executable, __file__, "--worker", f"{mode}:{adapter}:{out}"]
            command += ["--model", args.model, "--requests", str(args.requests), "--n", str(args.n)]
            command += ["--max-tokens", str(args.max_tokens)]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            results.append(json.loads(out.read_text()))
    header = ("mode", "start-up s", "load s", "base tok/s", "policy tok/s", "policy/base")
    print("  ".join(f"{h:>12}" for h in header))
    for r in results:
        ratio = r["policy"]["tok_s"] / r["base"]["tok_s"]
        row = (r["mode"], r["startup_s"], r["load_adapter_s"], r["base"]["tok_s"], r["policy"]["tok_s"])
        print("  ".join(f"{v:>12}" for v in row) + f"  {ratio:>11.2f}x")
    adapter_mode, merged_mode = results
    speedup = merged_mode["policy"]["tok_s"] / adapter_mode["policy"]["tok_s"]
    print(f"merged vs adapter serving of the same policy: {speedup:.2f}x output tok/s")


if __name__ == "__main__":
    main()
