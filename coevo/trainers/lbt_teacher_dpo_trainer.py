"""Learning by Teaching's M2: the Teacher trained by DPO on its own rationales, the one its
Students learned more from (and that reached the right answer) preferred.

Pairs (`coevo.tasks.lbt.preference_pairs`): per problem, two rationales written for the same
prompt whose scores differ by more than `score_gap`, at most `max_pairs_per_problem`; the prompt
and both completions are exactly what the Teacher was given and wrote. Training is the same DPO
(+ NLL on the chosen side) as the Solver's (`train_solver_dpo`), and its reference is the
Teacher as the training starts (a continued adapter's frozen copy, or the base model).

What differs from the paper: the paper samples 256 rationales per problem and trains full
weights of an 8B model with eric-mitchell's DPO; here a few rationales per problem (config),
LoRA, and the NLL term on by default (plain DPO lowered a 135M model's accuracy).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from coevo.tasks.lbt import ScoredRationale, preference_pairs
from coevo.trainers.lbt_teacher_dpo_config import LbTTeacherDPOConfig


def build_lbt_pairs(
    rationales: Sequence[ScoredRationale], settings: LbTTeacherDPOConfig, rng: random.Random
) -> list[dict[str, Any]]:
    """Conversational `{prompt, chosen, rejected}` rows from scored rationales."""
    pairs = preference_pairs(
        rationales,
        settings.score_gap,
        settings.max_pairs_per_problem,
        rng,
        correctness_only=settings.correctness_only,
    )
    return [
        {
            "prompt": [{"role": role, "content": content} for role, content in chosen.prompt],
            "chosen": [{"role": "assistant", "content": chosen.completion}],
            "rejected": [{"role": "assistant", "content": rejected.completion}],
        }
        for chosen, rejected in pairs
    ]
