"""Evaluating a run's policies: `base`/`latest`/`vN` resolve to the right adapter, the result is
stored in the run's memory, and unknown policies are clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from coevo.engines.replay import ReplayEngine
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.evaluation import PolicyError, evaluate_policy
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


def test_demo_table_reports_gains_over_base_and_few_shot_with_spread() -> None:
    from coevo.society.demo import DemoResult, SeedResult, format_result
    from coevo.tasks.evaluate import EvalReport

    def report(acc: float) -> EvalReport:
        return EvalReport(
            n=10, correct=int(acc * 10), accuracy=acc, ci_low=0.0, ci_high=1.0, per_skill={"a": (10, acc)}
        )

    result = DemoResult(
        base=report(0.1),
        fewshot=report(0.2),
        seeds=[SeedResult(0, report(0.5), report(0.3)), SeedResult(1, report(0.3), report(0.3))],
    )
    table = format_result(result)
    assert "trained (2 seeds)" in table.splitlines()[0]
    [overall] = [line for line in table.splitlines() if line.startswith("all (10 problems)")]
    # base, few-shot, trained (mean ± sd over seeds), vs base, vs few-shot
    assert overall.split()[3:] == [
        "10.0%",
        "20.0%",
        "40.0%",
        "±",
        "14.1",
        "30.0p",
        "±",
        "14.1",
        "20.0p",
        "±",
        "14.1",
    ]
    assert "gain over base: mean +30.0p, worst +20.0p" in table.splitlines()
    assert "adaptive - static:  10.0p ± 14.1 over 2 seed(s)" in table.splitlines()

    # A loss is signed: trained below the base model reads -20.0p, never 20.0p.
    worse = format_result(
        DemoResult(base=report(0.5), fewshot=report(0.2), seeds=[SeedResult(0, report(0.3))])
    )
    [overall] = [line for line in worse.splitlines() if line.startswith("all (10 problems)")]
    assert overall.split()[3:] == ["50.0%", "20.0%", "30.0%", "-20.0p", "10.0p"]


def test_demo_runs_seeds_and_baselines_on_one_engine(tmp_path: Path) -> None:
    from coevo.society.demo import DEMO_CONFIG, STATIC_CONFIG, run_demo
    from coevo.society.loading import load_config

    replay = [
        "engines.local.kind=replay",
        "engines.local.options={}",
        "trainers=[]",
        "agents.solver.trainable=false",
        "agents.solver.lora=null",
        "schedule.rounds=1",
        "schedule.problems_per_round=4",
    ]
    config, static = load_config(DEMO_CONFIG, replay), load_config(STATIC_CONFIG, replay)
    prompts: list[int] = []

    def answer(m: list[dict[str, str]], p: object, adapter: str | None, i: int, s: object) -> str:
        prompts.append(len(m))
        return "The answer is -1"

    engine = ReplayEngine(answer)
    result = asyncio.run(
        run_demo(config, static, [3, 4], tmp_path, eval_limit=20, fewshot=2, gsm8k=[], engine=engine)
    )
    assert [r.seed for r in result.seeds] == [3, 4] and all(r.static is not None for r in result.seeds)
    assert result.base.n == 20 and result.fewshot is not None and result.fewshot.n == 20
    assert 2 + 2 * 2 in prompts  # the few-shot prompt: system, two worked examples, the question
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo-seed3",
        "demo-seed4",
        "demo-static-seed3",
        "demo-static-seed4",
    ]
    assert not engine.closed
