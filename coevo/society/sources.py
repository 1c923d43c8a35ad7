"""What a config names outside itself, made real: an agent's procedural curriculum, its problem
pool (a dataset or problems listed in the config), a user's autogen agent factory, and plugin
modules. The checker builds each once to prove it works (`coevo check` fails where `coevo run`
would), and the society builds them again to run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coevo.agents.registry import import_plugin
from coevo.society.config import AgentConfig, CurriculumConfig, PoolConfig
from coevo.tasks.curriculum import CurriculumTeacher, make_curriculum
from coevo.tasks.problem import Problem, Provenance


def build_curriculum(curriculum: CurriculumConfig, seed: int) -> CurriculumTeacher:
    return make_curriculum(
        curriculum.kind,
        skills=curriculum.skills,
        seed=seed,
        levels=curriculum.levels or None,
        **(curriculum.params or {}),
    )


def load_pool(pool: PoolConfig) -> tuple[Problem, ...]:
    """The pool's problems: the dataset's (first `limit`), then those listed in the config."""
    from coevo.tasks.loaders import load_dataset_spec

    problems: list[Problem] = []
    if pool.dataset is not None:
        problems += load_dataset_spec(pool.dataset, pool.split, pool.limit)
    for index, spec in enumerate(pool.problems):
        answer = str(spec.answer)
        problems.append(
            Problem(
                id=Problem.make_id(spec.question, answer),
                question=spec.question,
                answer=answer,
                solution=spec.solution,
                skills=list(spec.skills),
                provenance=Provenance(source="seed", details={"config_index": index}),
            )
        )
    return tuple(problems)


def resolve_path(value: str, base_dir: Path | None) -> str:
    """A relative file path made absolute against the config's folder (so a run's config
    snapshot, read from another folder on resume, still points at the same file)."""
    path = Path(value)
    if path.is_absolute() or base_dir is None:
        return value
    return str((base_dir / path).resolve())


def load_factory(spec: str) -> Callable[..., Any]:
    """`package.module:function` or `path/file.py:function` → the callable it names."""
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ValueError(f"expected 'module:function' or 'file.py:function', got {spec!r}")
    module = import_plugin(target) if target.endswith(".py") else importlib.import_module(target)
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ValueError(f"{target} has no callable {attribute!r}")
    return factory


def agent_factory(agent: AgentConfig) -> Callable[..., Any] | None:
    return None if agent.autogen is None else load_factory(agent.autogen.factory)
