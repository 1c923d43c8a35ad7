"""How well the TUI keeps up, and what it costs the run it shows (issue: live terminal UI).

1. Following: a writer in another process journals synthetic events through `Store.append_events`
   (batches every 0.1 s, as the run's journal writer does) at `--rates` events per second for
   `--seconds`, while the app (headless, messages panel, following) reads them. Reported: the lag
   from an event's creation to its arrival in the app (median, 95th percentile, worst), and the
   app's resident memory over the run (the stream keeps a window; older events stay in the database).
2. Overhead: the replay society at full speed, alone and as `coevo run` runs it on a terminal (the
   society in this process, the app in a child process on a pseudo-terminal, messages panel),
   alternated `--pairs` times in one run; the ratio of the society's own round time (sum of
   RoundFinished.seconds) with and without the app.

    .venv/bin/python benchmarks/tui_follow.py                 # both parts, defaults below
    .venv/bin/python benchmarks/tui_follow.py --rates 2000,5000 --seconds 60 --pairs 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coevo.messages import Event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (160, 48)


def rss_mib() -> float:
    """This process's resident memory now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- 1. following a fast writer ---------------------------------------------------------------------


def _episode(index: int) -> list[Event]:
    """One episode's events: a problem, 4 attempts, their 4 grades (half right)."""
    from coevo.messages import AttemptGraded, ProblemPosed, SolutionSubmitted

    pid = f"p{index}"
    events: list[Event] = [
        ProblemPosed(
            problem_id=pid,
            question=f"What is {index} + 1?",
            sender="teacher",
            recipients=["solver"],
            episode=index,
        )
    ]
    for k in range(4):
        answer = str(index + k % 2)
        events.append(
            SolutionSubmitted(
                problem_id=pid,
                attempt_index=k,
                sender="solver",
                recipients=["teacher"],
                response=f"The answer is {answer}.",
                policy_version="base",
                episode=index,
            )
        )
    for k in range(4):
        events.append(
            AttemptGraded(
                problem_id=pid,
                attempt_index=k,
                solver="solver",
                sender="teacher",
                episode=index,
                extracted_answer=str(index + k % 2),
                correct=k % 2 == 0,
                reward=float(k % 2 == 0),
            )
        )
    return events


def write(url: str, run_id: str, rate: int, seconds: float) -> None:
    """The writer process: `rate` events per second in batches every 0.1 s, episode after episode
    (a problem, 4 attempts, 4 grades), with a heartbeat as a live run has."""
    from coevo.memory.batch import event_row
    from coevo.memory.store import Store
    from coevo.messages import RoundStarted

    store = Store(url)
    store.set_status(run_id, "running")
    start = time.monotonic()
    written = 0
    episode = 0
    pending: list[Event] = [RoundStarted(episodes=10**9, sender="scheduler")]
    beat = start
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate) - written
        rows = []
        while len(rows) < due:
            if not pending:
                pending = _episode(episode)
                episode += 1
            event = pending.pop(0)
            event.run_id = run_id
            event.created_at = datetime.now(UTC)
            rows.append(event_row(run_id, event, provisional=True))
        store.append_events(run_id, rows)
        written += len(rows)
        if now - beat > 2:
            store.heartbeat(run_id)
            beat = now
        time.sleep(0.1)
    store.set_status(run_id, "finished")
    print(written)


async def follow(rate: int, seconds: float) -> dict[str, float]:
    from coevo.memory.store import Store, sqlite_url
    from coevo.tui.app import CoevoApp
    from coevo.tui.source import open_target
    from tests.society.replay_society import replay_config

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        store = Store(sqlite_url(run_dir))
        agents = [
            {"name": "teacher", "role": "teacher", "engine": "procedural"},
            {"name": "solver", "role": "solver", "engine": "local"},
        ]
        store.create_run("synthetic", replay_config().model_dump_json(), 0, agents, run_id="synthetic")
        store.set_status("synthetic", "running")
        app = CoevoApp(open_target(str(run_dir)))
        memory: list[tuple[float, float]] = []
        async with app.run_test(headless=True, size=SIZE) as pilot:
            await app.loaded.wait()
            await pilot.press("m")
            app.lags.clear()
            writer = subprocess.Popen(
                [sys.executable, __file__, "--write", store.url, "synthetic", str(rate), str(seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            started = time.monotonic()
            while writer.poll() is None:
                await asyncio.sleep(1.0)
                memory.append((time.monotonic() - started, rss_mib()))
            written = int(writer.communicate()[0])
            while app.model.events < written:  # the last batch
                await asyncio.sleep(0.1)
            lags = sorted(app.lags)
            window = len(app.model.window)
        store.close()
    half = [m for t, m in memory if t >= seconds / 4]
    return {
        "rate": rate,
        "events": written,
        "lag_median": statistics.median(lags),
        "lag_p95": lags[int(0.95 * (len(lags) - 1))],
        "lag_max": lags[-1],
        "rss_first_quarter": memory[max(0, len(memory) // 4 - 1)][1],
        "rss_end": memory[-1][1],
        "rss_growth_after_quarter": max(half) - min(half),
        "window": window,
    }


# --- 2. what the app costs the run it shows ------------------------------------------------------------


class Terminal:
    """A pseudo-terminal of SIZE for the app's process: what it draws is read and dropped, as a
    terminal would show it; `keys` types once the app has drawn its first screen."""

    def __init__(self, keys: bytes) -> None:
        import fcntl
        import pty
        import struct
        import termios
        import threading

        self.master, self.slave = pty.openpty()
        cols, rows = SIZE
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.keys = keys
        self.drawn = 0
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return  # closed
            if not chunk:
                return
            self.drawn += len(chunk)
            if self.keys and self.drawn > 10_000:  # the first screen is up: the app reads keys now
                os.write(self.master, self.keys)
                self.keys = b""

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


async def one_run(with_app: bool, rounds: int, problems: int) -> tuple[float, float, int, float]:
    """(society round seconds, wall seconds, events, the app's CPU seconds) of one replay run, alone
    or as `coevo run` on a terminal runs it: the society here, the app in a child process."""

    from coevo.memory.journal import EventCursor
    from coevo.memory.store import Store
    from coevo.messages import RoundFinished
    from coevo.society.bus import EventBus
    from coevo.society.checker import make_replay_engines
    from coevo.society.session import run_id_for, run_society
    from coevo.tui.live import AttachedApp
    from tests.society.replay_society import replay_config

    config = replay_config(
        [
            f"schedule.rounds={rounds}",
            f"schedule.problems_per_round={problems}",
            "schedule.max_concurrency=16",
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        bus = EventBus()
        terminal = app = None
        if with_app:
            terminal = Terminal(keys=b"m")  # the busiest panel: every event lands in the stream
            app = AttachedApp(run_dir, terminal=(terminal.slave,) * 3)
            bus.listen(app)
        children_cpu = _children_cpu()
        started = time.monotonic()
        await run_society(config, run_dir, resume=False, bus=bus, engines=make_replay_engines(config))
        if app is not None and terminal is not None:
            os.write(terminal.master, b"q")  # the run is over: the app quits without asking
            await asyncio.to_thread(app.close)
            terminal.close()
        wall = time.monotonic() - started
        # Reaped children so far are the app (the verifier's workers live on): its CPU time.
        app_cpu = _children_cpu() - children_cpu
        store = Store.for_run_dir(run_dir)
        entries = EventCursor(store, run_id_for(run_dir)).poll(10**7)
        store.close()
    seconds = sum(e.event.seconds for e in entries if isinstance(e.event, RoundFinished))
    return seconds, wall, len(entries), app_cpu


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def overhead(pairs: int, rounds: int, problems: int) -> dict[str, float]:
    alone: list[float] = []
    shown: list[float] = []
    walls: dict[bool, list[float]] = {False: [], True: []}
    app_share: list[float] = []
    events = 0
    await one_run(False, 1, 4)  # warm-up: imports, the first worker processes
    for pair in range(pairs):
        # Alternate which goes first, so that a drift in the machine's speed favours neither.
        for with_app in (False, True) if pair % 2 == 0 else (True, False):
            seconds, wall, events, app_cpu = await one_run(with_app, rounds, problems)
            (shown if with_app else alone).append(seconds)
            walls[with_app].append(wall)
            if with_app:
                app_share.append(app_cpu / wall)
    return {
        "events": events,
        "alone_s": statistics.median(alone),
        "with_app_s": statistics.median(shown),
        "ratio": statistics.median(shown) / statistics.median(alone),
        "pair_ratios": [b / a for a, b in zip(alone, shown, strict=True)],  # type: ignore[dict-item]
        "events_per_s": events / statistics.median(alone),
        "wall_ratio": statistics.median(walls[True]) / statistics.median(walls[False]),
        "app_cpu_share": statistics.median(app_share),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="2000,5000", help="events per second the writer journals")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each writer runs")
    parser.add_argument("--pairs", type=int, default=5, help="alternations of run alone / run with the app")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each replay run")
    parser.add_argument("--problems", type=int, default=60, help="problems per round of the replay society")
    parser.add_argument("--skip-follow", action="store_true")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument(
        "--write", nargs=4, metavar=("URL", "RUN_ID", "RATE", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.write:
        url, run_id, rate, seconds = args.write
        write(url, run_id, int(rate), float(seconds))
        return
    if not args.skip_follow:
        print("1. following a writer in another process (headless app, messages panel, following)")
        print("rate ev/s  events   lag median  p95     max     RSS @1/4   RSS end   growth after 1/4  window")
        for rate in (int(r) for r in args.rates.split(",")):
            r = asyncio.run(follow(rate, args.seconds))
            print(
                f"{rate:>9}  {r['events']:>7.0f}  {r['lag_median']:>8.2f} s  {r['lag_p95']:.2f} s"
                f"  {r['lag_max']:.2f} s  {r['rss_first_quarter']:>6.0f} MiB  {r['rss_end']:>5.0f} MiB"
                f"  {r['rss_growth_after_quarter']:>6.1f} MiB          {r['window']:.0f}"
            )
    if not args.skip_overhead:
        print("\n2. the replay society at full speed, alone and with coevo run's app attached")
        r = asyncio.run(overhead(args.pairs, args.rounds, args.problems))
        pairs = ", ".join(f"{x:.3f}" for x in r["pair_ratios"])  # type: ignore[attr-defined]
        print(
            f"{r['events']:.0f} events per run, {r['events_per_s']:.0f} events/s alone; round time alone "
            f"{r['alone_s']:.2f} s, with the app {r['with_app_s']:.2f} s (medians of {args.pairs})\n"
            f"ratio with/without: {r['ratio']:.3f} (each pair: {pairs}; their median "
            f"{statistics.median(r['pair_ratios']):.3f}); "  # type: ignore[arg-type]
            f"wall-clock ratio {r['wall_ratio']:.3f} (with the app's start and quit)\n"
            f"the app's process used {r['app_cpu_share']:.2f} CPU-seconds per second of the run (median)"
        )


if __name__ == "__main__":
    main()
