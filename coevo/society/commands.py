"""Handlers of the society commands: `coevo check`, `coevo run`, `coevo runs`, `coevo demo`.
Each prints a clear message and returns an exit code instead of raising on bad input."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from coevo.society.check import EXIT_INVALID, check_command

if TYPE_CHECKING:
    from coevo.engines.base import Engine
    from coevo.society.config import SocietyConfig

__all__ = ["check_command", "demo_command", "run_command", "runs_command"]

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def run_command(args: argparse.Namespace) -> int:
    from coevo.engines.base import EngineError
    from coevo.society.config import load_config
    from coevo.society.config_errors import ConfigError
    from coevo.society.session import RunDirError, default_run_dir, load_snapshot

    try:
        if args.resume:
            run_dir = Path(args.resume)
            config = load_snapshot(run_dir, list(args.overrides))
        elif args.config is None:
            print("coevo run: give a CONFIG, or --resume RUN_DIR", file=sys.stderr)
            return EXIT_INVALID
        else:
            config = load_config(args.config, list(args.overrides))
            run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
        return _run(config, run_dir, resume=bool(args.resume), force=args.force)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except (RunDirError, EngineError) as exc:
        print(f"coevo run: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _run(config: object, run_dir: Path, *, resume: bool, force: bool) -> int:
    from coevo.society.config import SocietyConfig

    assert isinstance(config, SocietyConfig)
    asyncio.run(_run_society(config, run_dir, resume=resume, force=force))
    return 0


async def _run_society(
    config: SocietyConfig,
    run_dir: Path,
    *,
    resume: bool,
    force: bool,
    engines: dict[str, Engine] | None = None,
) -> None:
    """Run with a progress display, then print each round's accuracy and throughput."""
    from coevo.society.bus import EventBus
    from coevo.society.progress import RunProgress
    from coevo.society.session import run_society

    bus = EventBus()
    print(f"run directory: {run_dir}", file=sys.stderr)
    with RunProgress(config.schedule.rounds) as progress:
        bus.listen(progress)
        outcome = await run_society(config, run_dir, resume=resume, force=force, bus=bus, engines=engines)
    for report in outcome.reports:
        print(
            f"round {report.round}: accuracy {report.accuracy:.1%} ({report.correct}/{report.attempts}), "
            f"{report.tokens / max(report.seconds, 1e-9):.0f} tok/s"
        )
    print(f"run {outcome.run_id} finished; results in {run_dir}")


def runs_command(args: argparse.Namespace) -> int:
    from coevo.memory.store import Store
    from coevo.society.session import DB_NAME

    root = Path(args.root)
    dbs = sorted(root.glob(f"*/{DB_NAME}")) if root.exists() else []
    if not dbs:
        print(f"no runs under {root}/")
        return 0
    print(f"{'run directory':<32} {'status':<10} {'rounds':>8}  last accuracy")
    for db in dbs:
        store = Store.for_run_dir(db.parent)
        try:
            for run in store.list_runs():
                total = json.loads(run.config_json).get("schedule", {}).get("rounds", "?")
                summary = store.rounds_summary(run.id)
                accuracy = f"{summary[-1].accuracy:.1%}" if summary else "-"
                done = f"{run.last_round + 1}/{total}"
                print(f"{db.parent!s:<32} {run.status:<10} {done:>8}  {accuracy}")
        finally:
            store.close()
    return 0


def demo_command(args: argparse.Namespace) -> int:
    """The demo society, then the Solver's held-out accuracy before and after training."""
    from coevo.engines.base import EngineError
    from coevo.society.config import load_config
    from coevo.society.config_errors import ConfigError

    try:
        config = load_config(DEMO_CONFIG, list(args.overrides))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / config.name
    try:
        table = asyncio.run(_demo(config, run_dir, args.eval_limit))
    except EngineError as exc:
        print(f"coevo demo: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"\nsolver: held-out accuracy before and after training ({run_dir})", file=sys.stderr)
    print(table)
    return 0


async def _demo(config: SocietyConfig, run_dir: Path, eval_limit: int) -> str:
    """One engine serves the run and then the evaluation (a vLLM start-up is a minute on CPU)."""
    from coevo.society.evaluation import compare, run_engine

    solver = next(name for name, agent in config.agents.items() if agent.role == "solver")
    engine_name = config.agents[solver].engine
    assert engine_name is not None  # the config validator guarantees a Solver's engine
    engine = run_engine(config, solver)
    try:
        await _run_society(config, run_dir, resume=False, force=True, engines={engine_name: engine})
        return await compare(run_dir, solver, eval_limit, engine=engine)
    finally:
        await engine.close()
