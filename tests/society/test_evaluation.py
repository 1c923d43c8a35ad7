"""Evaluating a run's policies: `base`/`latest`/`vN` resolve to the right adapter, the result is
stored in the run's memory, and unknown policies are clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.evaluation import PolicyError, evaluate_policy, format_comparison
from coevo.society.session import run_id_for, run_society
from coevo.tasks.heldout import heldout_set
from tests.society.replay_society import replay_config


def test_policies_resolve_and_results_are_stored(tmp_path: Path) -> None:
    config = replay_config(["schedule.rounds=1"])
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    store.add_policy_version(run_id, "solver", 1, adapter_path=str(adapter), trainer="sft", created_round=0)

    problems = heldout_set(12, skills=["add_no_carry"])
    # Right answers from the adapter, wrong ones from the base model.
    engine = ReplayEngine(
        lambda m, p, adapter, i, s: (
            "The answer is "
            + (next(q.answer for q in problems if q.question == m[-1]["content"]) if adapter else "-1")
        )
    )

    async def run(policy: str) -> tuple[str, float]:
        label, report = await evaluate_policy(
            run_dir, "solver", policy, problems, "procedural-heldout", engine=engine, progress=False
        )
        return label, report.accuracy

    assert asyncio.run(run("base")) == ("base", 0.0)
    assert asyncio.run(run("latest")) == ("v1", 1.0)
    assert asyncio.run(run("v1")) == ("v1", 1.0)
    assert [name for name, _ in engine.adapter_loads] == ["solver-v1", "solver-v1"]
    with pytest.raises(PolicyError, match="has no policy v7; it has: base, v1"):
        asyncio.run(run("v7"))
    with pytest.raises(PolicyError, match="base, latest or vN"):
        asyncio.run(run("newest"))
    stored = store.evals(run_id)
    assert [(e.policy, e.n, e.correct) for e in stored] == [("base", 12, 0), ("v1", 12, 12), ("v1", 12, 12)]


def test_comparison_table() -> None:
    from coevo.tasks.evaluate import EvalReport

    before = EvalReport(n=10, correct=1, accuracy=0.1, ci_low=0.02, ci_high=0.4, per_skill={"a": (10, 0.1)})
    after = EvalReport(n=10, correct=5, accuracy=0.5, ci_low=0.2, ci_high=0.8, per_skill={"a": (10, 0.5)})
    table = format_comparison(("base", before), ("v2", after))
    assert "+40.0p" in table and "all (10 problems)" in table


def test_compare_measures_the_run_s_skills_and_levels_on_a_given_engine(tmp_path: Path) -> None:
    from coevo.society.evaluation import compare

    config = replay_config(
        ["schedule.rounds=1", "agents.teacher.curriculum.levels={digits: [1, 2], steps: [1, 1]}"]
    )
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    questions: list[str] = []

    def answer(m: list[dict[str, str]], p: object, adapter: str | None, i: int, s: object) -> str:
        questions.append(m[-1]["content"])
        return "The answer is -1"

    engine = ReplayEngine(answer)
    table = asyncio.run(compare(run_dir, "solver", limit=30, engine=engine))
    assert "all (30 problems)" in table and "add_carry" in table and "sub_borrow" not in table
    expected = heldout_set(
        30, skills=["add_no_carry", "add_carry", "sub_no_borrow"], levels={"digits": (1, 2), "steps": (1, 1)}
    )
    assert sorted(questions) == sorted([p.question for p in expected] * 2)  # base, then latest (= base here)
    assert not engine.closed
