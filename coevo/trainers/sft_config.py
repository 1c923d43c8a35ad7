"""Settings for rejection-sampling SFT (`kind: sft`): fine-tune an agent on its own verified answers."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import TrainSettings


class CorrectSFTConfig(TrainSettings):
    """STaR-style expert iteration: keep the agent's attempts the verifier graded correct."""

    # Correct attempts kept per problem (distinct texts), so easy problems do not dominate.
    max_per_problem: int = Field(default=2, gt=0)
    # For a curriculum problem the agent never solved, train on the reference solution instead.
    include_reference: bool = True
