"""`coevo check CONFIG [--set k=v ...]`: validate a society config and its role graph without running it.

Prints the graph and a summary and exits 0, or prints every problem as `file:line: field: message`
and exits 2.
"""

from __future__ import annotations

import argparse
import sys

from coevo.society.config import SocietyConfig, load_config
from coevo.society.config_errors import ConfigError
from coevo.society.graph import describe_graph

EXIT_INVALID = 2


def check_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, list(getattr(args, "overrides", None) or []))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        count = len(exc.issues)
        print(f"{count} problem{'s' if count != 1 else ''} in {exc.source}", file=sys.stderr)
        return EXIT_INVALID
    print(describe_graph(config))
    print(summarize(config))
    print(f"{args.config}: ok")
    return 0


def summarize(config: SocietyConfig) -> str:
    s = config.schedule
    lines = [f"engines ({len(config.engines)}):"]
    for name, engine in config.engines.items():
        options = f" {engine.options}" if engine.options else ""
        lines.append(f"  {name}: {engine.kind} {engine.model}{options}")
    lines.append(
        f"schedule: {s.rounds} rounds x {s.problems_per_round} problems x {s.attempts_per_problem} attempts, "
        f"max concurrency {s.max_concurrency}, success band {list(s.success_band)}"
    )
    lines.append(f"trainers ({len(config.trainers)}):")
    for trainer in config.trainers:
        lines.append(f"  {trainer.kind} on {trainer.agent} every {trainer.every} round(s)")
    memory = config.memory.url or "sqlite in the run directory"
    run_dir = config.run_dir or f"runs/{config.name}"
    lines.append(f"run: {config.name} (seed {config.seed}, run dir {run_dir}, memory {memory})")
    return "\n".join(lines)
