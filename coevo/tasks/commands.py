"""`coevo eval`: evaluate a model (or, once wired, a run's policy) on a dataset and print accuracy
with a 95% interval and a per-skill table (JSON with --json)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from coevo.engines.base import EngineError
from coevo.tasks.evaluate import EvalReport, evaluate, format_report
from coevo.tasks.loaders import DatasetError, load_dataset_spec


def eval_command(args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(_evaluate(args))
    except (EngineError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # HOOK(lead): with --run, store `report` in the run's memory database here (agent, policy,
    # dataset, split, report.to_dict(with_records=True)).
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, title=f"{args.dataset} ({args.split}) — model {args.model}"))
    return 0


async def _evaluate(args: argparse.Namespace) -> EvalReport:
    from coevo.engines.factory import make_engine

    if args.run is not None:
        # HOOK(lead): resolve the run's engine config and the adapter for --agent/--policy.
        raise ValueError("evaluating a run's policy (--run) is not wired yet; pass --model instead")
    skills = [s.strip() for s in args.skills.split(",") if s.strip()] if args.skills else None
    problems = load_dataset_spec(args.dataset, args.split, args.limit, skills=skills, seed=args.seed)
    engine = make_engine(args.engine, args.model)
    try:
        return await evaluate(engine, problems, progress=not args.json)
    finally:
        await engine.close()
