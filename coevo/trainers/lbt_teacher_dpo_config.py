"""Settings for Learning by Teaching's M2: DPO on a Teacher's rationales ranked by their scores."""

from __future__ import annotations

from pydantic import Field

from coevo.trainers.common import DPOSettings


class LbTTeacherDPOConfig(DPOSettings):
    """Paper (arXiv 2406.14629, M2): pairs of a problem's rationales whose scores
    `w * correctness + (1 - w) * LbT score` differ by more than 0.3, DPO on LLaMA3-8B. `w` is the
    Teacher's own `score_weight` (stored with each score), so the trainer cannot disagree with
    the scores the run recorded; `correctness_only` is the paper's ablation (w = 1)."""

    score_gap: float = Field(default=0.3, ge=0, lt=1)
    max_pairs_per_problem: int = Field(default=8, gt=0)
    correctness_only: bool = False
    # Share of each training set drawn from older rounds' pairs (the paper trains once, offline).
    replay_fraction: float = Field(default=0.0, ge=0, lt=1)
