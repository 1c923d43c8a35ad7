"""Settings for the Socratic-Zero Solver DPO (with an NLL term on the chosen side, i.e. RPO)."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import DPOSettings


class SolverDPOConfig(DPOSettings):
    """Paper: β 0.05–0.2, lr 1e-6–5e-6 (full fine-tuning of 8B models), ≤ 200 steps; here the
    NLL term is on by default (see `DPOSettings`)."""

    max_pairs_per_problem: int = Field(default=4, gt=0)
    # Share of each training set drawn from older curriculum problems (Socratic-Zero replays 25%).
    replay_fraction: float = Field(default=0.25, ge=0, lt=1)
