"""Training inside a run, on the replay engine: a due trainer trains a real LoRA adapter (on a tiny
model), the run records policy version v+1 with a live step counter, loads the adapter into the
engine under the version's name and labels the next round's attempts with it; a resumed run loads
its latest adapter again; a failed training stops the run, or (when told to continue) leaves the
previous policy serving; an engine that ignores a loaded adapter stops the run.

The replay engine has no weights (its text depends on the adapter's name), so here "loaded" and
"served" are bookkeeping only. That the served text comes from the newly trained weights is shown
on the transformers engine (tests/society/test_training_real_engine.py), and where each trainer's
rows come from in tests/society/test_trainers_in_society.py."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.checker import replay_responder
from coevo.society.errors import TrainingFailedError
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


def test_trainings_are_recorded_loaded_by_version_and_loaded_again_on_resume(
    tiny_model: str, tmp_path: Path
) -> None:
    config = replay_config(_config(tiny_model, 2, ARGS))
    engine = ReplayEngine(replay_responder)
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines={"local": engine}))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    assert [p.version for p in store.policy_versions(run_id, "solver")] == [1, 2]
    assert all(t.ok and t.examples > 0 for t in store.training_runs(run_id, "solver"))
    assert [name for name, _ in engine.adapter_loads] == ["solver-v1", "solver-v2"]
    assert "solver-v1" in engine.served_adapters  # round 1's requests named v1 (by name only)
    assert {a.policy_version for a in store.attempts(run_id, rounds=[1])} == {"v1"}
    types = [e.type for e in store.events(run_id)]
    assert types.count("TrainingFinished") == 2 and types.count("AdapterLoaded") == 2
    # A live step counter: one committed TrainingStep per optimizer step, before its TrainingFinished.
    steps = [e for e in store.events(run_id) if e.type == "TrainingStep"]
    assert [(e.round, e.step, e.max_steps) for e in steps] == [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]  # type: ignore[union-attr]
    assert all("loss" in e.metrics for e in steps)  # type: ignore[union-attr]
    assert types.index("TrainingStep") < types.index("TrainingFinished")

    # Resume with one more round: the latest adapter is served again, then v3 is trained.
    more = load_snapshot(run_dir, ["schedule.rounds=3"])
    fresh = ReplayEngine(replay_responder)
    asyncio.run(run_society(more, run_dir, resume=True, engines={"local": fresh}))
    assert [name for name, _ in fresh.adapter_loads] == ["solver-v2", "solver-v3"]
    assert {a.policy_version for a in store.attempts(run_id, rounds=[2])} == {"v2"}


def _failing_trainer(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every training fails; returns, per training, whether progress bars were on during it."""
    import datasets

    from coevo.trainers import registry

    bars: list[bool] = []

    def boom(*args: object) -> object:
        bars.append(datasets.utils.logging.is_progress_bar_enabled())
        raise RuntimeError("out of memory")

    kind = registry.TRAINERS["socratic_solver_dpo"]
    monkeypatch.setitem(registry.TRAINERS, "socratic_solver_dpo", dataclasses.replace(kind, train=boom))
    return bars


def test_a_failed_training_stops_the_run_by_default(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_trainer(monkeypatch)
    config = replay_config(_config(tiny_model, 3, ARGS))
    run_dir = tmp_path / "run"
    with pytest.raises(
        TrainingFailedError, match=r"RuntimeError: out of memory.*on_training_error: continue"
    ) as raised:
        asyncio.run(
            run_society(config, run_dir, resume=False, engines={"local": ReplayEngine(replay_responder)})
        )
    # The cause is chained, not flattened into a line.
    assert isinstance(raised.value.__cause__, RuntimeError) and str(raised.value.__cause__) == "out of memory"
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    assert store.get_run(run_id).status == "failed"  # type: ignore[union-attr]
    assert store.last_committed_round(run_id) == 0  # stopped right after the failed training
    [failed] = store.training_runs(run_id, "solver")
    assert not failed.ok and "out of memory" in (failed.error or "")
    types = [e.type for e in store.events(run_id)]
    assert types.count("TrainingStarted") == 1 and types.count("TrainingFinished") == 1
    # The traceback is in the TrainingFinished event's error (the TUI and `coevo show` have it) and
    # in the run's log, where the trainer function that raised is named.
    [finished] = [e for e in store.events(run_id) if e.type == "TrainingFinished"]
    assert finished.error.startswith("Traceback") and "in boom" in finished.error  # type: ignore[union-attr]
    logged = (run_dir / "coevo.log").read_text()
    assert (
        "ERROR coevo.society.training: training solver with socratic_solver_dpo after round 0 failed"
        in logged
    )
    assert "in boom" in logged and 'raise RuntimeError("out of memory")' in logged
    assert "ERROR coevo.society.session: run" in logged


def test_failed_training_keeps_previous_policy_when_told_to_continue(
    tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    bars = _failing_trainer(monkeypatch)
    config = replay_config([*_config(tiny_model, 2, ARGS), "on_training_error=continue"])
    engine = ReplayEngine(replay_responder)
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines={"local": engine}))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    runs = store.training_runs(run_id, "solver")
    assert len(runs) == 2 and not any(t.ok for t in runs)
    assert runs[0].error and "out of memory" in runs[0].error
    assert store.policy_versions(run_id, "solver") == []
    assert set(engine.served_adapters) == {None}
    assert store.get_run(run_id).status == "finished"  # type: ignore[union-attr]
    # Progress bars are off during each training only: the process's switch is as it was after.
    assert bars == [False, False] and datasets.utils.logging.is_progress_bar_enabled()


def test_an_engine_that_ignores_the_new_adapter_stops_the_run(tiny_model: str, tmp_path: Path) -> None:
    from coevo.society.errors import PolicyNotServedError

    class DeafEngine(ReplayEngine):
        """Loads adapters, then keeps answering as the base model."""

        async def generate(self, requests):  # type: ignore[no-untyped-def]
            return await super().generate([dataclasses.replace(r, adapter=None) for r in requests])

    config = replay_config(_config(tiny_model, 2, ARGS))
    with pytest.raises(PolicyNotServedError, match="not serving the new adapter"):
        asyncio.run(
            run_society(
                config, tmp_path / "run", resume=False, engines={"local": DeafEngine(replay_responder)}
            )
        )


def test_stat_rows_stay_inside_the_run_s_curriculum_levels(tmp_path: Path) -> None:
    import random
    import re

    from coevo.society.checker import make_replay_engines
    from coevo.trainers.datasets import RowRequest, stat_sft_rows
    from coevo.trainers.stat_sft_config import StatSFTConfig

    levels = "{digits: [1, 1], steps: [1, 1], distractors: [0, 0]}"
    config = replay_config(["schedule.rounds=1", f"agents.teacher.curriculum.levels={levels}"])
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    settings = StatSFTConfig(select_per_skill=2, synth_per_skill=3)
    _, bounds = config.curriculum_space()
    request = RowRequest(
        Store.for_run_dir(run_dir), run_id_for(run_dir), "solver", range(1), random.Random(0), bounds
    )
    rows = stat_sft_rows(request, settings)
    questions = [row["prompt"][-1]["content"] for row in rows]
    assert len(questions) > 3
    # Selected and synthesized problems alike: single-digit operands, one operation.
    assert all(int(n) < 10 for q in questions for n in re.findall(r"\d+", q)), questions
