"""Grades published reference solutions against their own answers: every one should grade correct.

    .venv/bin/python benchmarks/reference_solutions.py                        # GSM8K train and test
    .venv/bin/python benchmarks/reference_solutions.py --math math/test.jsonl # and a MATH-style file
    .venv/bin/python benchmarks/reference_solutions.py --no-gsm8k --math a.jsonl --math b.jsonl --show 50

GSM8K is read from the project's data dir (`coevo.tasks.loaders.find_data_dir`: `$COEVO_DATA`, or a
`shared/data` / `data` folder above the working directory or the package): each row's whole `answer`
text (worked steps with their `<<...>>` calculator annotations and the final `#### N` line) is the
response, the number after `####` the reference, and the row's `question` the question. A `--math`
file holds `problem` / `solution` / `answer` rows (MATH, MATH-500, PRM800K's splits); without an
`answer` field the last `\\boxed{}` of the solution is the reference. The solution is the response.
A file the loaders refuse (a row with an empty answer, say) is reported with the loader's message.

Each solution is graded in-process with `coevo.tasks.answers.grade` (no Verifier worker processes,
so no per-grade time limit: the whole GSM8K train set takes seconds). Per file it prints the total,
the number graded correct, the time taken, and the first `--show` failures with their failure kind.
The exit status is 1 when any solution failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coevo.tasks.answers import Grade, grade
from coevo.tasks.loaders import DatasetError, find_data_dir, load_gsm8k, load_jsonl, load_math

# (response, reference, question) for each reference solution of a file.
Item = tuple[str, str, str]


@dataclass(frozen=True)
class Failure:
    row: int
    reference: str
    grade: Grade
    response: str


@dataclass(frozen=True)
class Report:
    name: str
    total: int
    correct: int
    seconds: float
    failures: list[Failure]


def gsm8k_items(path: Path) -> list[Item]:
    """GSM8K rows: the raw `answer` text (as `load_jsonl` reads it) against the reference that
    `load_gsm8k` reads from it."""
    references = load_gsm8k(path)
    raw = load_jsonl(path, "question", "answer")
    return [
        (row.answer, problem.answer, problem.question) for problem, row in zip(references, raw, strict=True)
    ]


def math_items(path: Path) -> list[Item]:
    """MATH-style rows: the worked `solution` against the `answer` field (or its last box)."""
    return [(problem.solution or "", problem.answer, problem.question) for problem in load_math(path)]


def grade_all(name: str, items: Iterable[Item]) -> Report:
    start = time.perf_counter()
    total, failures = 0, []
    for row, (response, reference, question) in enumerate(items):
        total += 1
        result = grade(response, reference, question)
        if not result.correct:
            failures.append(Failure(row, reference, result, response))
    return Report(name, total, total - len(failures), time.perf_counter() - start, failures)


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "..." + flat[-limit:]


def print_report(report: Report, show: int) -> None:
    share = 100 * report.correct / report.total if report.total else 100.0
    print(f"{report.name}: {report.correct}/{report.total} correct ({share:.2f}%), {report.seconds:.1f} s")
    kinds = Counter(str(f.grade.failure) for f in report.failures)
    if kinds:
        print("  failures by kind: " + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common()))
    for failure in report.failures[:show]:
        print(
            f"  row {failure.row}: {failure.grade.failure}; reference {failure.reference!r}, "
            f"extracted {failure.grade.extracted!r}\n    {_one_line(failure.response, 240)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--math", type=Path, action="append", default=[], help="a MATH-style JSONL file")
    parser.add_argument("--no-gsm8k", action="store_true", help="skip the GSM8K splits of the data dir")
    parser.add_argument("--show", type=int, default=20, help="failures printed per file")
    args = parser.parse_args(argv)
    reports = []
    if not args.no_gsm8k:
        root = find_data_dir()
        if root is None:
            print("GSM8K: no data dir found (set COEVO_DATA to the folder holding gsm8k/)", file=sys.stderr)
            return 2
        for split in ("train", "test"):
            path = root / "gsm8k" / f"{split}.jsonl"
            reports.append(grade_all(f"gsm8k/{split} ({path})", gsm8k_items(path)))
            print_report(reports[-1], args.show)
    refused = False
    for path in args.math:
        try:
            items = math_items(path)
        except DatasetError as exc:
            print(f"{path}: not graded: {exc}")
            refused = True
            continue
        reports.append(grade_all(str(path), items))
        print_report(reports[-1], args.show)
    return 0 if not refused and all(r.correct == r.total for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
