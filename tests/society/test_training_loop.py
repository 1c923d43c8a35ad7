"""Training inside a run: a due trainer builds its dataset from memory, trains a real LoRA adapter
(on a tiny model), records policy version v+1, hot-loads it into the engine, and the next round's
requests are served by it; a failed training run leaves the previous policy serving; a resumed
run serves its latest adapter again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.checker import replay_responder
from coevo.society.session import load_snapshot, run_id_for, run_society
from tests.society.replay_society import replay_config


def _config(tiny_model: str, rounds: int, args: str) -> list[str]:
    return [
        f"engines.local.model={tiny_model}",
        "agents.solver.trainable=true",
        f"schedule.rounds={rounds}",
        "schedule.success_band=[0.0, 0.75]",
        f"trainers=[{{kind: socratic_solver_dpo, agent: solver, every: 1, args: {args}}}]",
    ]


ARGS = "{max_steps: 2, per_device_train_batch_size: 2, max_length: 128}"


def test_adapter_trained_loaded_and_served(tiny_model: str, tmp_path: Path) -> None:
    config = replay_config(_config(tiny_model, 2, ARGS))
    engine = ReplayEngine(replay_responder)
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines={"local": engine}))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    assert [p.version for p in store.policy_versions(run_id, "solver")] == [1, 2]
    assert all(t.ok and t.examples > 0 for t in store.training_runs(run_id, "solver"))
    assert [name for name, _ in engine.adapter_loads] == ["solver-v1", "solver-v2"]
    assert "solver-v1" in engine.served_adapters  # round 1 ran on the adapter trained after round 0
    assert {a.policy_version for a in store.attempts(run_id, rounds=[1])} == {"v1"}
    types = [e.type for e in store.events(run_id)]
    assert types.count("TrainingFinished") == 2 and types.count("AdapterLoaded") == 2

    # Resume with one more round: the latest adapter is served again, then v3 is trained.
    more = load_snapshot(run_dir, ["schedule.rounds=3"])
    fresh = ReplayEngine(replay_responder)
    asyncio.run(run_society(more, run_dir, resume=True, engines={"local": fresh}))
    assert [name for name, _ in fresh.adapter_loads] == ["solver-v2", "solver-v3"]
    assert {a.policy_version for a in store.attempts(run_id, rounds=[2])} == {"v2"}


def test_failed_training_keeps_previous_policy(tiny_model: str, tmp_path: Path) -> None:
    config = replay_config(_config(tiny_model, 2, "{learning_rate: -1.0}"))
    engine = ReplayEngine(replay_responder)
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines={"local": engine}))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    runs = store.training_runs(run_id, "solver")
    assert len(runs) == 2 and not any(t.ok for t in runs)
    assert runs[0].error and "learning_rate" in runs[0].error
    assert store.policy_versions(run_id, "solver") == []
    assert set(engine.served_adapters) == {None}
    assert store.get_run(run_id).status == "finished"  # type: ignore[union-attr]


def test_stat_rows_stay_inside_the_run_s_curriculum_levels(tmp_path: Path) -> None:
    import random
    import re

    from coevo.society.checker import make_replay_engines
    from coevo.society.training import _stat_sft_rows
    from coevo.trainers.stat_sft_config import StatSFTConfig

    levels = "{digits: [1, 1], steps: [1, 1], distractors: [0, 0]}"
    config = replay_config(["schedule.rounds=1", f"agents.teacher.curriculum.levels={levels}"])
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    settings = StatSFTConfig(select_per_skill=2, synth_per_skill=3)
    rows = _stat_sft_rows(
        Store.for_run_dir(run_dir), run_id_for(run_dir), "solver", range(1), settings, random.Random(0)
    )
    questions = [row["prompt"][-1]["content"] for row in rows]
    assert len(questions) > 3
    # Selected and synthesized problems alike: single-digit operands, one operation.
    assert all(int(n) < 10 for q in questions for n in re.findall(r"\d+", q)), questions
