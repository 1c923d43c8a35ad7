"""`coevo check CONFIG [--set k=v ...] [--determinism [--engine replay|transformers]]`: validate a
society config and its role graph without running it.

Prints the graph and a summary and exits 0, or prints every problem as `file:line: field: message`
and exits 2. With `--determinism`, also runs the society twice with its seed, each run a process of
its own with the trainers on (`coevo.society.checker.check_society`), and exits 1 if any record of
the two runs differs: on the replay engine (no model to generate; the trainers train the configured
model), the society's own logic must depend on the seed alone; on the transformers engine, the
whole run must.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from coevo.society.config import SocietyConfig
from coevo.society.config_errors import ConfigError
from coevo.society.graph import describe_graph
from coevo.society.loading import load_config
from coevo.society.secrets import mask, mask_url

EXIT_INVALID = 2


def load_for_cli(path: str, overrides: list[str]) -> SocietyConfig:
    """A config as the command line runs it: checked, and without the replay test double, which
    only a test can feed (it answers from a function handed to it in code)."""
    config = load_config(path, overrides)
    issues = [
        config.issue(
            "engines", name, "kind", message="the replay engine is a test double; `coevo run` cannot use it"
        )
        for name, engine in config.engines.items()
        if engine.kind == "replay"
    ]
    if issues:
        raise ConfigError(path, issues)
    return config


def check_command(args: argparse.Namespace) -> int:
    try:
        config = load_for_cli(args.config, list(getattr(args, "overrides", None) or []))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.issues)
        print(f"{count} problem{'s' if count != 1 else ''} in {exc.source}", file=sys.stderr)
        return EXIT_INVALID
    print(describe_graph(config))
    print(summarize(config))
    print(f"{args.config}: ok")
    if getattr(args, "determinism", False):
        from coevo.society.checker import CheckEngine, CheckRunError, NondeterminismError, check_society

        engine: CheckEngine = getattr(args, "engine", "replay")  # argparse allows only those
        try:
            events = asyncio.run(check_society(config, rounds=args.rounds, engine=engine))
        except NondeterminismError as exc:
            print(f"{args.config}: not deterministic: {exc}", file=sys.stderr)
            return 1
        except CheckRunError as exc:
            print(f"{args.config}: {exc}", file=sys.stderr)
            return 1
        print(
            f"{args.config}: deterministic (two seeded runs in separate processes on the {engine} "
            f"engine, trainers on: {len(events)} identical events, every table identical)"
        )
    return 0


def summarize(config: SocietyConfig) -> str:
    s = config.schedule
    lines = [f"engines ({len(config.engines)}):"]
    for name, engine in config.engines.items():
        options = f" {mask(engine.options)}" if engine.options else ""
        lines.append(f"  {name}: {engine.kind} {engine.model}{options}")
    attempts = any(e.message in ("ProblemPosed", "ProblemRefined") for e in config.graph)
    per_problem = f" x {s.attempts_per_problem} attempts" if attempts else ""
    band = f", success band {list(s.success_band)}" if attempts else ""
    evaluation = f", evaluation every {s.eval_every} rounds" if s.eval_every else ""
    lines.append(
        f"schedule: {s.rounds} rounds x {s.problems_per_round} episodes{per_problem}, "
        f"max concurrency {s.max_concurrency}{band}{evaluation}"
    )
    lines.append(f"trainers ({len(config.trainers)}):")
    for trainer in config.trainers:
        lines.append(f"  {trainer.kind} on {trainer.agent} every {trainer.every} round(s)")
    memory = mask_url(config.memory.url) if config.memory.url else "sqlite in the run directory"
    run_dir = config.run_dir or f"runs/{config.name}"
    lines.append(f"run: {config.name} (seed {config.seed}, run dir {run_dir}, memory {memory})")
    return "\n".join(lines)
