"""A small society on the replay engine (a deterministic test double), shared by the scheduler,
determinism and kill/resume tests. Run as a script, it runs or resumes that society in a run
directory — a real process the resume, follow and TUI tests can watch, stop or kill (`spawn`):

    python tests/society/replay_society.py RUN_DIR new|resume DELAY_S [TINY_MODEL_DIR [ROUNDS]]

With a model folder, the Solver is trained (DPO, 2 steps on that model) after every round of
ROUNDS (3 by default), and loading an adapter takes a moment, so a kill can land between training
and loading too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coevo.society.config import SocietyConfig
from coevo.society.loading import parse_config

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
name: replay
seed: 7
engines:
  local: {kind: replay, model: replay}
agents:
  teacher:
    role: teacher
    policy: procedural
    curriculum: {kind: alp-gmm, skills: [add_no_carry, add_carry, sub_no_borrow], params: {bootstrap: 8}}
  solver:
    role: solver
    engine: local
    sampling: {temperature: 0.8, max_tokens: 64}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
  - {source: teacher, target: solver, message: ProblemRefined, when: learning_zone, deliver: next_round}
schedule: {rounds: 4, problems_per_round: 6, attempts_per_problem: 4, max_concurrency: 3}
"""


def replay_config(overrides: list[str] | None = None) -> SocietyConfig:
    return parse_config(CONFIG, "replay_society.py", overrides or [])


TRAINED = [
    "agents.solver.trainable=true",
    "schedule.success_band=[0.0, 0.75]",
    "trainers=[{kind: socratic_solver_dpo, agent: solver, every: 1, "
    "args: {max_steps: 2, per_device_train_batch_size: 2, max_length: 128}}]",
]


def trained_config(model: str, rounds: int = 3) -> SocietyConfig:
    return replay_config([f"engines.local.model={model}", f"schedule.rounds={rounds}", *TRAINED])


def spawn(
    run_dir: Path, *, resume: bool = False, delay: float, model: str | None = None, rounds: int = 3
) -> subprocess.Popen[bytes]:
    """This script in a process of its own, running (or resuming) the society in `run_dir`."""
    command = [sys.executable, __file__, str(run_dir), "resume" if resume else "new", str(delay)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*command, *([model, str(rounds)] if model else [])], env=env, cwd=ROOT)


def wait_for(predicate: Callable[[], object], timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Until `predicate()` holds; fails when `proc` exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"run process exited early with {proc.returncode}")
        time.sleep(0.02)
    pytest.fail("timed out waiting for the run")


def recorded(run_dir: Path) -> bool:
    """Whether the run in `run_dir` is in its database yet (what a follower needs to open it)."""
    from coevo.memory.store import DB_NAME, Store
    from coevo.society.session import run_id_for

    if not (run_dir / DB_NAME).exists():
        return False
    store = Store.for_run_dir(run_dir)
    try:
        return store.get_run(run_id_for(run_dir)) is not None
    finally:
        store.close()


def main(run_dir: str, resume: bool, delay_s: float, model: str | None, rounds: int) -> None:
    from pathlib import Path as P

    from coevo.engines.replay import ReplayEngine
    from coevo.society.checker import replay_responder
    from coevo.society.session import load_snapshot, run_society

    def slow_responder(*args: object) -> str:
        time.sleep(delay_s)  # stretch the run so the test can kill it mid-round
        return replay_responder(*args)  # type: ignore[arg-type]

    class SlowLoading(ReplayEngine):
        async def load_adapter(self, name: str, path: str | P) -> None:
            await asyncio.sleep(0.3)  # a window between recording a training and serving it
            await super().load_adapter(name, path)

    # SIGINT stops this run as Ctrl+C does (a test sends it), even when the test process that
    # started it ignores SIGINT: an ignored signal is inherited across exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if resume:
        config = load_snapshot(Path(run_dir), [])
    else:
        config = replay_config() if model is None else trained_config(model, rounds)
    engines = {"local": SlowLoading(slow_responder)}
    asyncio.run(run_society(config, Path(run_dir), resume=resume, engines=engines))


if __name__ == "__main__":
    run_dir, mode, delay, *trained = sys.argv[1:]
    main(
        run_dir,
        mode == "resume",
        float(delay),
        trained[0] if trained else None,
        int(trained[1]) if trained else 3,
    )
