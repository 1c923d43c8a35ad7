"""`coevo run`'s terminal front end over the replay society, as a script a real terminal (tmux) can
run: `python tests/tui/live_run.py RUN_DIR DELAY_S [ROUNDS]`. (`coevo run` itself refuses the
replay engine, a test double, so the test drives the same front end it uses:
coevo.tui.live.run_with_tui.) The replay responder also prints a line (to stdout) on its first
call, as a library might mid-run: it belongs in the run's log, not over the app."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from coevo.engines.replay import ReplayEngine
from coevo.society.bus import EventBus
from coevo.society.checker import replay_responder
from coevo.society.session import RunOutcome, run_society
from coevo.tui.live import run_with_tui
from tests.society.replay_society import replay_config


def main(run_dir: Path, delay: float, rounds: int) -> int:
    config = replay_config([f"schedule.rounds={rounds}"])
    said: list[bool] = []

    def slow(*args: Any) -> str:
        if not said:
            said.append(True)
            print("a library's output, mid-run", flush=True)
        time.sleep(delay)  # a run long enough to be watched, and stopped
        return replay_responder(*args)

    async def start(bus: EventBus) -> RunOutcome:
        return await run_society(
            config, run_dir, resume=False, bus=bus, engines={"local": ReplayEngine(slow)}
        )

    try:
        run_with_tui(config, run_dir, start)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 50))
