"""`check_society`: run a society twice with the same seed and assert identical records (in the
spirit of Gymnasium's `check_env`), and `replay_responder`, the deterministic stand-in for every
role's model that the check runs on by default.

Each run is a process of its own (`python -m coevo.society.checker CONFIG RUN_DIR ENGINE`): state
one run leaves in the interpreter (a cache, a global, a warm model) cannot make the second agree
with it, and Python's string hashing is seeded differently in each, so a society whose decisions
depend on the iteration order of a set of strings is caught. The trainers run as configured, on the
engines' models (real weights, trained for real, adapters served in the next round).

Generation is `replay` (the test double: no model needed to generate, so it proves the society's
own logic — what is posed, routed, graded, refined and trained on — depends on the seed alone) or
`transformers` (every engine of the society becomes the transformers engine on its model: seeded
sampling, training and serving the trained adapters, end to end). What is compared: every row of
every table of the run — events, problems, attempts, curricula, skill profiles, agent states,
trainings and policy versions — in a canonical order, without the columns that legitimately differ
(surrogate ids, times, process ids, paths inside the run folder, the run's own id, timings).
vLLM's CPU kernels are not bit-identical across processors, which is why vLLM is not a choice here.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from coevo.engines.base import ChatMessage, Engine, SamplingParams
from coevo.society.config import SocietyConfig

# Fields that legitimately differ between two runs of the same society: surrogate ids, wall-clock
# times and process ids, the run's id (derived from its folder), paths inside the run folder, and
# the timings a trainer reports. Any column or event field of that name, at any depth.
VOLATILE = {
    "id",
    "run",
    "run_id",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "seconds",
    "heartbeat_at",
    "pid",
    "host",
    "adapter_path",
    "path",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
}
CheckEngine = Literal["replay", "transformers"]


class NondeterminismError(AssertionError):
    """Two runs with the same config and seed produced different records."""


class CheckRunError(RuntimeError):
    """A run of the check failed (its process's error output is in the message)."""


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


def check_engines(config: SocietyConfig, kind: CheckEngine) -> dict[str, Engine]:
    """The engines a check runs the society on: the replay double, or the transformers engine on
    each engine's own model (with its seed, if the config sets one), one request per `generate`
    call: which requests share a micro-batch depends on timing, and a batch's shape changes a
    sample's logits in their last bits, which decides the token where two are nearly tied."""
    if kind == "replay":
        return make_replay_engines(config)
    from coevo.engines.transformers_engine import TransformersEngine

    return {
        name: TransformersEngine(engine.model, seed=int(engine.options.get("seed", 0)), max_batch_size=1)
        for name, engine in config.engines.items()
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 5)  # a loss summed in another order may differ in the last bits
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def records(run_dir: Path) -> dict[str, list[Any]]:
    """Every table of the run in `run_dir` without its volatile columns; events in their canonical
    order (round, episode, event id), since concurrent episodes journal in whatever order they run."""
    from coevo.memory.store import Store
    from coevo.society.session import run_id_for

    store = Store.for_run_dir(run_dir)
    try:
        tables = store.dump(run_id_for(run_dir))
    finally:
        store.close()
    tables["messages"].sort(
        key=lambda r: (r["round"], -1 if r["episode"] is None else r["episode"], r["event_id"])
    )
    return {name: [_clean(row) for row in rows] for name, rows in tables.items()}


def transcript(tables: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The run's events (as `records` gives them), each its message's fields."""
    return [row["payload"] for row in tables["messages"]]


async def _run_alone(config_path: Path, run_dir: Path, engine: CheckEngine) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coevo.society.checker", str(config_path), str(run_dir), engine,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    if process.returncode != 0:
        tail = output.decode(errors="replace").strip().splitlines()[-15:]
        raise CheckRunError(f"a run of the check failed (exit {process.returncode}):\n" + "\n".join(tail))


async def check_society(
    config: SocietyConfig, rounds: int | None = None, *, engine: CheckEngine = "replay"
) -> list[dict[str, Any]]:
    """Run the society twice, each in a process of its own, on `engine`; raise
    `NondeterminismError` unless every record agrees. Returns the events of a run."""
    from coevo.society.secrets import mask

    updates: dict[str, Any] = {"run_dir": None, "memory": config.memory.model_copy(update={"url": None})}
    if rounds is not None:
        updates["schedule"] = config.schedule.model_copy(update={"rounds": rounds})
    config = config.model_copy(update=updates)
    with tempfile.TemporaryDirectory(prefix="coevo-check-") as tmp:
        # The config as the runs read it; literal secrets masked (neither engine needs them).
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(yaml.safe_dump(mask(config.model_dump(mode="json")), sort_keys=False))
        runs = []
        for attempt in ("a", "b"):
            run_dir = Path(tmp) / attempt / "run"
            await _run_alone(config_path, run_dir, engine)
            runs.append(records(run_dir))
    first, second = runs
    for table in first:
        a_rows, b_rows = first[table], second[table]
        if len(a_rows) != len(b_rows):
            raise NondeterminismError(f"{table}: {len(a_rows)} vs {len(b_rows)} rows")
        for i, (a, b) in enumerate(zip(a_rows, b_rows, strict=True)):
            if a != b:
                diff = {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
                what = f" ({a['type']})" if table == "messages" else ""
                raise NondeterminismError(f"{table} row {i}{what} differs: {diff}")
    return transcript(first)


def _main(config_path: str, run_dir: str, engine: str) -> None:
    """One run of a check, in this process (see the module docstring)."""
    from coevo.society.loading import load_config
    from coevo.society.session import run_society

    if engine not in ("replay", "transformers"):
        raise SystemExit(f"unknown engine {engine!r}: replay or transformers")
    config = load_config(config_path)
    engines = check_engines(config, engine)  # type: ignore[arg-type]  # checked just above
    asyncio.run(run_society(config, Path(run_dir), resume=False, engines=engines))


if __name__ == "__main__":
    _main(*sys.argv[1:])
