"""The trainer registry: per trainer kind, its settings class, the roles it can train, the rows it
trains on, the training function, and what the society must contain for those rows to exist.

`coevo check` reads it (a trainer's `args` are validated against its settings class; a trainer
whose data needs a message flow the society lacks is refused), the training service reads it to
train, `coevo export` to build the same rows, and `coevo roles` to document the kinds. Nothing
here imports TRL: each kind's `train` imports it when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coevo.trainers.common import TrainResult, TrainSettings
from coevo.trainers.datasets import (
    RowRequest,
    Rows,
    correct_sft_rows,
    generator_sft_rows,
    lbt_teacher_dpo_rows,
    solver_dpo_rows,
    stat_sft_rows,
)
from coevo.trainers.lbt_teacher_dpo_config import LbTTeacherDPOConfig
from coevo.trainers.sft_config import CorrectSFTConfig
from coevo.trainers.sft_trainer import train_sft
from coevo.trainers.socratic_generator_sft_config import GeneratorSFTConfig
from coevo.trainers.socratic_generator_sft_trainer import train_generator_sft
from coevo.trainers.socratic_solver_dpo_config import SolverDPOConfig
from coevo.trainers.socratic_solver_dpo_trainer import train_solver_dpo
from coevo.trainers.stat_sft_config import StatSFTConfig


class FlowView(Protocol):
    """What a trainer's requirement asks of a society's role graph."""

    def sends(self, agent: str, message: str) -> bool: ...

    def receives(self, agent: str, message: str) -> bool: ...

    def flows(self, message: str) -> bool: ...


Requirement = Callable[[FlowView, str], str | None]


@dataclass(frozen=True)
class TrainerKind:
    name: str
    summary: str
    config_class: type[TrainSettings]
    roles: frozenset[str]
    rows: Callable[[RowRequest, Any], Rows]
    # (settings, rows, base model folder, adapter to continue or None, output folder) -> result
    train: Callable[[Any, Rows, str, Path | None, Path], TrainResult]
    # Why this society cannot feed the trainer of `agent`; None when it can.
    requirement: Requirement


def _graded_attempts(view: FlowView, agent: str) -> str | None:
    if view.sends(agent, "SolutionSubmitted") or view.receives(agent, "Explanation"):
        return None
    return f"trains on {agent}'s graded attempts, but no edge takes {agent}'s SolutionSubmitted to a teacher"


def _solver_attempts(view: FlowView, agent: str) -> str | None:
    if view.sends(agent, "SolutionSubmitted"):
        return None
    return f"trains on {agent}'s graded attempts, but no edge takes {agent}'s SolutionSubmitted to a teacher"


def _demonstrations(view: FlowView, agent: str) -> str | None:
    if not view.receives(agent, "Demonstration"):
        return f"trains on the Teacher's demonstrations, but no Demonstration edge leads to {agent}"
    if not view.flows("ProblemRefined"):
        return (
            "weights each demonstration by the Solver's success on the refined problem, but no "
            "ProblemRefined edge sends refined problems to a solver"
        )
    return None


def _scored_explanations(view: FlowView, agent: str) -> str | None:
    if view.sends(agent, "Explanation") and view.receives(agent, "ExamResult"):
        return None
    return (
        f"trains on {agent}'s explanations scored by its Students' exams, but no Explanation edge "
        f"leads from {agent} to a student and back as ExamResult"
    )


TRAINERS: dict[str, TrainerKind] = {
    kind.name: kind
    for kind in (
        TrainerKind(
            "socratic_solver_dpo",
            "Socratic-Zero Solver DPO (+NLL): correct x incorrect attempts of the same problem.",
            SolverDPOConfig,
            frozenset({"solver", "student"}),
            solver_dpo_rows,
            train_solver_dpo,
            _solver_attempts,
        ),
        TrainerKind(
            "socratic_generator_sft",
            "Socratic-Zero Generator SFT on the Teacher's refinements, value-weighted.",
            GeneratorSFTConfig,
            frozenset({"generator"}),
            generator_sft_rows,
            train_generator_sft,
            _demonstrations,
        ),
        TrainerKind(
            "lbt_teacher_dpo",
            "Learning by Teaching M2: Teacher DPO (+NLL) on its rationales ranked by correctness and "
            "its Students' exam accuracy.",
            LbTTeacherDPOConfig,
            frozenset({"teacher"}),
            lbt_teacher_dpo_rows,
            train_solver_dpo,
            _scored_explanations,
        ),
        TrainerKind(
            "stat_sft",
            "STAT: SFT on problems selected and synthesized for the agent's missing skills.",
            StatSFTConfig,
            frozenset({"solver", "student"}),
            stat_sft_rows,
            train_sft,
            _graded_attempts,
        ),
        TrainerKind(
            "sft",
            "Rejection-sampling SFT: the agent's own verified-correct attempts (STaR-style).",
            CorrectSFTConfig,
            frozenset({"solver", "student"}),
            correct_sft_rows,
            train_sft,
            _solver_attempts,
        ),
    )
}
