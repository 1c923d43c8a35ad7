"""Every GSM8K reference solution, train and test, grades correct against its own answer.

The grade is a training reward: a grader that refuses the worked solutions it should reward (reading a
note as a hedge, a list as several answers) teaches the wrong thing. Each solution is graded as
benchmarks/reference_solutions.py grades it: the whole `answer` text (worked steps with `<<...>>`
calculator annotations, then `#### N`) as the response, N as the reference, the row's question as
the question. The data dir is the one the loaders find (`$COEVO_DATA`, or a `shared/data` folder
above the working directory or the package); without GSM8K there the test skips.
"""

from __future__ import annotations

import pytest

from benchmarks.reference_solutions import grade_all, gsm8k_items
from coevo.tasks.loaders import find_data_dir


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_gsm8k_reference_solution_grades_correct(split: str) -> None:
    root = find_data_dir()
    path = None if root is None else root / "gsm8k" / f"{split}.jsonl"
    if path is None or not path.is_file():
        pytest.skip(f"GSM8K {split} split not found (data dir: {root}; set COEVO_DATA)")
    report = grade_all(f"gsm8k/{split}", gsm8k_items(path))
    assert report.total > 1000
    failures = [
        f"row {f.row}: {f.grade.failure} ({f.grade.extracted!r} vs {f.reference!r})" for f in report.failures
    ]
    assert not failures, f"{len(failures)} of {report.total} refused: " + "; ".join(failures[:10])
