"""`check_society`: run a society twice with the same seed and assert identical transcripts
(in the spirit of Gymnasium's `check_env`). It uses the replay engine, a deterministic test double,
so it needs no model; trainers are left out because they need real weights."""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coevo.engines.base import ChatMessage, Engine, SamplingParams
from coevo.society.config import SocietyConfig

# Fields that legitimately differ between two runs of the same society.
VOLATILE = {"created_at", "run_id", "seconds"}


class NondeterminismError(AssertionError):
    """Two runs with the same config and seed produced different transcripts."""


def replay_responder(
    messages: Sequence[ChatMessage],
    params: SamplingParams,
    adapter: str | None,
    sample_index: int,
    seed: int | None,
) -> str:
    """A deterministic stand-in Solver: right on some problems, wrong on others, sometimes unparseable."""
    key = json.dumps([messages[-1]["content"], adapter, sample_index, seed])
    rng = random.Random(key)
    roll = rng.random()
    if roll < 0.1:
        return "I am not sure."
    return f"Let me think. The answer is {rng.randint(0, 120)}."


def make_replay_engines(config: SocietyConfig) -> dict[str, Engine]:
    from coevo.engines.replay import ReplayEngine

    return {name: ReplayEngine(replay_responder) for name in config.engines}


def _transcript(run_dir: Path) -> list[dict[str, Any]]:
    from coevo.memory.store import Store
    from coevo.society.session import run_id_for

    store = Store.for_run_dir(run_dir)
    rows = []
    for event in store.events(run_id_for(run_dir)):
        data = event.model_dump(mode="json")
        rows.append({k: v for k, v in data.items() if k not in VOLATILE})
    return rows


async def check_society(config: SocietyConfig, rounds: int | None = None) -> int:
    """Raise `NondeterminismError` unless two seeded runs agree; returns the transcript length."""
    from coevo.society.session import run_society

    updates: dict[str, Any] = {"trainers": [], "memory": config.memory.model_copy(update={"url": None})}
    if rounds is not None:
        updates["schedule"] = config.schedule.model_copy(update={"rounds": rounds})
    config = config.model_copy(update=updates)
    transcripts = []
    with tempfile.TemporaryDirectory(prefix="coevo-check-") as tmp:
        for attempt in ("a", "b"):
            run_dir = Path(tmp) / attempt / "run"
            await run_society(config, run_dir, resume=False, engines=make_replay_engines(config))
            transcripts.append(_transcript(run_dir))
    first, second = transcripts
    if len(first) != len(second):
        raise NondeterminismError(f"transcripts differ in length: {len(first)} vs {len(second)} events")
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if a != b:
            diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
            raise NondeterminismError(f"event {i} ({a.get('type')}) differs: {diff}")
    return len(first)
