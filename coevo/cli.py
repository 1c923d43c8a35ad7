"""The `coevo` command line. Heavy imports (torch, vllm, trl, textual) happen inside commands,
so `coevo --help` is instant; each command's implementation lives in the package that owns it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from coevo.society.logs import terminal_handler

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


def _roles(args: argparse.Namespace) -> int:
    from coevo.society.docs import roles_command

    return roles_command(args)


def _on_terminal() -> bool:
    streams = (sys.stdin, sys.stdout, sys.stderr)
    return all(s is not None and s.isatty() for s in streams) and os.environ.get("TERM") != "dumb"


def _run(args: argparse.Namespace) -> int:
    from coevo.society.commands import run_command

    if args.no_tui or not _on_terminal():
        return run_command(args)
    # The command line picks the front end; the society never imports the TUI.
    from coevo.tui.live import run_with_tui

    return run_command(args, front=run_with_tui)


def _watch(args: argparse.Namespace) -> int:
    from coevo.tui.commands import watch_command

    return watch_command(args)


def _show(args: argparse.Namespace) -> int:
    from coevo.tui.show import show_command

    return show_command(args)


def _runs(args: argparse.Namespace) -> int:
    from coevo.society.commands import runs_command

    return runs_command(args)


def _demo(args: argparse.Namespace) -> int:
    from coevo.society.commands import demo_command

    return demo_command(args)


def _eval(args: argparse.Namespace) -> int:
    from coevo.society.eval_command import eval_command

    return eval_command(args)


def _export(args: argparse.Namespace) -> int:
    from coevo.export.command import export_command

    return export_command(args)


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
    p.add_argument(
        "--determinism",
        action="store_true",
        help="also run it twice with its seed, each run in a process of its own with the trainers on, "
        "and compare every record",
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds of each --determinism run (default 2)")
    p.add_argument(
        "--engine",
        choices=("replay", "transformers"),
        default="replay",
        help="what generates in the --determinism runs: the replay test double (no model needed to "
        "generate; default) or the transformers engine on each engine's model",
    )

    p = add(
        "roles",
        _roles,
        "List the roles (what each handles and answers), message types, edge conditions and trainer kinds.",
    )
    p.add_argument("--markdown", action="store_true", help="as the README's tables")

    p = add("run", _run, "Run a society.")
    p.add_argument("config", nargs="?", default=None, help="YAML file (omit with --resume)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", default=None, help="where to write the run (default: runs/<name>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a run from its last round")
    p.add_argument("--force", action="store_true", help="overwrite a run directory that already holds a run")
    p.add_argument("--no-tui", action="store_true", help="plain progress output even on a terminal")

    p = add(
        "watch",
        _watch,
        "Watch a run in a terminal UI: one going on in another process, or a finished or interrupted one.",
    )
    p.add_argument("target", metavar="RUN_DIR|DB_URL", help="a run directory, or the memory's database URL")
    p.add_argument("--run-id", default=None, help="which run of a database holding several (default: newest)")
    p.add_argument("--web", type=int, default=None, metavar="PORT", help="serve the UI to a browser on PORT")
    p.add_argument("--host", default="localhost", help="address --web listens on (default: localhost)")
    # `coevo run`'s own UI (coevo.tui.live): the pid of the process running the run, which quitting
    # mid-run stops after a confirmation. Not for users: they stop a run where it runs.
    p.add_argument("--attached", type=int, default=None, help=argparse.SUPPRESS)

    p = add("show", _show, "Print a run's messages as text or JSON lines, without a UI.")
    p.add_argument("run", metavar="RUN", help="a run directory, or the memory's database URL")
    p.add_argument("--run-id", default=None, help="which run of a database holding several (default: newest)")
    p.add_argument("--round", type=int, default=None, metavar="R", help="only round R")
    p.add_argument("--agent", default=None, metavar="A", help="only messages from or to agent A")
    p.add_argument(
        "--type", dest="types", action="append", default=[], metavar="T", help="only this type (repeatable)"
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the last N that match")
    p.add_argument("--json", action="store_true", help="one JSON object per line (the event, its row id)")

    p = add("runs", _runs, "List runs with their status and last committed round.")
    p.add_argument("--root", default="runs", help="directory holding run directories (default: runs)")

    p = add(
        "demo",
        _demo,
        "Run the demo society (configs/demo.yaml) on the built-in model for one or more seeds, then "
        "compare the Solver's held-out accuracy after training with the base model, zero- and few-shot.",
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", default=None, help="folder for the runs (default: runs; overwritten)")
    p.add_argument("--eval-limit", type=int, default=300, help="held-out problems per policy (default 300)")
    p.add_argument("--seeds", type=int, default=1, help="repeats with seeds seed, seed+1, ... (default 1)")
    p.add_argument(
        "--fewshot", type=int, default=4, help="worked examples for the few-shot baseline (0: none)"
    )
    p.add_argument(
        "--static",
        action="store_true",
        help="also run configs/demo_static.yaml per seed (adaptive vs static)",
    )
    p.add_argument("--gsm8k", type=int, default=0, help="also evaluate on the first N GSM8K test problems")

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

    p = add(
        "export",
        _export,
        "Export a run's data as a Hub dataset folder (data files and a dataset card) that TRL trains on.",
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="the run directory")
    p.add_argument(
        "--kind",
        required=True,
        help="curriculum | sft | dpo | grpo | kto | generator | lbt | coach",
    )
    p.add_argument("--format", default="hf", help="hf (parquet shards, default) | parquet | jsonl")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="the folder to write (must not exist, or --force)"
    )
    p.add_argument("--rounds", default=None, metavar="A-B", help="only these rounds (default: all)")
    p.add_argument("--as-of-round", type=int, default=None, metavar="R", help="the memory as round R left it")
    p.add_argument("--skills", default=None, metavar="S,...", help="only problems with one of these skills")
    p.add_argument(
        "--zones",
        default=None,
        metavar="Z,...",
        help="only problems in these zones: mastered, learning, "
        "too_hard, unattempted (over the selected attempts)",
    )
    p.add_argument("--success", default=None, metavar="MIN-MAX", help="only problems with this success rate")
    p.add_argument("--policy", default=None, metavar="V,...", help="only attempts by these policy versions")
    p.add_argument("--agent", default=None, help="whose data (default: the agent the kind's trainer trains)")
    p.add_argument(
        "--decontaminate",
        action="append",
        default=[],
        metavar="PATH",
        help="also remove problems of this evaluation JSONL (repeatable)",
    )
    p.add_argument("--keep-duplicates", action="store_true", help="keep exact and near duplicates")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # vLLM logs every engine step at INFO, and at WARNING a line per tensor each time merged
    # weights are swapped in (fp32 checkpoint into bf16 parameters, as intended): errors only,
    # unless the user asks for more.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    logging.basicConfig(level=logging.WARNING, handlers=[terminal_handler()])
    logging.getLogger("coevo").setLevel(logging.INFO)  # e.g. which engine `auto` picked
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `coevo roles | head`: the reader left; nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
