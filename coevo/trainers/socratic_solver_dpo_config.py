"""Settings for the Socratic-Zero Solver DPO (with an NLL term on the chosen side, i.e. RPO)."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import TrainSettings


class SolverDPOConfig(TrainSettings):
    """Paper: β 0.05–0.2, lr 1e-6–5e-6 (full fine-tuning of 8B models), ≤ 200 steps.

    On SmolLM2-135M plain sigmoid DPO lowers accuracy, while DPO plus an NLL term on the chosen
    answers (`rpo_alpha` > 0) raises it (README, Training in the loop), so the NLL term is on by default; set
    `rpo_alpha=0` for the paper's plain DPO.
    """

    beta: float = Field(default=0.1, gt=0)
    # Weight of TRL's "sft" loss (token-mean NLL of the chosen completions) next to "sigmoid".
    rpo_alpha: float = Field(default=1.0, ge=0)
    max_pairs_per_problem: int = Field(default=4, gt=0)
    # Share of each training set drawn from older curriculum problems (Socratic-Zero replays 25%).
    replay_fraction: float = Field(default=0.25, ge=0, lt=1)
