"""A small society on the replay engine (a deterministic test double), shared by the scheduler,
determinism and kill/resume tests. Run as a script, it runs or resumes that society in a run
directory — a real process the resume tests can kill with SIGKILL:

    python tests/society/replay_society.py RUN_DIR new|resume DELAY_S [TINY_MODEL_DIR]

With a model folder, the Solver is trained (DPO, 2 steps on that model) after every round, and
loading an adapter takes a moment, so a kill can land between training and loading too."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from coevo.society.config import SocietyConfig
from coevo.society.loading import parse_config

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


def main(run_dir: str, resume: bool, delay_s: float, model: str | None) -> None:
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

    if resume:
        config = load_snapshot(Path(run_dir), [])
    else:
        config = replay_config() if model is None else trained_config(model)
    engines = {"local": SlowLoading(slow_responder)}
    asyncio.run(run_society(config, Path(run_dir), resume=resume, engines=engines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "resume", float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
