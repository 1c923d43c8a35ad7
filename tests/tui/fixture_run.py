"""The fixed replay run of the TUI's tests and screenshots: a run of the replay society (tests/society)
recorded once into replay_run.json, with every volatile value fixed — run id, timestamps, round
durations, the order of concurrent episodes' events — and three training runs added (the replay
society has no weights to train). Tests load it into a fresh database through the Store API, so the
same screen renders to the same SVG on any machine, whatever later changes to the society do.

Record it again (after a change that should show on screen): `python tests/tui/fixture_run.py`,
then update the snapshots (tests/tui/test_snapshots.py says how).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coevo.memory.store import Store, sqlite_url
from coevo.messages import (
    AdapterLoaded,
    Event,
    RoundFinished,
    RoundStarted,
    TrainingFinished,
    TrainingStarted,
    derive_event_id,
    event_from_json,
)
from coevo.society.session import CONFIG_SNAPSHOT, run_id_for
from coevo.tasks.problem import Problem

RUN_ID = "replay-fixture"
DATA = Path(__file__).with_name("replay_run.json")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ATTEMPT_FIELDS = (
    *("problem_id", "agent", "attempt_index", "response", "extracted_answer"),
    *("correct", "reward", "failure", "finish_reason", "completion_tokens"),
)


def _phase(event: Event) -> tuple[int, int]:
    # A round's start, then its episodes in order (each episode's events as it emitted them), its end.
    if isinstance(event, RoundStarted):
        return (0, 0)
    if isinstance(event, RoundFinished):
        return (2, 0)
    return (1, -1 if event.episode is None else event.episode)


def _policy(sender: str, round_index: int) -> str | None:
    return ("base" if round_index == 0 else f"v{round_index}") if sender == "solver" else None


def _training(round_index: int) -> dict[str, Any]:
    """A Solver training run after the round (DPO figures that improve, as a real run's would)."""
    version = round_index + 1
    return {
        "version": version,
        "examples": 12 + round_index,
        "metrics": {
            "train_loss": round(0.69 - 0.12 * round_index, 3),
            "rewards/margins": round(0.05 + 0.2 * round_index, 3),
            "rewards/accuracies": round(0.5 + 0.1 * round_index, 3),
            "train_runtime": 180.0 + round_index,
            "step": 15.0,
        },
    }


def record(source_dir: Path) -> dict[str, Any]:
    """The run in `source_dir`, every volatile value fixed, as JSON-ready data."""
    source = Store.for_run_dir(source_dir)
    source_id = run_id_for(source_dir)
    run = source.get_run(source_id)
    assert run is not None
    agents = [
        {
            "name": a.name,
            "role": a.role,
            "engine": a.engine,
            "model": a.model,
            "trainable": a.name == "solver",
        }
        for a in source.agents(source_id)
    ]
    events = source.events(source_id)
    history = source.curriculum_history(source_id)
    problems = {p.problem_id: p for p in source.problems(source_id)}
    clock = 0
    rounds = []
    for index in sorted({e.round for e in events}):
        fixed = []
        for event in sorted(
            (e for e in events if e.round == index), key=_phase
        ):  # stable: episodes keep order
            event.run_id = RUN_ID
            event.created_at = EPOCH + timedelta(milliseconds=10 * clock)
            event.policy_version = _policy(event.sender, index) or event.policy_version
            if isinstance(event, RoundFinished):
                event.seconds = 2.0 + index / 2
            clock += 1
            fixed.append(event.model_dump(mode="json"))
        seen = {r.problem_id for r in history if r.round < index}
        rounds.append(
            {
                "events": fixed,
                "history": [
                    {
                        "problem": problems[r.problem_id].to_problem().model_dump(mode="json")
                        if r.problem_id not in seen and problems[r.problem_id].round_created == index
                        else None,
                        "problem_id": r.problem_id,
                        "in_curriculum": r.in_curriculum,
                    }
                    for r in history
                    if r.round == index
                ],
                "attempts": [
                    {key: getattr(a, key) for key in ATTEMPT_FIELDS}
                    | {"policy_version": _policy(a.agent, index)}
                    for a in source.attempts(source_id, rounds=[index])
                ],
                "profiles": [
                    {key: getattr(p, key) for key in ("agent", "skill", "attempts", "correct", "missing")}
                    for agent in agents
                    for p in source.skill_profile(source_id, agent["name"], index)
                ],
                "training": _training(index),
            }
        )
    source.close()
    return {
        "name": run.name,
        "seed": run.seed,
        "config_json": run.config_json,
        "config_snapshot": (source_dir / CONFIG_SNAPSHOT).read_text(),
        "agents": agents,
        "rounds": rounds,
    }


def load(data: dict[str, Any], run_dir: Path) -> Path:
    """Write the recorded run into a new database in `run_dir` (as the runtime would have)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_SNAPSHOT).write_text(data["config_snapshot"])
    store = Store(sqlite_url(run_dir))
    store.create_run(data["name"], data["config_json"], data["seed"], data["agents"], run_id=RUN_ID)
    clock = sum(len(r["events"]) for r in data["rounds"])
    for index, recorded in enumerate(data["rounds"]):
        batch = store.round_batch(RUN_ID, index)
        for payload in recorded["events"]:
            batch.add_event(event_from_json(json.dumps(payload)))
        for row in recorded["history"]:
            if row["problem"] is not None:
                batch.add_problem(
                    Problem.model_validate(row["problem"]), index, in_curriculum=row["in_curriculum"]
                )
            else:
                batch.set_curriculum(row["problem_id"], row["in_curriculum"])
        for attempt in recorded["attempts"]:
            batch.add_attempt(**attempt)
        for profile in recorded["profiles"]:
            batch.add_skill_profile(**profile)
        store.commit_round(batch)
        training = recorded["training"]
        version, metrics = training["version"], training["metrics"]
        adapter = f"adapters/solver/v{version}"
        started = EPOCH + timedelta(minutes=10 * version)
        store.add_policy_version(
            RUN_ID,
            "solver",
            version,
            adapter_path=adapter,
            trainer="socratic_solver_dpo",
            created_round=index,
            metrics=metrics,
        )
        store.record_training(
            RUN_ID,
            "solver",
            "socratic_solver_dpo",
            index,
            version - 1,
            True,
            to_version=version,
            examples=training["examples"],
            metrics=metrics,
            adapter_path=adapter,
            started_at=started,
            finished_at=started + timedelta(seconds=180),
        )
        events: list[Event] = [
            TrainingStarted(trainer="socratic_solver_dpo", agent="solver", examples=training["examples"]),
            TrainingFinished(
                trainer="socratic_solver_dpo",
                agent="solver",
                ok=True,
                new_version=f"v{version}",
                metrics=metrics,
            ),
            AdapterLoaded(agent="solver", version=f"v{version}", path=adapter),
        ]
        for event in events:
            event.id = derive_event_id(index, "training", "socratic_solver_dpo", "solver", event.type)
            event.run_id, event.round, event.sender = RUN_ID, index, "trainer"
            event.created_at = EPOCH + timedelta(milliseconds=10 * clock)
            clock += 1
        store.add_events(RUN_ID, events)
    store.set_status(RUN_ID, "finished")
    store.close()
    return run_dir


def build(run_dir: Path) -> Path:
    """The recorded fixed run, loaded into `run_dir`."""
    return load(json.loads(DATA.read_text()), run_dir)


def main() -> None:
    """Run the replay society (3 rounds) and record it into replay_run.json."""
    from coevo.society.checker import make_replay_engines
    from coevo.society.session import run_society
    from tests.society.replay_society import replay_config

    config = replay_config(["schedule.rounds=3"])
    with tempfile.TemporaryDirectory() as tmp:
        source_dir = Path(tmp) / "replay"
        asyncio.run(run_society(config, source_dir, resume=False, engines=make_replay_engines(config)))
        DATA.write_text(json.dumps(record(source_dir), indent=1, sort_keys=True) + "\n")
    print(f"recorded {DATA}", file=sys.stderr)


if __name__ == "__main__":
    main()
