"""Settings for the Socratic-Zero Generator's value-weighted SFT."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import TrainSettings


class GeneratorSFTConfig(TrainSettings):
    """Weight U = exp(−(s − center)² / (2·sigma²)), s = the updated Solver's success rate on the
    refined problem: problems the Solver solves about half the time teach the Generator most."""

    weight_center: float = Field(default=0.5, ge=0, le=1)
    weight_sigma: float = Field(default=0.2, gt=0)
