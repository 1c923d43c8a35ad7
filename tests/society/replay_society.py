"""A small society on the replay engine (a deterministic test double), shared by the scheduler,
determinism and kill/resume tests. Run as a script, it runs or resumes that society in a run
directory — a real process the resume test can kill with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from coevo.society.config import SocietyConfig, parse_config

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
  - {source: teacher, target: solver, message: AttemptGraded}
  - {source: teacher, target: solver, message: ProblemRefined, when: learning_zone}
schedule: {rounds: 4, problems_per_round: 6, attempts_per_problem: 4, max_concurrency: 3}
"""


def replay_config(overrides: list[str] | None = None) -> SocietyConfig:
    return parse_config(CONFIG, "replay_society.py", overrides or [])


def main(run_dir: str, resume: bool, delay_s: float) -> None:
    from coevo.engines.replay import ReplayEngine
    from coevo.society.checker import replay_responder
    from coevo.society.session import run_society

    def slow_responder(*args: object) -> str:
        time.sleep(delay_s)  # stretch the run so the test can kill it mid-round
        return replay_responder(*args)  # type: ignore[arg-type]

    config = replay_config()
    engines = {"local": ReplayEngine(slow_responder)}
    asyncio.run(run_society(config, Path(run_dir), resume=resume, engines=engines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] == "resume", float(sys.argv[3]))
