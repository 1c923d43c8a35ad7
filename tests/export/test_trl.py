"""Each training kind, exported from a replay run and loaded with `datasets.load_dataset`, trains
two steps with the matching TRL trainer on a tiny model, with no column mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.export.conftest import export

# CPU, fp32, two steps, short sequences: seconds per trainer on the tiny model.
FAST: dict[str, Any] = {
    "max_steps": 2,
    "per_device_train_batch_size": 2,
    "use_cpu": True,
    "bf16": False,
    "report_to": "none",
    "save_strategy": "no",
    "disable_tqdm": True,
}


def exported(runs: dict[str, Path], run: str, kind: str, out: Path) -> Any:
    import datasets

    assert export("--run", str(runs[run]), "--kind", kind, "--out", str(out)) == 0
    return datasets.load_dataset(str(out), split="train")


def trained(trainer: Any) -> None:
    result = trainer.train()
    assert result.global_step == 2


@pytest.mark.slow
@pytest.mark.parametrize(("run", "kind"), [("demo", "sft"), ("socratic_zero", "generator")])
def test_sft_kinds_train_with_sft_trainer(
    runs: dict[str, Path], tiny_model: str, tmp_path: Path, run: str, kind: str
) -> None:
    from trl import SFTConfig, SFTTrainer

    ds = exported(runs, run, kind, tmp_path / "data")
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_length=128, **FAST)
    trained(SFTTrainer(model=tiny_model, args=args, train_dataset=ds))


@pytest.mark.slow
def test_dpo_kind_trains_with_dpo_trainer(runs: dict[str, Path], tiny_model: str, tmp_path: Path) -> None:
    from trl import DPOConfig, DPOTrainer

    ds = exported(runs, "demo", "dpo", tmp_path / "data")
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_length=128, **FAST)
    trained(DPOTrainer(model=tiny_model, args=args, train_dataset=ds))


@pytest.mark.slow
def test_kto_kind_trains_with_kto_trainer(runs: dict[str, Path], tiny_model: str, tmp_path: Path) -> None:
    from trl import KTOConfig, KTOTrainer

    ds = exported(runs, "demo", "kto", tmp_path / "data")
    assert {True, False} <= set(ds["label"])
    args = KTOConfig(output_dir=str(tmp_path / "out"), max_length=128, **FAST)
    trained(KTOTrainer(model=tiny_model, args=args, train_dataset=ds))


@pytest.mark.slow
def test_grpo_kind_trains_with_grpo_trainer_rewarded_by_the_answer_column(
    runs: dict[str, Path], tiny_model: str, tmp_path: Path
) -> None:
    from trl import GRPOConfig, GRPOTrainer

    ds = exported(runs, "demo", "grpo", tmp_path / "data")
    answers_seen: list[str] = []

    def reward(completions: list[Any], answer: list[str], **kwargs: Any) -> list[float]:
        answers_seen.extend(answer)  # the column arrives as a keyword argument, one per completion
        return [float(a in c[-1]["content"]) for c, a in zip(completions, answer, strict=True)]

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), num_generations=2, max_completion_length=8, logging_steps=1, **FAST
    )
    trained(GRPOTrainer(model=tiny_model, reward_funcs=reward, args=args, train_dataset=ds))
    assert answers_seen and set(answers_seen) <= set(ds["answer"])
