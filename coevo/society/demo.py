"""`coevo demo`: the demo society (configs/demo.yaml) for one or more seeds, then the Solver's
held-out accuracy against the baselines it must beat, with repeats summarised as mean ± standard
deviation — a single run is an anecdote (vLLM's CPU kernels are not bit-identical across
processors, so a seed's numbers move from one machine to another; only the spread says what a
user will see).

Every policy is measured the same way: greedy decoding, at most 128 new tokens, on the same
held-out problems of the run's skills and difficulty levels (disjoint from training by
construction). The baselines:

- `base`: the built-in model zero-shot, with the Solver's prompt;
- `few-shot`: the same model shown `--fewshot` worked examples (training-partition problems of
  the same skills, solved in the answer format "… The answer is N."), which controls for how much
  of the gain is only the answer format;
- `static` (with `--static`): the same society and training with a static curriculum
  (configs/demo_static.yaml), for the adaptive-versus-static comparison;
- GSM8K (with `--gsm8k N`): the first N test problems, at most 256 tokens, for transfer outside
  the trained skills.

One engine serves every run and evaluation (vLLM starts once).
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coevo.engines.base import ChatMessage, Engine, SamplingParams
from coevo.society.config import SocietyConfig
from coevo.tasks.evaluate import EvalReport, PromptFn, evaluate
from coevo.tasks.problem import Problem
from coevo.tasks.prompts import solution_text, solver_messages
from coevo.tasks.verifier import Grader

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEMO_CONFIG = CONFIGS / "demo.yaml"
STATIC_CONFIG = CONFIGS / "demo_static.yaml"
HELDOUT_MAX_TOKENS = 128
GSM8K_MAX_TOKENS = 256


@dataclass
class SeedResult:
    seed: int
    trained: EvalReport
    static: EvalReport | None = None
    gsm8k: EvalReport | None = None


@dataclass
class DemoResult:
    base: EvalReport
    fewshot: EvalReport | None
    seeds: list[SeedResult] = field(default_factory=list)
    base_gsm8k: EvalReport | None = None


def fewshot_examples(config: SocietyConfig, k: int, seed: int = 0) -> list[Problem]:
    """`k` training-partition problems of the run's skills and levels, with worked solutions."""
    from coevo.tasks.curriculum import make_curriculum

    skills, levels = config.curriculum_space()
    curriculum = make_curriculum("uniform", skills=skills, seed=seed, levels=levels)
    return curriculum.sample(k, random.Random(seed))


def fewshot_prompt(examples: Sequence[Problem]) -> PromptFn:
    """The Solver's prompt with worked examples as earlier turns of the conversation."""

    def prompt(question: str) -> list[ChatMessage]:
        system, user = solver_messages(question)
        shots: list[ChatMessage] = []
        for example in examples:
            shots.append({"role": "user", "content": example.question})
            shots.append({"role": "assistant", "content": solution_text(example.solution, example.answer)})
        return [system, *shots, user]

    return prompt


async def run_demo(
    config: SocietyConfig,
    static_config: SocietyConfig | None,
    seeds: Sequence[int],
    run_root: Path,
    *,
    eval_limit: int,
    fewshot: int,
    gsm8k: Sequence[Problem],
    engine: Engine,
) -> DemoResult:
    from coevo.society.evaluation import evaluate_policy
    from coevo.tasks.loaders import load_dataset_spec
    from coevo.tasks.verifier import Verifier

    # One verifier for the whole demo (its runs and evaluations), closed when it ends.
    async with Verifier() as verifier:
        solver = next(name for name, agent in config.agents.items() if agent.role == "solver")
        engine_name = config.agents[solver].engine
        assert engine_name is not None  # the config validator guarantees a Solver's engine
        skills, levels = config.curriculum_space()
        heldout = load_dataset_spec(
            "procedural-heldout", "test", eval_limit, skills=skills, seed=0, levels=levels
        )
        greedy = SamplingParams(temperature=0.0, max_tokens=HELDOUT_MAX_TOKENS)
        base = await evaluate(engine, heldout, params=greedy, verifier=verifier)
        shots = None
        if fewshot > 0:
            prompt = fewshot_prompt(fewshot_examples(config, fewshot))
            shots = await evaluate(
                engine,
                heldout,
                params=greedy,
                prompt=prompt,
                verifier=verifier,
            )
        gsm8k_problems = list(gsm8k)
        long = SamplingParams(temperature=0.0, max_tokens=GSM8K_MAX_TOKENS)
        result = DemoResult(base=base, fewshot=shots)
        if gsm8k_problems:
            result.base_gsm8k = await evaluate(engine, gsm8k_problems, params=long, verifier=verifier)
        for seed in seeds:
            arms: dict[str, EvalReport] = {}
            for arm, arm_config in (("adaptive", config), ("static", static_config)):
                if arm_config is None:
                    continue
                seeded = arm_config.model_copy(update={"seed": seed})
                run_dir = (
                    run_root / f"{arm_config.name}-seed{seed}"
                    if len(seeds) > 1
                    else run_root / arm_config.name
                )
                await _run(seeded, run_dir, {engine_name: engine}, verifier)
                _, arms[arm] = await evaluate_policy(
                    run_dir,
                    solver,
                    "latest",
                    heldout,
                    "procedural-heldout",
                    engine=engine,
                    max_tokens=HELDOUT_MAX_TOKENS,
                    verifier=verifier,
                )
                if arm == "adaptive" and gsm8k_problems:
                    _, arms["gsm8k"] = await evaluate_policy(
                        run_dir,
                        solver,
                        "latest",
                        gsm8k_problems,
                        "gsm8k",
                        engine=engine,
                        max_tokens=GSM8K_MAX_TOKENS,
                        verifier=verifier,
                    )
            result.seeds.append(SeedResult(seed, arms["adaptive"], arms.get("static"), arms.get("gsm8k")))
        return result


async def _run(config: SocietyConfig, run_dir: Path, engines: dict[str, Engine], verifier: Grader) -> None:
    """One demo run with the plain progress display, starting over in its folder."""
    import sys

    from coevo.society.bus import EventBus
    from coevo.society.progress import RunProgress
    from coevo.society.session import run_society

    print(f"run {config.name} (seed {config.seed}) in {run_dir}", file=sys.stderr)
    bus = EventBus()
    with RunProgress(config.schedule.rounds) as progress:
        bus.listen(progress)
        await run_society(
            config, run_dir, resume=False, force=True, engines=engines, bus=bus, grader=verifier
        )


def _points(value: float) -> str:
    return f"{100 * value:+.1f}p"


def _spread(values: Sequence[float]) -> str:
    """The mean, with the standard deviation when there are repeats (one seed has no spread)."""
    mean = f"{100 * statistics.fmean(values):5.1f}%"
    return f"{mean} ± {100 * statistics.stdev(values):4.1f}" if len(values) > 1 else mean


def _ci(report: EvalReport) -> str:
    return f"{report.accuracy:.1%} [{report.ci_low:.1%}, {report.ci_high:.1%}]"


def format_result(result: DemoResult) -> str:
    """The before/after table by skill (means ± standard deviations over seeds), then per seed."""
    base, shots, seeds = result.base, result.fewshot, result.seeds
    skills = sorted(set(base.per_skill) | {s for r in seeds for s in r.trained.per_skill})
    width = max(24, *(len(s) for s in skills))
    n = len(seeds)
    trained_head = "trained" if n == 1 else f"trained ({n} seeds)"
    head = (
        f"{'skill':<{width}} {'base':>7} {'few-shot':>9} {trained_head:>20} {'vs base':>16} "
        f"{'vs few-shot':>16}"
    )
    lines = [head, "-" * len(head)]

    def row(name: str, b: float, f: float | None, trained: list[float]) -> str:
        gains = [t - b for t in trained]
        over_shots = "-" if f is None else _spread([t - f for t in trained]).replace("%", "p")
        shot = "-" if f is None else f"{f:.1%}"
        return (
            f"{name:<{width}} {b:>7.1%} {shot:>9} {_spread(trained):>20} "
            f"{_spread(gains).replace('%', 'p'):>16} {over_shots:>16}"
        )

    def skill_acc(report: EvalReport | None, skill: str) -> float | None:
        return None if report is None else report.per_skill.get(skill, (0, 0.0))[1]

    for skill in skills:
        b = skill_acc(base, skill) or 0.0
        lines.append(
            row(skill, b, skill_acc(shots, skill), [skill_acc(r.trained, skill) or 0.0 for r in seeds])
        )
    lines.append(
        row(
            f"all ({base.n} problems)",
            base.accuracy,
            shots.accuracy if shots else None,
            [r.trained.accuracy for r in seeds],
        )
    )
    lines.append("")
    lines.append(f"base {_ci(base)}" + (f"   few-shot {_ci(shots)}" if shots else ""))
    for r in seeds:
        parts = [f"seed {r.seed}: trained {_ci(r.trained)} ({_points(r.trained.accuracy - base.accuracy)})"]
        if r.static is not None:
            difference = _points(r.trained.accuracy - r.static.accuracy)
            parts.append(f"static {_ci(r.static)} (adaptive - static {difference})")
        if r.gsm8k is not None and result.base_gsm8k is not None:
            parts.append(
                f"GSM8K {_ci(r.gsm8k)} vs base {_ci(result.base_gsm8k)} "
                f"({_points(r.gsm8k.accuracy - result.base_gsm8k.accuracy)})"
            )
        lines.append("   ".join(parts))
    gains = [r.trained.accuracy - base.accuracy for r in seeds]
    if n > 1:
        lines.append(f"gain over base: mean {_points(statistics.fmean(gains))}, worst {_points(min(gains))}")
    statics = [r for r in seeds if r.static is not None]
    if statics:
        diffs = [r.trained.accuracy - r.static.accuracy for r in statics if r.static is not None]
        lines.append(f"adaptive - static: {_spread(diffs).replace('%', 'p')} over {len(diffs)} seed(s)")
    return "\n".join(lines)
