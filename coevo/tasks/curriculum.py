"""Procedural curricula ("teachers" over the generator's parameter space): ALP-GMM, and the
uniform-random and fixed-difficulty baselines.

All share one interface: `sample(n, rng)` poses problems, `update(problem, reward)` reports the
Solver's success rate on one, `refine(problem, success_rate, rng)` makes a neighbouring problem
of the same skill (Socratic-Zero's refinement, done procedurally), and
`state_dict()`/`load_state_dict()` round-trip through JSON for resume.

Parameter space (ALP-GMM): one sub-space per skill, each the normalised difficulty cube
[0, 1]^3 (digits, steps, distractors), with its own history and its own Gaussian mixture. One
mixture over a joint space would have to treat the skill, a categorical, as a coordinate;
separate sub-spaces keep "nearest earlier task" meaningful (only tasks of the same skill are
neighbours). Skills themselves are chosen in proportion to their recent mean ALP (a skill not
tried yet counts as the most promising), so learning progress also steers which skill is posed.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coevo.tasks.problem import Problem
from coevo.tasks.procedural import generate
from coevo.tasks.skills import DIM_NAMES, SKILLS, Skill, get_skill, resolve_skills

Vector = list[float]
Levels = Mapping[str, Sequence[int]]


def problem_task(problem: Problem, specs: Mapping[str, Skill] | None = None) -> tuple[str, Vector] | None:
    """The (skill, normalised vector) a procedural problem was made from; None for other problems.
    A problem without a recorded vector is placed by its levels in `specs` (default: full ranges)."""
    details = problem.provenance.details
    skill = details.get("skill")
    if skill not in SKILLS:
        return None
    if "vector" in details:
        return skill, [float(v) for v in details["vector"]]
    params = details.get("params") or problem.difficulty
    spec = (specs or {}).get(skill) or get_skill(skill)
    return skill, spec.normalize(params)


def _clip(vector: Sequence[float]) -> Vector:
    return [min(1.0, max(0.0, float(v))) for v in vector]


class CurriculumTeacher(ABC):
    """Common machinery: problem generation from (skill, vector), refinement, and state."""

    kind: str = "abstract"

    def __init__(
        self,
        skills: Sequence[str] | None = None,
        seed: int = 0,
        refine_step: float = 0.25,
        levels: Levels | None = None,
    ) -> None:
        self.seed = seed
        # How far (in the normalised cube) a refinement moves toward harder or easier.
        self.refine_step = refine_step
        self._set_space(skills, levels)

    def _set_space(self, skills: Sequence[str] | None, levels: Levels | None) -> None:
        """The skills and, per skill, its difficulty ranges bounded by `levels`: the whole cube
        [0, 1]^3 then covers only the allowed levels, so every curriculum stays inside them."""
        self.skills = resolve_skills(skills)
        self.levels = {name: (int(low), int(high)) for name, (low, high) in (levels or {}).items()}
        self.specs = {skill: get_skill(skill).restrict(self.levels) for skill in self.skills}

    @abstractmethod
    def sample_task(self, rng: random.Random) -> tuple[str, Vector]:
        """The next (skill, normalised difficulty vector) to pose."""

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        return [self.make_problem(*self.sample_task(rng), rng) for _ in range(n)]

    def update(self, problem: Problem, reward: float) -> None:  # noqa: B027 (a no-op on purpose)
        """Baselines do not learn from outcomes."""

    def make_problem(self, skill: str, vector: Sequence[float], rng: random.Random) -> Problem:
        vector = _clip(vector)
        spec = self.specs.get(skill) or get_skill(skill)
        problem = generate(skill, spec.denormalize(vector), seed=rng.randrange(2**31), split="train")
        provenance = problem.provenance.model_copy(
            update={"details": {**problem.provenance.details, "vector": [round(v, 6) for v in vector]}}
        )
        return problem.model_copy(update={"provenance": provenance})

    def refine(self, problem: Problem, success_rate: float, rng: random.Random) -> Problem:
        """A neighbouring problem of the same skill: harder when mastered (success 1), easier when
        too hard (success 0), nearby parameters while learning."""
        task = problem_task(problem, self.specs)
        if task is None:
            known = [s for s in problem.skills if s in SKILLS]
            if not known:
                raise ValueError(
                    f"problem {problem.id} has no procedural skill (skills: {problem.skills}); "
                    "a procedural teacher can only refine problems of its taxonomy"
                )
            task = known[0], [0.5, 0.5, 0.5]
        skill, vector = task
        moved = list(vector)
        if success_rate >= 1.0 or success_rate <= 0.0:
            direction = 1.0 if success_rate >= 1.0 else -1.0
            room = [i for i, v in enumerate(moved) if (v < 1.0 if direction > 0 else v > 0.0)]
            if room:
                moved[rng.choice(room)] += direction * self.refine_step
        else:
            moved = [v + rng.uniform(-0.1, 0.1) for v in moved]
        for _ in range(8):  # a new seed almost always gives new numbers; make sure of it
            refined = self.make_problem(skill, moved, rng)
            if refined.id != problem.id:
                break
        provenance = refined.provenance.model_copy(update={"source": "refined", "parent_id": problem.id})
        return refined.model_copy(update={"provenance": provenance})

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kind": self.kind, "skills": list(self.skills), "seed": self.seed}
        if self.levels:
            state["levels"] = {name: list(bounds) for name, bounds in self.levels.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for a {state.get('kind')!r} curriculum, not {self.kind!r}")
        self._set_space(state["skills"], state.get("levels"))
        self.seed = int(state["seed"])


class UniformTeacher(CurriculumTeacher):
    """Baseline: a uniformly random skill and difficulty."""

    kind = "uniform"

    def sample_task(self, rng: random.Random) -> tuple[str, Vector]:
        return rng.choice(self.skills), [rng.random() for _ in DIM_NAMES]


class StaticTeacher(UniformTeacher):
    """Baseline without adaptation: the first `sample` draws problems exactly as `UniformTeacher`
    (and so as ALP-GMM's uniform bootstrap, given the same random generator), and every later
    `sample` poses those same seed problems again, in order."""

    kind = "static"

    def _set_space(self, skills: Sequence[str] | None, levels: Levels | None) -> None:
        # Seed problems belong to one space: a new space starts without any.
        super()._set_space(skills, levels)
        self.seed_problems: list[Problem] = []
        self.position = 0

    def sample(self, n: int, rng: random.Random) -> list[Problem]:
        if not self.seed_problems:
            self.seed_problems = super().sample(n, rng)
            return list(self.seed_problems)
        picked = [self.seed_problems[(self.position + i) % len(self.seed_problems)] for i in range(n)]
        self.position = (self.position + n) % len(self.seed_problems)
        return picked

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "seed_problems": [p.model_dump(mode="json") for p in self.seed_problems],
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.seed_problems = [Problem.model_validate(p) for p in state.get("seed_problems", [])]
        self.position = int(state.get("position", 0))


class FixedTeacher(CurriculumTeacher):
    """Baseline: a uniformly random skill at one fixed difficulty (`level` in [0, 1], one value for
    every dimension or one per dimension)."""

    kind = "fixed"

    def __init__(
        self,
        skills: Sequence[str] | None = None,
        seed: int = 0,
        level: float | Sequence[float] = 0.0,
        refine_step: float = 0.25,
        levels: Levels | None = None,
    ) -> None:
        super().__init__(skills, seed, refine_step, levels)
        self.level = _clip([level] * len(DIM_NAMES) if isinstance(level, int | float) else level)
        if len(self.level) != len(DIM_NAMES):
            raise ValueError(f"`level` needs one value or {len(DIM_NAMES)} values {DIM_NAMES}")

    def sample_task(self, rng: random.Random) -> tuple[str, Vector]:
        return rng.choice(self.skills), list(self.level)


@dataclass
class _Mixture:
    """A fitted GMM over (vector, ALP): only what sampling needs, as plain lists."""

    weights: list[float]
    means: list[list[float]]
    covariances: list[list[list[float]]]


class ALPGMMTeacher(CurriculumTeacher):
    """ALP-GMM (Portelas et al., 2019) per skill sub-space; see the module docstring.

    - ALP of an episode = |reward − reward of the nearest earlier task of the same skill|.
    - The first `bootstrap` episodes are uniform. Then, every `refit_every` episodes, each skill
      with at least `min_fit_points` episodes gets mixtures of 2..`max_components` components
      fitted on its last `window` (vector, ALP) points; the best by AIC is kept.
    - Sampling: with probability `random_fraction` uniform; otherwise a skill ∝ mean recent ALP,
      a component ∝ its mean ALP, and a vector drawn from that Gaussian, clipped to the cube.
    """

    kind = "alp-gmm"

    def __init__(
        self,
        skills: Sequence[str] | None = None,
        seed: int = 0,
        bootstrap: int = 64,
        refit_every: int = 32,
        window: int = 250,
        max_components: int = 10,
        random_fraction: float = 0.2,
        min_fit_points: int = 8,
        refine_step: float = 0.25,
        levels: Levels | None = None,
    ) -> None:
        super().__init__(skills, seed, refine_step, levels)
        if not 0.0 <= random_fraction <= 1.0:
            raise ValueError(f"random_fraction must be in [0, 1], got {random_fraction}")
        if min(bootstrap, refit_every, window, max_components, min_fit_points) < 1:
            raise ValueError("bootstrap, refit_every, window, max_components and min_fit_points must be >= 1")
        self.bootstrap = bootstrap
        self.refit_every = refit_every
        self.window = window
        self.max_components = max_components
        self.random_fraction = random_fraction
        self.min_fit_points = min_fit_points
        self.episodes = 0
        # Per skill, in episode order: [v_digits, v_steps, v_distractors, reward, alp].
        self.history: dict[str, list[list[float]]] = {s: [] for s in self.skills}
        # Per skill, how many history points the current mixture was fitted on (for resume).
        self.fit_sizes: dict[str, int] = {}
        self.mixtures: dict[str, _Mixture] = {}

    # -- learning progress ---------------------------------------------------------------------

    def update(self, problem: Problem, reward: float) -> None:
        task = problem_task(problem, self.specs)
        if task is None or task[0] not in self.history:
            return  # not one of ours (a dataset or LLM-authored problem): nothing to learn from
        skill, vector = task
        reward = min(1.0, max(0.0, float(reward)))
        past = self.history[skill]
        alp = 0.0
        if past:
            nearest = min(past, key=lambda row: math.dist(row[:3], vector))
            alp = abs(reward - nearest[3])
        past.append([*vector, reward, alp])
        self.episodes += 1
        if self.episodes >= self.bootstrap and (self.episodes - self.bootstrap) % self.refit_every == 0:
            for name, rows in self.history.items():
                if len(rows) >= self.min_fit_points:
                    self._fit(name, len(rows))

    def _fit(self, skill: str, size: int) -> None:
        import numpy as np
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        data = np.asarray(self.history[skill][:size][-self.window :], dtype=float)
        points = np.concatenate([data[:, :3], data[:, 4:5]], axis=1)  # (vector, ALP)
        best: Any = None
        # These fits are tiny; BLAS threads only add overhead (20-100x slower on a busy machine).
        with threadpool_limits(1):
            for k in range(2, min(self.max_components, len(points) // 2) + 1):
                gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=self.seed)
                gmm.fit(points)
                if best is None or gmm.aic(points) < best.aic(points):
                    best = gmm
        if best is None:
            return
        self.mixtures[skill] = _Mixture(
            best.weights_.tolist(), best.means_.tolist(), best.covariances_.tolist()
        )
        self.fit_sizes[skill] = size

    # -- sampling ------------------------------------------------------------------------------

    def sample_task(self, rng: random.Random) -> tuple[str, Vector]:
        if self.episodes < self.bootstrap or rng.random() < self.random_fraction:
            return rng.choice(self.skills), [rng.random() for _ in DIM_NAMES]
        skill = self._choose_skill(rng)
        mixture = self.mixtures.get(skill)
        if mixture is None:
            return skill, [rng.random() for _ in DIM_NAMES]
        return skill, self._sample_mixture(mixture, rng)

    def _choose_skill(self, rng: random.Random) -> str:
        means = {s: self.mean_alp(s) for s in self.skills}
        tried = [m for m in means.values() if m is not None]
        optimistic = max(tried, default=1.0)
        weights = [(optimistic if means[s] is None else means[s]) or 0.0 for s in self.skills]
        if sum(weights) <= 0.0:
            return rng.choice(self.skills)
        return rng.choices(self.skills, weights=weights)[0]

    def mean_alp(self, skill: str) -> float | None:
        """Mean ALP of the skill's last `window` episodes; None when it has none."""
        rows = self.history.get(skill, [])[-self.window :]
        return sum(row[4] for row in rows) / len(rows) if rows else None

    def _sample_mixture(self, mixture: _Mixture, rng: random.Random) -> Vector:
        import numpy as np

        alps = [max(mean[-1], 0.0) for mean in mixture.means]
        weights = alps if sum(alps) > 0 else mixture.weights
        index = rng.choices(range(len(weights)), weights=weights)[0]
        sampler = np.random.default_rng(rng.randrange(2**32))
        draw = sampler.multivariate_normal(mixture.means[index], mixture.covariances[index])
        return _clip(draw[:3].tolist())

    # -- resume --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "params": {
                "bootstrap": self.bootstrap,
                "refit_every": self.refit_every,
                "window": self.window,
                "max_components": self.max_components,
                "random_fraction": self.random_fraction,
                "min_fit_points": self.min_fit_points,
            },
            "episodes": self.episodes,
            "history": {s: [list(r) for r in rows] for s, rows in self.history.items()},
            "fit_sizes": dict(self.fit_sizes),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore history and refit each mixture on exactly the points it was fitted on (fits
        are deterministic given the data and seed), so sampling continues as if never stopped."""
        super().load_state_dict(state)
        for name, value in state["params"].items():
            setattr(self, name, value)
        self.episodes = int(state["episodes"])
        self.history = {s: [list(map(float, r)) for r in state["history"].get(s, [])] for s in self.skills}
        self.fit_sizes, self.mixtures = {}, {}
        for skill, size in state["fit_sizes"].items():
            self._fit(skill, int(size))


CURRICULA: dict[str, type[CurriculumTeacher]] = {
    "alp-gmm": ALPGMMTeacher,
    "uniform": UniformTeacher,
    "static": StaticTeacher,
    "fixed": FixedTeacher,
}


def make_curriculum(
    kind: str, skills: Sequence[str] | None = None, seed: int = 0, levels: Levels | None = None, **params: Any
) -> CurriculumTeacher:
    """A curriculum by kind ("alp-gmm", "uniform", "static", "fixed") over `skills`, bounded to
    `levels` ({"digits": (1, 3), ...}); `params` go to its constructor."""
    try:
        cls = CURRICULA[kind]
    except KeyError:
        raise ValueError(f"unknown curriculum {kind!r}; known: {', '.join(CURRICULA)}") from None
    try:
        return cls(skills=skills, seed=seed, levels=levels, **params)
    except TypeError as exc:
        import inspect

        allowed = [
            p
            for p in inspect.signature(cls.__init__).parameters
            if p not in ("self", "skills", "seed", "levels")
        ]
        raise ValueError(f"bad parameters for the {kind!r} curriculum ({exc}); allowed: {allowed}") from None
