"""`coevo eval`: evaluate a model, or a run's policy (`--run`), on a dataset and print accuracy
with a 95% interval and a per-skill table (JSON with --json). A run's evaluation is stored in
its memory. It lives with the society because it knows runs (config snapshot, policies, memory);
the task layer only grades."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from coevo.engines.base import EngineError, SamplingParams
from coevo.memory.errors import StoreError
from coevo.society.secrets import redact
from coevo.tasks.evaluate import EvalReport, evaluate, format_report
from coevo.tasks.loaders import DatasetError, load_dataset_spec
from coevo.tasks.skills import check_levels


def parse_levels(text: str) -> dict[str, tuple[int, int]]:
    """`digits=1-3,steps=2` → {"digits": (1, 3), "steps": (2, 2)}; a clear ValueError otherwise."""
    levels: dict[str, tuple[int, int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, bounds = part.partition("=")
        low, dash, high = bounds.strip().partition("-")
        try:
            if not eq:
                raise ValueError
            levels[name.strip()] = (int(low), int(high) if dash else int(low))
        except ValueError:
            raise ValueError(f"--levels: expected DIM=LOW-HIGH (e.g. digits=1-3), got {part!r}") from None
    check_levels(levels)
    return levels


def eval_command(args: argparse.Namespace) -> int:
    try:
        title, report = asyncio.run(_evaluate(args))
    except (EngineError, DatasetError, ValueError, StoreError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)  # a server may quote the run's key back
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, title=title))
    return 0


async def _evaluate(args: argparse.Namespace) -> tuple[str, EvalReport]:
    from coevo.engines.factory import make_engine

    skills = [s.strip() for s in args.skills.split(",") if s.strip()] if args.skills else None
    levels = parse_levels(args.levels) if args.levels else None
    where = f"{args.dataset} ({args.split})"
    if args.run is not None:
        from coevo.society.evaluation import evaluate_policy, run_engine
        from coevo.society.session import load_snapshot

        run_dir = Path(args.run)
        config = load_snapshot(run_dir, [])
        # By default a run is measured on what it trained: its curriculum's skills and levels.
        run_skills, run_levels = config.curriculum_space()
        skills = run_skills if skills is None else skills
        levels = run_levels if levels is None else levels
        problems = load_dataset_spec(
            args.dataset, args.split, args.limit, skills=skills, seed=args.seed, levels=levels
        )
        engine = run_engine(config, args.agent, args.engine)
        try:
            label, report = await evaluate_policy(
                run_dir,
                args.agent,
                args.policy,
                problems,
                args.dataset,
                engine=engine,
                max_tokens=args.max_tokens,
                progress=not args.json,
            )
        finally:
            await engine.close()
        return f"{where} — {args.agent} policy {label} of run {run_dir}", report
    problems = load_dataset_spec(
        args.dataset, args.split, args.limit, skills=skills, seed=args.seed, levels=levels
    )
    engine = make_engine(args.engine, args.model)
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    try:
        report = await evaluate(engine, problems, params=params, progress=not args.json)
        return f"{where} — model {args.model}", report
    finally:
        await engine.close()
