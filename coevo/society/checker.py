"""`check_society`: run a society twice with the same seed and assert identical transcripts (in the
spirit of Gymnasium's `check_env`), and `replay_responder`, the deterministic stand-in for every
role's model that it runs on.

The runs use the replay engine, a test double, so they need no model; trainers are left out because
they need real weights. What is compared: every stored event (ids, senders, recipients, contents)
in a canonical order (round, episode, id), so only a real difference in what happened fails, never
the interleaving of concurrent episodes. On vLLM's CPU backend two processes on different CPUs do
not produce identical samples; this checker proves the society's own logic is deterministic.
"""

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
    """A deterministic stand-in for any role's model: structured replies where a JSON schema is
    asked for, problem drafts for a Generator, and otherwise an answer that is right about half
    the time on plain arithmetic, wrong or unparseable otherwise."""
    from coevo.tasks.arithmetic import derive_answer

    key = json.dumps([[m["content"] for m in messages], adapter, sample_index, seed])
    rng = random.Random(key)
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    question = messages[-1]["content"]
    if params.json_schema is not None:
        return json.dumps(_structured(str(params.json_schema.get("title", "")), question, rng))
    if system.startswith("You write practice problems"):
        if rng.random() < 0.15:
            return "I cannot think of one."
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        return f"Problem: What is {a} + {b}?\nAnswer: {a + b if rng.random() < 0.7 else a + b + 1}"
    roll = rng.random()
    if roll < 0.1:
        return "I am not sure."
    value = derive_answer(question)
    if value is not None and roll < 0.55:
        shown = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
        return f"Let me think. The answer is {shown}."
    return f"Let me think. The answer is {rng.randint(0, 120)}."


def _structured(title: str, question: str, rng: random.Random) -> dict[str, Any]:
    from coevo.tasks.arithmetic import derive_answer

    if title == "CoachReview":
        return {
            "scores": {
                "positive_climate": rng.randint(1, 7),
                "behavior_management": rng.randint(1, 7),
                "instructional_dialogue": rng.randint(1, 7),
                "explanations": rng.randint(1, 3),
                "remediation_of_student_errors": rng.randint(1, 3),
                "imprecise_language": rng.randint(1, 3),
                "student_questioning_and_reasoning": rng.randint(1, 3),
            },
            "highlights": ["The teacher worked the example step by step."],
            "missed": ["The teacher did not ask the student to explain a step."],
            "suggestions": ["Ask the student why each step holds before moving on."],
        }
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    if title == "WrittenProblem":
        return {"problem": f"What is {a} + {b}?", "solution": f"{a} + {b} = {a + b}", "answer": str(a + b)}
    if title == "ExplanationContent":
        value = derive_answer(question)
        answer = str(value) if value is not None else str(rng.randint(0, 120))
        return {"rationale": f"Add the numbers column by column. The answer is {answer}.", "answer": answer}
    return {}


def make_replay_engines(config: SocietyConfig) -> dict[str, Engine]:
    from coevo.engines.replay import ReplayEngine

    return {name: ReplayEngine(replay_responder) for name in config.engines}


def transcript(run_dir: Path) -> list[dict[str, Any]]:
    """A run's stored events without volatile fields, in canonical order (round, episode, id)."""
    from coevo.memory.store import Store
    from coevo.society.session import run_id_for

    store = Store.for_run_dir(run_dir)
    try:
        events = store.events(run_id_for(run_dir))
    finally:
        store.close()
    rows = [{k: v for k, v in e.model_dump(mode="json").items() if k not in VOLATILE} for e in events]
    return sorted(rows, key=lambda r: (r["round"], -1 if r["episode"] is None else r["episode"], r["id"]))


async def check_society(config: SocietyConfig, rounds: int | None = None) -> list[dict[str, Any]]:
    """Raise `NondeterminismError` unless two seeded runs agree; returns the transcript."""
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
            transcripts.append(transcript(run_dir))
    first, second = transcripts
    if len(first) != len(second):
        raise NondeterminismError(f"transcripts differ in length: {len(first)} vs {len(second)} events")
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        if a != b:
            diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
            raise NondeterminismError(f"event {i} ({a.get('type')}) differs: {diff}")
    return first
