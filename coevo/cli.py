"""The `coevo` command line. Heavy imports (torch, vllm, trl, textual) happen inside commands,
so `coevo --help` is instant; each command's implementation lives in the package that owns it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _models(args: argparse.Namespace) -> int:
    from coevo.engines.commands import models_command

    return models_command(args)


def _generate(args: argparse.Namespace) -> int:
    from coevo.engines.commands import generate_command

    return generate_command(args)


def _check(args: argparse.Namespace) -> int:
    from coevo.society.commands import check_command

    return check_command(args)


def _run(args: argparse.Namespace) -> int:
    from coevo.society.commands import run_command

    return run_command(args)


def _runs(args: argparse.Namespace) -> int:
    from coevo.society.commands import runs_command

    return runs_command(args)


def _demo(args: argparse.Namespace) -> int:
    from coevo.society.commands import demo_command

    return demo_command(args)


def _eval(args: argparse.Namespace) -> int:
    from coevo.tasks.commands import eval_command

    return eval_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coevo",
        description="Multi-agent co-evolution simulator for language models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    add(
        "models",
        _models,
        "List built-in and cached models.",
    )

    p = add("generate", _generate, "Generate a chat completion with an engine (a smoke test of inference).")
    p.add_argument("prompt", help="user message")
    p.add_argument("--engine", default="auto", help="auto | vllm | transformers | openai (default: auto)")
    p.add_argument(
        "--model", default="builtin:smollm2-135m-instruct", help="builtin name, local path or hub id"
    )
    p.add_argument("--base-url", default=None, help="server URL for --engine openai")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("-n", type=int, default=1, help="samples per prompt")
    p.add_argument("--seed", type=int, default=0)

    p = add("check", _check, "Validate a society config and its role graph without running it.")
    p.add_argument("config", help="YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    p = add("run", _run, "Run a society.")
    p.add_argument("config", nargs="?", default=None, help="YAML file (omit with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", default=None, help="where to write the run (default: runs/<name>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last round")
    p.add_argument("--force", action="store_true", help="overwrite a run directory that already holds a run")
    p.add_argument("--no-tui", action="store_true", help="plain progress output even on a terminal")

    p = add("runs", _runs, "List runs with their status and last committed round.")
    p.add_argument("--root", default="runs", help="directory holding run directories (default: runs)")

    p = add(
        "demo",
        _demo,
        "Run the demo society (configs/demo.yaml) on the built-in model, then compare the Solver's "
        "held-out accuracy before and after training.",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", default=None, help="default: runs/demo (overwritten)")
    p.add_argument("--eval-limit", type=int, default=300, help="held-out problems per policy (default 300)")

    p = add("eval", _eval, "Evaluate an agent's policy on a dataset; prints accuracy with a 95%% CI.")
    p.add_argument("--run", default=None, help="run directory (its engine config and adapters are used)")
    p.add_argument("--agent", default="solver")
    p.add_argument("--policy", default="latest", help="base | latest | VERSION")
    p.add_argument("--dataset", default="procedural-heldout", help="name or path (JSONL)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--model", default="builtin:smollm2-135m-instruct", help="model when --run is not given")
    p.add_argument("--engine", default="auto")
    p.add_argument(
        "--skills",
        default=None,
        help="comma-separated skills of the procedural set (with --run: default the run's curriculum skills)",
    )
    p.add_argument(
        "--levels",
        default=None,
        metavar="DIM=LOW-HIGH,...",
        help="difficulty bounds of the procedural set, e.g. digits=1-3,steps=1-2 "
        "(with --run: default the run's curriculum levels)",
    )
    p.add_argument("--max-tokens", type=int, default=256, help="generation limit per answer (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # vLLM logs every engine step at INFO, and at WARNING a line per tensor each time merged
    # weights are swapped in (fp32 checkpoint into bf16 parameters, as intended): errors only,
    # unless the user asks for more.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("coevo").setLevel(logging.INFO)  # e.g. which engine `auto` picked
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
