"""`coevo eval`: evaluate a model, or a run's policy (`--run`), on a dataset and print accuracy
with a 95% interval and a per-skill table (JSON with --json). A run's evaluation is stored in
its memory."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from coevo.engines.base import EngineError
from coevo.tasks.evaluate import EvalReport, evaluate, format_report
from coevo.tasks.loaders import DatasetError, load_dataset_spec


def eval_command(args: argparse.Namespace) -> int:
    try:
        title, report = asyncio.run(_evaluate(args))
    except (EngineError, DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, title=title))
    return 0


async def _evaluate(args: argparse.Namespace) -> tuple[str, EvalReport]:
    from coevo.engines.factory import make_engine

    skills = [s.strip() for s in args.skills.split(",") if s.strip()] if args.skills else None
    problems = load_dataset_spec(args.dataset, args.split, args.limit, skills=skills, seed=args.seed)
    where = f"{args.dataset} ({args.split})"
    if args.run is not None:
        # The society layer knows runs (config snapshot, policies, memory); tasks only grades.
        from coevo.society.evaluation import evaluate_policy, run_engine
        from coevo.society.session import load_snapshot

        run_dir = Path(args.run)
        engine = run_engine(load_snapshot(run_dir, []), args.agent, args.engine)
        try:
            label, report = await evaluate_policy(
                run_dir,
                args.agent,
                args.policy,
                problems,
                args.dataset,
                engine=engine,
                progress=not args.json,
            )
        finally:
            await engine.close()
        return f"{where} — {args.agent} policy {label} of run {run_dir}", report
    engine = make_engine(args.engine, args.model)
    try:
        return f"{where} — model {args.model}", await evaluate(engine, problems, progress=not args.json)
    finally:
        await engine.close()
