"""Handlers of the society commands: `coevo check`, `coevo run`, `coevo runs`, `coevo demo`.
Each prints a clear message and returns an exit code instead of raising on bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from coevo.society.check import EXIT_INVALID, check_command

if TYPE_CHECKING:
    from coevo.engines.base import Engine
    from coevo.society.bus import EventBus
    from coevo.society.config import SocietyConfig
    from coevo.society.session import RunOutcome
    from coevo.tasks.problem import Problem

# A front end that shows a run as it goes (the TUI: the command line hands it in, the society never
# imports it). Called with the config, the run directory and the function that runs the society on
# an event bus, it runs that to the end and returns the outcome (KeyboardInterrupt if stopped).
RunFront = Callable[["SocietyConfig", Path, Callable[["EventBus"], Awaitable["RunOutcome"]]], "RunOutcome"]

__all__ = ["check_command", "demo_command", "run_command", "runs_command"]


def run_command(args: argparse.Namespace, front: RunFront | None = None) -> int:
    from coevo.engines.base import EngineError
    from coevo.memory.errors import StoreError
    from coevo.society.check import load_for_cli
    from coevo.society.config_errors import ConfigError
    from coevo.society.errors import RunError
    from coevo.society.secrets import SecretError, redact
    from coevo.society.session import RunDirError, default_run_dir, load_snapshot

    try:
        if args.resume:
            run_dir = Path(args.resume)
            config = load_snapshot(run_dir, list(args.overrides))
        elif args.config is None:
            print("coevo run: give a CONFIG, or --resume RUN_DIR", file=sys.stderr)
            return EXIT_INVALID
        else:
            config = load_for_cli(args.config, list(args.overrides))
            run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
        overrides = list(args.overrides) if args.resume else []
        return _run(
            config, run_dir, resume=bool(args.resume), force=args.force, overrides=overrides, front=front
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except (RunDirError, EngineError, SecretError, StoreError) as exc:
        # The config's secrets masked, whatever quoted them (a server echoing a key, a driver a URL).
        print(f"coevo run: {redact(str(exc))}", file=sys.stderr)
        return EXIT_INVALID
    except RunError as exc:
        print(f"coevo run: {redact(str(exc))}", file=sys.stderr)
        return 1


def _run(
    config: object,
    run_dir: Path,
    *,
    resume: bool,
    force: bool,
    overrides: list[str],
    front: RunFront | None = None,
) -> int:
    from coevo.society.config import SocietyConfig
    from coevo.society.session import run_society

    assert isinstance(config, SocietyConfig)
    if front is None:
        asyncio.run(_run_society(config, run_dir, resume=resume, force=force, overrides=overrides))
        return 0

    def start(bus: EventBus) -> Awaitable[RunOutcome]:
        return run_society(config, run_dir, resume=resume, force=force, bus=bus, overrides=overrides)

    _report(config, run_dir, front(config, run_dir, start))
    return 0


async def _run_society(
    config: SocietyConfig,
    run_dir: Path,
    *,
    resume: bool,
    force: bool,
    engines: dict[str, Engine] | None = None,
    overrides: list[str] | None = None,
) -> None:
    """Run with a progress display, then print each round's accuracy and throughput."""
    from coevo.society.bus import EventBus
    from coevo.society.progress import RunProgress
    from coevo.society.session import run_society

    bus = EventBus()
    print(f"run directory: {run_dir}", file=sys.stderr)
    with RunProgress(config.schedule.rounds) as progress:
        bus.listen(progress)
        outcome = await run_society(
            config, run_dir, resume=resume, force=force, bus=bus, engines=engines, overrides=overrides
        )
    _report(config, run_dir, outcome)


def _report(config: SocietyConfig, run_dir: Path, outcome: RunOutcome) -> None:
    """Each round's accuracy and throughput, once the run is over."""
    from coevo.messages import accuracy_text

    if outcome.already_finished:
        print(
            f"run {outcome.run_id} already finished all {config.schedule.rounds} rounds; nothing to do "
            f"(to go on: coevo run --resume {run_dir} --set schedule.rounds=N)"
        )
        return
    for report in outcome.reports:
        print(
            f"round {report.round}: {accuracy_text(report.correct, report.attempts, report.ungraded)}, "
            f"{report.tokens / max(report.seconds, 1e-9):.0f} tok/s"
        )
    print(f"run {outcome.run_id} finished; results in {run_dir}")


def runs_command(args: argparse.Namespace) -> int:
    from coevo.memory.errors import StoreError
    from coevo.memory.journal import liveness
    from coevo.memory.store import DB_NAME, Store

    root = Path(args.root)
    if root.exists() and not root.is_dir():
        print(f"coevo runs: {root} is a file, not a folder of runs", file=sys.stderr)
        return EXIT_INVALID
    dbs = sorted(root.glob(f"*/{DB_NAME}")) if root.exists() else []
    if not dbs:
        print(f"no runs under {root}/")
        return 0
    print(f"{'run directory':<32} {'status':<12} {'rounds':>8}  last accuracy")
    for db in dbs:
        try:
            store = Store.for_run_dir(db.parent)
        except StoreError as exc:  # one bad folder must not hide the others
            print(f"{db.parent!s:<32} {'unreadable':<12} {'-':>8}  {exc}")
            continue
        try:
            for run in store.list_runs():
                total = json.loads(run.config_json).get("schedule", {}).get("rounds", "?")
                summary = store.rounds_summary(run.id)
                accuracy = f"{summary[-1].accuracy:.1%}" if summary else "-"
                done = f"{run.last_round + 1}/{total}"
                status = liveness(run)
                hint = f"  (coevo run --resume {db.parent})" if status == "interrupted" else ""
                print(f"{db.parent!s:<32} {status:<12} {done:>8}  {accuracy}{hint}")
        finally:
            store.close()
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """The demo society for one or more seeds, then the Solver's held-out accuracy against its
    baselines (coevo.society.demo)."""
    from coevo.engines.base import EngineError
    from coevo.society.config_errors import ConfigError
    from coevo.society.demo import DEMO_CONFIG, STATIC_CONFIG
    from coevo.society.errors import RunError
    from coevo.society.loading import load_config
    from coevo.society.secrets import redact
    from coevo.society.session import RunDirError
    from coevo.tasks.loaders import DatasetError, load_dataset_spec

    try:
        config = load_config(DEMO_CONFIG, list(args.overrides))
        static = load_config(STATIC_CONFIG, list(args.overrides)) if args.static else None
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    if args.seeds < 1 or args.fewshot < 0 or args.gsm8k < 0:
        print("coevo demo: --seeds must be >= 1, --fewshot and --gsm8k >= 0", file=sys.stderr)
        return EXIT_INVALID
    seeds = [config.seed + i for i in range(args.seeds)]
    run_root = Path(args.run_dir) if args.run_dir else Path("runs")
    try:
        # Before any engine starts: a missing dataset is an error in seconds, not after the baselines.
        gsm8k = load_dataset_spec("gsm8k", "test", args.gsm8k) if args.gsm8k else []
        table = asyncio.run(_demo(config, static, seeds, run_root, gsm8k, args))
    except (EngineError, RunDirError, DatasetError) as exc:
        print(f"coevo demo: {redact(str(exc))}", file=sys.stderr)
        return EXIT_INVALID
    except RunError as exc:
        print(f"coevo demo: {redact(str(exc))}", file=sys.stderr)
        return 1
    print(f"\nsolver: held-out accuracy before and after training ({run_root})", file=sys.stderr)
    print(table)
    return 0


async def _demo(
    config: SocietyConfig,
    static: SocietyConfig | None,
    seeds: list[int],
    run_root: Path,
    gsm8k: list[Problem],
    args: argparse.Namespace,
) -> str:
    from coevo.society.demo import format_result, run_demo
    from coevo.society.evaluation import run_engine

    solver = next(name for name, agent in config.agents.items() if agent.role == "solver")
    engine = run_engine(config, solver)
    try:
        result = await run_demo(
            config,
            static,
            seeds,
            run_root,
            eval_limit=args.eval_limit,
            fewshot=args.fewshot,
            gsm8k=gsm8k,
            engine=engine,
        )
    finally:
        await engine.close()
    return format_result(result)
