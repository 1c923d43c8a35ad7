"""Settings for STAT (skill-targeted adaptive training): selection/synthesis sizes and plain SFT."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import TrainSettings


class StatSFTConfig(TrainSettings):
    """Paper: STAT-Sel draws 3–5 training questions per missing skill, STAT-Syn writes 2 new
    questions per missing skill; the Solver is then fine-tuned with SFT."""

    # STAT-Sel: problems selected per missing skill in the profile (the total is this × skills).
    select_per_skill: int = Field(default=4, gt=0)
    # STAT-Syn: new problems per missing skill, and how many generator calls each may take
    # (a synthesized problem that fails its agreement check is discarded and retried).
    synth_per_skill: int = Field(default=2, ge=0)
    synth_max_tries: int = Field(default=3, gt=0)
