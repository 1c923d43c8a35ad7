"""Runs to export from, made once per session on the replay engine (a deterministic test double),
and a helper that runs `coevo export` through the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coevo.cli import main
from coevo.society.checker import make_replay_engines
from coevo.society.loading import load_config
from coevo.society.session import run_society

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Shipped configs without their trainers (they need real weights), for a few rounds.
UNTRAINED = ["trainers=[]", "agents.solver.trainable=false", "agents.solver.lora=null"]
RUNS = {
    "demo": UNTRAINED,
    "demo_static": UNTRAINED,
    "socratic_zero": [*UNTRAINED, "agents.generator.trainable=false", "agents.generator.lora=null"],
    "lbt": ["trainers=[]", "agents.teacher.trainable=false", "agents.teacher.lora=null"],
    "coach": [],
}


def replay_run(config_name: str, run_dir: Path, rounds: int, extra: list[str] | None = None) -> Path:
    overrides = [*RUNS[config_name], f"schedule.rounds={rounds}", *(extra or [])]
    config = load_config(CONFIGS / f"{config_name}.yaml", overrides)
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    return run_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """demo, socratic_zero (2 rounds) and lbt, coach (1 round), each in its run directory."""
    root = tmp_path_factory.mktemp("runs")
    rounds = {"demo": 2, "socratic_zero": 2, "lbt": 1, "coach": 1}
    return {name: replay_run(name, root / name, n) for name, n in rounds.items()}


def export(*args: str) -> int:
    """`coevo export ARGS...` in this process; its exit code."""
    return main(["export", *args])
