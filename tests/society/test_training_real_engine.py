"""Training inside a society on a real engine: the transformers engine serving the built-in model
(SmolLM2-135M-Instruct), which the trainers train a LoRA adapter of.

- The served text comes from the trained weights: a society poses a few one-digit additions and
  the Solver answers them greedily; `sft` trains on the reference solutions of those it got wrong
  ("3 + 6 = 9\\nThe answer is 9.", a format the base model does not use); then the very engine the
  society ran on answers those prompts, greedily under the new adapter, with exactly the trained
  completions, while the base model's answers (stored as the round's attempts) differ from them.
  An engine that kept serving the old weights, or a training that taught nothing, fails here.
- Every other trainer kind runs one training on this engine, on rows made from the run's records,
  and the new adapter is loaded and served (the training service's probe answered differently):
  `stat_sft` after one round of the Solver society of replay_society.py, and
  configs/socratic_zero.yaml's `socratic_solver_dpo` and `socratic_generator_sft` after two rounds
  (the Generator's rows need a refined problem attempted in the round after its demonstration).

The trainers run with `base_precision: fp32`, so that the test trains alike on every CPU (the
default, "auto", picks a bf16 frozen base only where the CPU multiplies bf16 natively).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from coevo.engines.base import GenerationRequest, SamplingParams
from coevo.engines.transformers_engine import TransformersEngine
from coevo.memory.store import Store
from coevo.society.config import SocietyConfig
from coevo.society.loading import load_config, parse_config
from coevo.society.session import run_id_for, run_society
from tests.society.replay_society import replay_config
from tests.society.trainer_rows import Training, check_rows, text

pytestmark = pytest.mark.slow

BUILTIN = "builtin:smollm2-135m-instruct"
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ONE_STEP = "max_steps: 1, per_device_train_batch_size: 2, max_length: 256, base_precision: fp32"

SFT_SOCIETY = """
name: served
seed: 3
engines:
  local: {kind: transformers, model: "builtin:smollm2-135m-instruct"}
agents:
  teacher:
    role: teacher
    policy: procedural
    curriculum:
      kind: static
      skills: [add_no_carry]
      levels: {digits: [1, 1], steps: [1, 1], distractors: [0, 0]}
  solver:
    role: solver
    engine: local
    trainable: true
    lora: {r: 8, alpha: 16}
    sampling: {temperature: 0.0, max_tokens: 24}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
# Only problems the Solver failed join the curriculum, so the rows are their reference solutions.
schedule: {rounds: 1, problems_per_round: 3, attempts_per_problem: 1, success_band: [0.0, 0.0]}
trainers:
  - kind: sft
    agent: solver
    args: {learning_rate: 2.0e-3, lr_scheduler_type: constant, max_steps: 6, per_device_train_batch_size: 3,
           max_length: 256, base_precision: fp32}
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[TransformersEngine]:
    """One engine for the module's societies (each run names its adapters anew)."""
    served = TransformersEngine(BUILTIN)
    yield served
    asyncio.run(served.close())


def run(config: SocietyConfig, run_dir: Path, engine: TransformersEngine) -> tuple[Store, str]:
    asyncio.run(run_society(config, run_dir, resume=False, engines={"local": engine}))
    store = Store.for_run_dir(run_dir)
    run_id = run_id_for(run_dir)
    assert store.get_run(run_id).status == "finished"  # type: ignore[union-attr]
    return store, run_id


def greedy(engine: TransformersEngine, prompts: list[list[dict[str, str]]], adapter: str | None) -> list[str]:
    async def ask() -> list[str]:
        params = SamplingParams(temperature=0.0, max_tokens=24)
        results = await engine.generate([GenerationRequest(p, params, adapter) for p in prompts])  # type: ignore[arg-type]
        return [r.completions[0].text for r in results]

    return asyncio.run(ask())


def test_sft_in_a_society_makes_the_served_policy_answer_with_the_trained_completions(
    engine: TransformersEngine, tmp_path: Path, trainings: list[Training]
) -> None:
    store, run_id = run(parse_config(SFT_SOCIETY, "served.yaml"), tmp_path / "run", engine)
    [training] = trainings
    check_rows(training, store, run_id, "solver", 0)
    prompts = [row["prompt"] for row in training.rows]
    taught = [text(row["completion"]) for row in training.rows]
    assert len(taught) >= 2 and all(t.endswith(".") and "\nThe answer is " in t for t in taught)

    # The base model's greedy answers, as the round stored them, are not what was taught.
    base = {a.problem_id: a.response for a in store.attempts(run_id)}
    questions = {p.question: p.problem_id for p in store.problems(run_id)}
    before = [base[questions[p[-1]["content"]]] for p in prompts]
    assert all(b != t for b, t in zip(before, taught, strict=True)), (before, taught)
    # The engine's base model still does not (the adapter is named per request).
    assert all(b != t for b, t in zip(greedy(engine, prompts, None), taught, strict=True))

    # The policy the engine now serves for the Solver answers with the trained completions.
    [policy] = store.policy_versions(run_id, "solver")
    assert policy.version == 1
    assert greedy(engine, prompts, "solver-v1") == taught


def test_stat_sft_trains_on_the_run_s_records_and_is_served(
    engine: TransformersEngine, tmp_path: Path, trainings: list[Training]
) -> None:
    config = replay_config(
        [
            "engines.local.kind=transformers",
            f"engines.local.model={BUILTIN}",
            "agents.solver.trainable=true",
            "agents.solver.sampling.max_tokens=24",
            "schedule.rounds=1",
            "schedule.problems_per_round=3",
            "schedule.attempts_per_problem=2",
            f"trainers=[{{kind: stat_sft, agent: solver, args: {{{ONE_STEP}, select_per_skill: 1, "
            "synth_per_skill: 1}}]",
        ]
    )
    store, run_id = run(config, tmp_path / "run", engine)
    [training] = trainings
    check_rows(training, store, run_id, "solver", 0)
    [loaded] = store.events(run_id, types=["AdapterLoaded"])
    assert loaded.agent == "solver" and loaded.version == "v1"  # type: ignore[union-attr]


def test_socratic_zero_trains_its_solver_and_generator_and_serves_them(
    engine: TransformersEngine, tmp_path: Path, trainings: list[Training]
) -> None:
    config = load_config(
        CONFIGS / "socratic_zero.yaml",
        [
            "engines.local.kind=transformers",
            "engines.local.options={}",
            # One-digit additions and subtractions, which the base model sometimes gets right: the
            # problems it gets partly right are refined, and the refinements are what both train on.
            "agents.teacher.curriculum.levels={digits: [1, 1], steps: [1, 1], distractors: [0, 0]}",
            "agents.solver.sampling.max_tokens=32",
            "agents.generator.sampling.max_tokens=32",
            "schedule.rounds=2",
            "schedule.problems_per_round=6",
            "schedule.attempts_per_problem=4",
            # Both train once, after the last round.
            f"trainers.0.args={{{ONE_STEP}}}",
            "trainers.0.every=2",
            f"trainers.1.args={{{ONE_STEP}}}",
        ],
    )
    store, run_id = run(config, tmp_path / "run", engine)
    assert [t.kind for t in trainings] == ["socratic_solver_dpo", "socratic_generator_sft"]
    for training, agent in zip(trainings, ["solver", "generator"], strict=True):
        check_rows(training, store, run_id, agent, 1)
    loaded = [(e.agent, e.version) for e in store.events(run_id, types=["AdapterLoaded"])]  # type: ignore[union-attr]
    assert loaded == [("solver", "v1"), ("generator", "v1")]


def test_lbt_trains_its_teacher_on_the_rationales_it_wrote_and_serves_it(
    engine: TransformersEngine, tmp_path: Path, trainings: list[Training]
) -> None:
    # configs/lbt.yaml on the built-in model, one round: the Teacher's pairs are rationales the
    # model wrote (each a completion stored on an Explanation, for the prompt stored with it), and
    # the adapter trained on them is loaded for the Teacher.
    config = load_config(
        CONFIGS / "lbt.yaml",
        [
            "engines.local.kind=transformers",
            "engines.local.options={}",
            "agents.teacher.curriculum.levels={digits: [1, 1], steps: [1, 1], distractors: [0, 0]}",
            "agents.teacher.params.exam_problems=1",
            "agents.teacher.sampling.max_tokens=48",
            *(f"agents.student_{s}.params.exam_tries=2" for s in "abc"),
            *(f"agents.student_{s}.sampling.max_tokens=24" for s in "abc"),
            "schedule.rounds=1",
            "schedule.problems_per_round=2",
            f"trainers.0.args={{{ONE_STEP}}}",
        ],
    )
    store, run_id = run(config, tmp_path / "run", engine)
    [training] = trainings
    assert training.kind == "lbt_teacher_dpo" and training.rows
    explanations = store.events(run_id, types=["Explanation"])
    written = {(e.completion, tuple(m["content"] for m in e.prompt)) for e in explanations}  # type: ignore[union-attr]
    for row in training.rows:
        prompt = tuple(m["content"] for m in row["prompt"])
        assert (text(row["chosen"]), prompt) in written and (text(row["rejected"]), prompt) in written
    [loaded] = store.events(run_id, types=["AdapterLoaded"])
    assert loaded.agent == "teacher" and loaded.version == "v1"  # type: ignore[union-attr]
