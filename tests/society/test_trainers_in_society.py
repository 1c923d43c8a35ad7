"""Every trainer kind trains inside a society, on rows made from that society's own records, and its
adapter serves the agent's next round.

On the replay engine (a test double: it serves text, while each trainer trains a real LoRA adapter of
the tiny model): `sft` and `stat_sft` on the small Solver society of replay_society.py for two rounds,
and `socratic_solver_dpo` with `socratic_generator_sft` as configs/socratic_zero.yaml ships them
(the Generator trains every other round, so that run has three). Each training's rows are read as
the trainer received them and matched against the run's stored problems, attempts and
demonstrations: a DPO pair's chosen side is a correct attempt at its problem (or its reference
solution when none was correct) and its rejected side an incorrect one; an SFT completion is a
correct attempt or a reference solution; a STAT row is a stored problem's reference solution, or a
synthesized problem (at most `synth_per_skill` per missing skill) whose worked answer is right; a
Generator row is a demonstration sent to it, weighted by the Solver's success on the refined
problem. "Serves" here means the next round's requests named the new adapter and its messages carry
the new version: the replay engine has no weights. That the served text comes from the trained
weights is shown on the transformers engine, in test_training_real_engine.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.config import SocietyConfig
from coevo.society.loading import load_config
from coevo.society.session import run_id_for, run_society
from tests.society.replay_society import replay_config
from tests.society.trainer_rows import Records, Training, check_rows

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# One optimizer step per training: these tests are about where rows come from and what serves next.
STEP = "max_steps: 1, per_device_train_batch_size: 2, max_length: 128"


def run(config: SocietyConfig, run_dir: Path) -> tuple[Store, str, ReplayEngine]:
    engines = make_replay_engines(config)
    asyncio.run(run_society(config, run_dir, resume=False, engines=engines))
    [engine] = engines.values()
    assert isinstance(engine, ReplayEngine)
    return Store.for_run_dir(run_dir), run_id_for(run_dir), engine


def check_served(
    store: Store, run_id: str, engine: ReplayEngine, agent: str, version: int, round_index: int
) -> None:
    """The adapter trained after `round_index` was loaded under its version's name and answered the
    agent's requests of the next round, whose messages carry that version."""
    adapter = f"{agent}-v{version}"
    [policy] = [p for p in store.policy_versions(run_id, agent) if p.version == version]
    assert policy.created_round == round_index
    assert (adapter, Path(policy.adapter_path or "")) in engine.adapter_loads
    sent = [e for e in store.events(run_id) if e.sender == agent and e.round == round_index + 1]
    assert sent and {e.policy_version for e in sent} == {f"v{version}"}
    # Besides the training service's probe (once), the round's own requests named the adapter.
    assert engine.served_adapters.count(adapter) > 1


@pytest.mark.parametrize("kind", ["sft", "stat_sft"])
def test_solver_sft_kinds_train_on_the_run_s_records_and_serve_the_next_round(
    kind: str, tiny_model: str, tmp_path: Path, trainings: list[Training]
) -> None:
    extra = ", select_per_skill: 2, synth_per_skill: 1" if kind == "stat_sft" else ""
    config = replay_config(
        [
            f"engines.local.model={tiny_model}",
            "schedule.rounds=2",
            "agents.solver.trainable=true",
            "schedule.success_band=[0.0, 0.75]",
            f"trainers=[{{kind: {kind}, agent: solver, every: 1, args: {{{STEP}{extra}}}}}]",
        ]
    )
    store, run_id, engine = run(config, tmp_path / "run")
    assert [(t.kind, t.output.name) for t in trainings] == [(kind, ".partial-v1"), (kind, ".partial-v2")]
    for round_index, training in enumerate(trainings):
        check_rows(training, store, run_id, "solver", round_index)
    check_served(store, run_id, engine, "solver", 1, 0)
    if kind == "stat_sft":  # both sources of STAT rows were used
        assert any(
            r["prompt"][-1]["content"] not in Records(store, run_id, "solver", 1).problems
            for r in trainings[1].rows
        )


def test_socratic_zero_trains_its_solver_and_generator_on_the_run_s_records(
    tiny_model: str, tmp_path: Path, trainings: list[Training]
) -> None:
    config = load_config(
        CONFIGS / "socratic_zero.yaml",
        [
            f"engines.local.model={tiny_model}",
            "schedule.rounds=3",
            "schedule.problems_per_round=6",
            "schedule.attempts_per_problem=4",
            f"trainers.0.args={{{STEP}}}",
            f"trainers.1.args={{{STEP}}}",
        ],
    )
    assert [(t.kind, t.agent, t.every) for t in config.trainers] == [
        ("socratic_solver_dpo", "solver", 1),
        ("socratic_generator_sft", "generator", 2),
    ]
    store, run_id, engine = run(config, tmp_path / "run")
    kinds = [t.kind for t in trainings]
    # The Solver after every round; the Generator after round 1 (every: 2), after the Solver.
    assert kinds == ["socratic_solver_dpo"] * 2 + ["socratic_generator_sft", "socratic_solver_dpo"]
    for training, round_index in zip(trainings, [0, 1, 1, 2], strict=True):
        agent = "generator" if training.kind == "socratic_generator_sft" else "solver"
        check_rows(training, store, run_id, agent, round_index)
    check_served(store, run_id, engine, "solver", 1, 0)
    check_served(store, run_id, engine, "solver", 2, 1)
    check_served(store, run_id, engine, "generator", 1, 1)


def test_lbt_trains_its_teacher_on_its_scored_rationales_and_serves_the_next_round(
    tiny_model: str, tmp_path: Path, trainings: list[Training]
) -> None:
    # LbT's M2 as configs/lbt.yaml ships it: each row pairs two rationales the Teacher wrote for the
    # same stored prompt in the round just played, the chosen one scored more than the gap higher
    # by the run's own ExplanationScored events; the next round's rationales come from the adapter.
    from coevo.messages import Explanation, ExplanationScored

    config = load_config(
        CONFIGS / "lbt.yaml",
        [f"engines.local.model={tiny_model}", "schedule.problems_per_round=4", f"trainers.0.args={{{STEP}}}"],
    )
    store, run_id, engine = run(config, tmp_path / "run")
    assert [t.kind for t in trainings] == ["lbt_teacher_dpo"] * 2
    events = store.events(run_id)
    scores = {e.explanation_id: e for e in events if isinstance(e, ExplanationScored)}
    for round_index, training in enumerate(trainings):
        written = {
            (e.completion, tuple(m["content"] for m in e.prompt)): e
            for e in events
            if isinstance(e, Explanation) and e.round == round_index and e.sender == "teacher"
        }
        assert training.rows, "no pairs: the test's society gives none to check"
        for row in training.rows:
            prompt = tuple(m["content"] for m in row["prompt"])
            chosen = written[(row["chosen"][-1]["content"], prompt)]
            rejected = written[(row["rejected"][-1]["content"], prompt)]
            assert chosen.problem_id == rejected.problem_id
            high, low = scores[chosen.id], scores[rejected.id]
            assert high.graded and low.graded and high.score - low.score > 0.3 + 1e-9
        per_problem: dict[str, int] = {}
        for row in training.rows:
            problem = written[
                (row["chosen"][-1]["content"], tuple(m["content"] for m in row["prompt"]))
            ].problem_id
            per_problem[problem] = per_problem.get(problem, 0) + 1
        assert max(per_problem.values()) <= 8
    check_served(store, run_id, engine, "teacher", 1, 0)


@pytest.mark.parametrize(
    ("name", "kind", "agent"),
    [("socratic_zero", "socratic_generator_sft", "generator"), ("lbt", "lbt_teacher_dpo", "teacher")],
)
def test_rows_built_from_events_do_not_depend_on_the_order_they_were_journaled(
    name: str, kind: str, agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Concurrent episodes journal their events in whatever order they run (on a loaded machine,
    # another than on an idle one), so a builder reading events must not follow that order: the
    # cross-process determinism check caught both of these on a busy machine.
    from coevo.trainers.datasets import RowRequest, training_rng
    from coevo.trainers.registry import TRAINERS

    trainable = [a for a, spec in load_config(CONFIGS / f"{name}.yaml").agents.items() if spec.trainable]
    off = [f"agents.{a}.{field}" for a in trainable for field in ("trainable=false", "lora=null")]
    config = load_config(CONFIGS / f"{name}.yaml", ["trainers=[]", *off, "schedule.rounds=2"])
    store, run_id, _ = run(config, tmp_path / "run")
    trainer = TRAINERS[kind]

    def rows() -> list[dict[str, object]]:
        request = RowRequest(store, run_id, agent, range(0, 2), training_rng(0, kind, 1))
        return trainer.rows(request, trainer.config_class())

    stored = rows()
    journaled = Store.iter_events

    def episodes_reversed(self: Store, *args: object, **kwargs: object) -> object:
        # The episodes journaled last-first, each episode's own events in their order (a reply
        # always follows what it answers).
        for batch in journaled(self, *args, **kwargs):  # type: ignore[arg-type]
            yield sorted(batch, key=lambda e: -1 if e.episode is None else -e.episode)

    monkeypatch.setattr(Store, "iter_events", episodes_reversed)
    assert stored and rows() == stored
