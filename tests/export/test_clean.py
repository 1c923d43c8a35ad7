"""The cleaning rules on their own: normalisation, exact and near duplicates (re-worded copies are
near duplicates, other numbers are other problems), and the evaluation-set rules (word 13-grams
for written sets, content for the procedural held-out set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coevo.export.clean import Deduplicator, _grams, normalize


def test_normalize_whitespace_unicode_and_numbers() -> None:
    assert (
        normalize("  Ava has\u00a01,000 apples\n and 2.50  pears; 007 ")
        == "Ava has 1000 apples and 2.5 pears; 7"
    )
    assert normalize("ＡＢ 3.0") == "AB 3"


def test_exact_and_near_duplicates() -> None:
    dedup = Deduplicator()
    assert dedup.duplicate("Ava has 12 apples and buys 30 more. How many apples?", ["42"]) is None
    # Whitespace and number formatting only: exact.
    assert dedup.duplicate("Ava has  12 apples and buys 30.0 more.  How many apples?", ["42"]) == "exact"
    # Re-worded (another name and object), same numbers and answer: near.
    assert dedup.duplicate("Ben has 12 marbles and buys 30 more. How many marbles?", ["42"]) == "near"
    # Other numbers: another problem, however alike the words.
    assert dedup.duplicate("Ava has 12 apples and buys 31 more. How many apples?", ["43"]) is None
    # The same problem with another completion is another row.
    assert dedup.duplicate("Ava has 12 apples and buys 30 more. How many apples?", ["41"]) is None
    # Same numbers, unrelated words: not a copy.
    assert dedup.duplicate("A train runs 12 km, then 30 km further. How far in total?", ["42"]) is None
    # A transcript is an episode: only exact copies count.
    assert (
        dedup.duplicate("Ben has 12 marbles and buys 30 more. How many apples?", ["42"], near=False) is None
    )
    assert (dedup.exact, dedup.near) == (1, 1)


def test_ngrams_catch_copies_with_other_numbers_and_short_texts_only_whole() -> None:
    question = (
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
        "muffins for her friends every day with four."
    )
    copy = question.replace("16", "20")
    assert _grams(question) & _grams(copy)
    assert not _grams("Tom has 16 ducks.") & _grams(question)
    assert _grams("What is 3 + 5?") == _grams("what is 3+5")
    assert _grams("What is 3 + 5?") != _grams("What is 3 × 5?")


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_procedural_problems_are_judged_by_their_partition(split: str, tmp_path: Path) -> None:
    from coevo.export.clean import Decontaminator
    from coevo.export.selection import ProblemInfo
    from coevo.society.config import SocietyConfig
    from coevo.tasks.procedural import generate

    config = SocietyConfig.model_validate(
        {"name": "x", "agents": {"teacher": {"role": "teacher", "policy": "procedural"}}}
    )
    checker = Decontaminator(config, [])
    for seed in range(20):
        p = generate("add_carry", {"digits": 2, "steps": 1, "distractors": 1}, seed=seed, split=split)  # type: ignore[arg-type]
        info = ProblemInfo(
            p.id, p.question, p.answer, tuple(p.skills), "procedural", None, None, None, split, 0
        )
        assert checker.contaminated([info]) == ("procedural held-out" if split == "heldout" else None)
        # The same content written by someone else (no recorded partition) is keyed afresh:
        # a template's context and ask without the distractor give the partition's own key.
        bare = generate("add_carry", {"digits": 2, "steps": 1, "distractors": 0}, seed=seed, split=split)  # type: ignore[arg-type]
        written = ProblemInfo(
            f"w{seed}", bare.question, bare.answer, ("add_carry",), "generated", None, None, None, None, 0
        )
        assert checker.contaminated([written]) == ("procedural held-out" if split == "heldout" else None)
