"""Dataset loaders on the real files of the data folder (`$COEVO_DATA` or shared/data), and on
small hand-written rows."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from coevo.tasks.answers import grade
from coevo.tasks.loaders import (
    MAX_JSON_DEPTH,
    MAX_JSON_FILE_BYTES,
    MAX_LINE_CHARS,
    MAX_QUESTION_CHARS,
    DatasetError,
    find_data_dir,
    load_dataset_spec,
    load_file,
    load_gsm8k,
    load_hf,
    load_jsonl,
    load_math,
)
from coevo.tasks.problem import Problem


def test_gsm8k_test_split(shared_data: Path) -> None:
    problems = load_gsm8k(shared_data / "gsm8k" / "test.jsonl")
    assert len(problems) == 1319
    first = problems[0]
    assert first.question.startswith("Janet")
    assert first.answer == "18"
    assert first.solution is not None and "<<" not in first.solution and "####" not in first.solution
    assert first.id == Problem.make_id(first.question, first.answer)
    assert first.provenance.details == {"dataset": "gsm8k", "row": 0}
    assert all("," not in p.answer for p in problems)
    assert len({p.id for p in problems}) == 1319


def test_gsm8k_answers_grade_their_own_solutions(shared_data: Path) -> None:
    """The reference solution text ("... #### N") grades as correct against the reference."""
    for problem in load_gsm8k(shared_data / "gsm8k" / "train.jsonl", limit=200):
        assert grade(f"{problem.solution}\nThe answer is {problem.answer}.", problem.answer).correct


def test_named_specs(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COEVO_DATA", raising=False)
    assert find_data_dir() == shared_data
    assert len(load_dataset_spec("gsm8k", "train", limit=7)) == 7
    mathdial = load_dataset_spec("mathdial", "test", limit=3)
    assert mathdial[0].answer == "10"
    assert len(load_dataset_spec("procedural-heldout", limit=12)) == 12
    with pytest.raises(DatasetError, match="splits"):
        load_dataset_spec("gsm8k", "validation")
    monkeypatch.setenv("COEVO_DATA", str(shared_data))
    assert find_data_dir() == shared_data


def test_path_spec_detects_the_format(shared_data: Path) -> None:
    problems = load_dataset_spec(str(shared_data / "gsm8k" / "test_socratic.jsonl"), limit=2)
    assert problems[0].answer == "18"


def test_math_style(tmp_path: Path) -> None:
    path = tmp_path / "math.jsonl"
    rows = [
        {
            "problem": "Simplify $\\frac{2}{4}$.",
            "solution": "It is $\\boxed{\\frac{1}{2}}$.",
            "level": "Level 2",
            "type": "Prealgebra",
        },
        {"problem": "What is $1+1$?", "answer": "2"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    problems = load_math(path)
    assert problems[0].answer == "\\frac{1}{2}"
    assert problems[0].skills == ["Prealgebra"]
    assert problems[0].difficulty == {"level": 2.0}
    assert problems[1].answer == "2"
    assert [p.id for p in load_file(path)] == [p.id for p in problems]
    assert grade("so \\boxed{0.5}", problems[0].answer).correct


def test_generic_jsonl_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_text(json.dumps({"q": "2+3?", "a": " Result: 5 ", "tags": ["add_carry"]}) + "\n\n")
    (problem,) = load_jsonl(
        path, "q", "a", skills_field="tags", answer_parser=lambda s: s.split(":")[1].strip()
    )
    assert (problem.question, problem.answer, problem.skills) == ("2+3?", "5", ["add_carry"])
    assert problem.provenance.details["dataset"] == "custom"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), ('{"question": "q"}', "missing field")],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_file(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"question": "q"}', "missing field 'answer'"),
        ('{"question": "q", "answer": null}', "answer is null"),
        ('{"question": "q", "answer": NaN}', "answer is NaN"),
        ('{"question": "q", "answer": "nan"}', "answer is NaN"),
        ('{"question": "q", "answer": Infinity}', "answer is infinite"),
        ('{"question": "q", "answer": ""}', "answer is empty"),
        ('{"question": "q", "answer": "  "}', "answer is empty"),
        ('{"question": "q", "answer": [1, 2]}', r"answer is not a scalar \(a list\)"),
        ('{"question": "q", "answer": {"value": 1}}', r"answer is not a scalar \(an object\)"),
        ('{"question": null, "answer": "1"}', "question is null"),
        ('{"question": "q", "answer": "Work. #### "}', "answer is empty after '####'"),
        ('{"problem": "p", "answer": null}', "answer is null"),
        ('{"question": "q", "ground_truth": null}', "ground_truth is null"),
    ],
)
def test_bad_answers_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    """`coevo eval --dataset FILE`: a bad row is refused with its file and line (here line 3)."""
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "What is 1 + 1?", "answer": "2"}\n\n' + row + "\n")
    with pytest.raises(DatasetError, match=f"data.jsonl:3: {message}"):
        load_dataset_spec(str(path))


GOOD_ROW = '{"question": "What is 1 + 1?", "answer": "2"}\n'


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"question": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": "1"}', "JSON nested deeper than 32"),
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "JSON nested deeper than 32"),
        (
            '{"question": "' + "q" * (MAX_QUESTION_CHARS + 1) + '", "answer": "1"}',
            "question is 20,001 characters",
        ),
        (
            '{"problem": "' + "q" * (MAX_QUESTION_CHARS + 1) + '", "answer": "1"}',
            "problem is 20,001 characters",
        ),
        (
            '{"question": "q", "answer": "' + "1" * MAX_LINE_CHARS + '"}',
            "the line is longer than 1,000,000 characters",
        ),
    ],
    ids=["nested-100000-deep", "nested-33-deep", "long-question", "long-problem", "long-line"],
)
def test_rows_past_the_limits_are_refused_with_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    """A row nested 100,000 deep used to end `coevo eval --dataset` in a RecursionError, and a
    20 MB question was sent to the model; both are refused before they are parsed or posed."""
    path = tmp_path / "data.jsonl"
    path.write_text(GOOD_ROW + "\n" + row + "\n")
    with pytest.raises(DatasetError, match=f"data.jsonl:3: {message}"):
        load_dataset_spec(str(path))
    # Brackets inside strings are text, not nesting; a question at the limit is fine.
    path.write_text(
        GOOD_ROW + json.dumps({"question": "[" * 100 + "q" * (MAX_QUESTION_CHARS - 100), "answer": "1"})
    )
    assert len(load_dataset_spec(str(path))) == 2


def test_json_files_past_the_limits_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n{"question": "q", "answer": "1"},\n' + "[" * 100_000 + "]" * 100_000 + "\n]")
    with pytest.raises(DatasetError, match=r"data\.json:3: JSON nested deeper than 32 levels"):
        load_file(path)
    with path.open("w") as handle:
        handle.truncate(MAX_JSON_FILE_BYTES + 1)
    with pytest.raises(DatasetError, match=r"over the 67,108,864 a \.json dataset may hold"):
        load_file(path)


def test_bad_items_in_a_json_list_are_named(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"question": "q", "answer": "1"}, {"question": "q", "answer": None}]))
    with pytest.raises(DatasetError, match=r"data\.json item 1: answer is null"):
        load_file(path)
    assert [p.answer for p in load_jsonl(path, "question", "answer", limit=1)] == ["1"]


@pytest.mark.parametrize(
    ("name", "content"), [("empty.jsonl", ""), ("blank.jsonl", "\n  \n"), ("empty.json", "[]")]
)
def test_empty_datasets_are_refused(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetError, match=f"{name}: the dataset is empty"):
        load_dataset_spec(str(path))
    with pytest.raises(DatasetError, match="empty"):
        load_gsm8k(path)


@pytest.mark.parametrize("name", ["binary.jsonl", "binary.json"])
def test_binary_files_are_named(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(DatasetError, match=f"{name}: not UTF-8 text"):
        load_dataset_spec(str(path))


def test_unknown_specs(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset_spec("no-such-dataset")
    with pytest.raises(DatasetError, match="not found"):
        load_gsm8k(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DatasetError, match="unsupported"):
        load_dataset_spec(str(tmp_path / "x.csv"))


def test_hub_unreachable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stands in for the hub being offline (the real call retries for ~25 s before failing)."""
    fake = types.ModuleType("datasets")

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach the Hub")

    fake.load_dataset = offline  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(DatasetError, match="Offline"):
        load_hf("openai/gsm8k", "test")
    with pytest.raises(DatasetError, match="Offline"):
        load_dataset_spec("hf:openai/gsm8k:main")
