"""`coevo export` on replay runs: every kind loads with `datasets.load_dataset` with exactly its
columns, in every format; the DPO export is the rows the Solver's trainer built (same builder,
same rng); `--as-of-round` is exact and survives a resume; decontamination removes planted
evaluation problems; the card's YAML parses and its counts match the data; bad arguments are a
message and exit code 2."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from coevo.export.kinds import KINDS
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.loading import parse_config
from coevo.society.session import load_snapshot, run_id_for, run_society
from tests.export.conftest import export, replay_run

EXPORTS = [
    ("demo", "curriculum"),
    ("demo", "sft"),
    ("demo", "dpo"),
    ("demo", "grpo"),
    ("demo", "kto"),
    ("socratic_zero", "generator"),
    ("lbt", "lbt"),
    ("lbt", "lbt_dpo"),
    ("coach", "coach"),
]


def load(out: Path) -> list[dict[str, Any]]:
    import datasets

    return datasets.load_dataset(str(out), split="train").to_list()


def card(out: Path) -> tuple[dict[str, Any], str]:
    """The card's YAML header and its body."""
    _, header, body = (out / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(header), body


def table(body: str, title: str) -> dict[str, int]:
    """A counts table of the card body: its first column -> rows."""
    block = body.split(f"| {title} | rows | share |\n|---|---|---|\n", 1)[1].split("\n\n", 1)[0]
    return {cells[1].strip(): int(cells[2]) for cells in (line.split("|") for line in block.splitlines())}


def removed_by(body: str) -> dict[str, int]:
    """The decontamination table: evaluation set -> rows removed."""
    rows = re.findall(r"^\| (.+?) \| \d+ \| .+? \| (\d+) \|$", body, flags=re.M)
    return {name: int(n) for name, n in rows}


@pytest.mark.parametrize(("run", "kind"), EXPORTS, ids=[k for _, k in EXPORTS])
def test_each_kind_loads_with_exactly_its_columns(
    runs: dict[str, Path], tmp_path: Path, run: str, kind: str
) -> None:
    out = tmp_path / kind
    assert export("--run", str(runs[run]), "--kind", kind, "--out", str(out)) == 0
    rows = load(out)
    header, body = card(out)
    assert rows and list(rows[0]) == [c.name for c in KINDS[kind].columns]
    assert header["dataset_info"]["splits"][0]["num_examples"] == len(rows)
    assert sum(table(body, "round").values()) == len(rows) == sum(table(body, "zone").values())
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]


def test_formats_hold_the_same_rows(runs: dict[str, Path], tmp_path: Path) -> None:
    loaded = {}
    for fmt in ("hf", "parquet", "jsonl"):
        out = tmp_path / fmt
        assert (
            export("--run", str(runs["demo"]), "--kind", "curriculum", "--format", fmt, "--out", str(out))
            == 0
        )
        loaded[fmt] = load(out)
    assert loaded["hf"] == loaded["parquet"] == loaded["jsonl"]
    assert (tmp_path / "jsonl" / "data" / "train.jsonl").is_file()


def test_card_yaml_parses_and_its_counts_match_the_data(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "curriculum"
    assert export("--run", str(runs["demo"]), "--kind", "curriculum", "--out", str(out)) == 0
    header, body = card(out)
    assert header["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}
    ]
    assert header["license"] == "apache-2.0"  # procedural problems, answered by SmolLM2 (Apache-2.0)
    assert header["task_categories"] == ["text-generation"] and header["size_categories"] == ["n<1K"]
    rows = load(out)
    assert table(body, "skill") == Counter(s for r in rows for s in r["skills"])
    assert table(body, "zone") == Counter(r["zone"] for r in rows)
    assert table(body, "round") == Counter(str(r["first_round"]) for r in rows)
    assert table(body, "source") == Counter(r["source"] for r in rows)
    assert f"{len(rows)} rows" in body
    assert "GSM8K test" in removed_by(body) or "GSM8K test was not checked" in body
    # Per round, attempts add up; the flag is the curriculum's as the last round left it.
    store = Store.for_run_dir(runs["demo"])
    inside = set(store.curriculum_as_of(run_id_for(runs["demo"]), 1))
    for row in rows:
        assert row["attempts"] == sum(r["attempts"] for r in row["rounds"])
        assert row["in_curriculum"] == (row["id"] in inside)


def test_filters_select_problems(runs: dict[str, Path], tmp_path: Path) -> None:
    run = str(runs["demo"])
    out = tmp_path / "learning"
    args = ["--zones", "learning", "--skills", "add_carry,sub_borrow", "--success", "0.25-0.75"]
    assert export("--run", run, "--kind", "curriculum", *args, "--rounds", "1", "--out", str(out)) == 0
    rows = load(out)
    assert rows and all(r["zone"] == "learning" and 0.25 <= r["success_rate"] <= 0.75 for r in rows)
    assert all({"add_carry", "sub_borrow"} & set(r["skills"]) for r in rows)
    assert all([s["round"] for s in r["rounds"]] == [1] for r in rows)
    base = tmp_path / "base"
    assert export("--run", run, "--kind", "kto", "--policy", "base", "--out", str(base)) == 0
    assert load(base)


def test_dpo_export_is_the_rows_the_solver_trainer_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: str
) -> None:
    from coevo.trainers import registry
    from coevo.trainers.common import TrainResult
    from tests.society.replay_society import replay_config

    kind = registry.TRAINERS["socratic_solver_dpo"]
    built: dict[int, list[dict[str, Any]]] = {}

    def rows(request: Any, settings: Any) -> list[dict[str, Any]]:
        built[request.window.stop - 1] = kind.rows(request, settings)
        return built[request.window.stop - 1]

    def train(settings: Any, rows: Any, base: str, init: Path | None, out: Path) -> TrainResult:
        out.mkdir(parents=True)  # the rows are under test, not the weights
        return TrainResult(out, {}, 0)

    monkeypatch.setitem(registry.TRAINERS, kind.name, dataclasses.replace(kind, rows=rows, train=train))
    trainer = "{kind: socratic_solver_dpo, agent: solver, every: 2, args: {max_pairs_per_problem: 3}}"
    # A trainable agent needs local weights (the training below is faked: any model folder does).
    config = replay_config(
        [
            f"engines.local.model={tiny_model}",
            "agents.solver.trainable=true",
            "schedule.rounds=4",
            f"trainers=[{trainer}]",
        ]
    )
    run_dir = tmp_path / "run"
    asyncio.run(run_society(config, run_dir, resume=False, engines=make_replay_engines(config)))
    monkeypatch.undo()
    assert sorted(built) == [1, 3] and built[1]

    # The training run after round 1 read rounds 0-1 as they stood then: `--rounds 0-1` reads
    # them as of round 1 too (rounds 2-3 have been added since).
    exact = tmp_path / "exact"
    window = ["--rounds", "0-1"]
    assert (
        export("--run", str(run_dir), "--kind", "dpo", *window, "--keep-duplicates", "--out", str(exact)) == 0
    )
    assert load(exact) == built[1]

    clean = tmp_path / "clean"
    assert export("--run", str(run_dir), "--kind", "dpo", *window, "--out", str(clean)) == 0
    kept = load(clean)
    unique = list({json.dumps(r, sort_keys=True): r for r in reversed(built[1])}.values())
    assert len({json.dumps(r, sort_keys=True) for r in kept}) == len(kept)
    assert sorted(map(json.dumps, kept)) == sorted(map(json.dumps, unique))  # duplicates only went
    duplicates = re.search(
        r"Removed (\d+) exact duplicates .*? and (\d+) near duplicates", card(clean)[1], re.S
    )
    assert duplicates is not None and sum(map(int, duplicates.groups())) == len(built[1]) - len(kept)


def test_as_of_round_is_exact_and_survives_resume(tmp_path: Path) -> None:
    # The static curriculum poses the same problems every round, and a narrow success band moves
    # them in and out of the curriculum: later rounds change what an export as of round 1 shows.
    band = ["schedule.success_band=[0.25, 0.5]"]
    run_dir = replay_run("demo_static", tmp_path / "run", rounds=2, extra=band)

    def as_of(round_index: int, name: str, kinds: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
        found = {}
        for kind in kinds:
            out = tmp_path / f"{name}-{kind}-{round_index}"
            as_of = ["--as-of-round", str(round_index)]
            assert export("--run", str(run_dir), "--kind", kind, *as_of, "--out", str(out)) == 0
            found[kind] = load(out)
        return found

    before = as_of(1, "before", ("curriculum", "dpo", "kto"))
    more = load_snapshot(run_dir, ["schedule.rounds=4"])
    asyncio.run(run_society(more, run_dir, resume=True, engines=make_replay_engines(more)))
    assert as_of(1, "after", ("curriculum", "dpo", "kto")) == before

    # Each round's export is that round's curriculum history, not the memory as it is now.
    store = Store.for_run_dir(run_dir)
    history = store.curriculum_history(run_id_for(run_dir))
    k = more.schedule.attempts_per_problem
    for round_index in range(4):
        rows = as_of(round_index, "round", ("curriculum",))["curriculum"]
        latest = {h.problem_id: h for h in history if h.round <= round_index}
        assert {r["id"]: r["in_curriculum"] for r in rows} == {p: h.in_curriculum for p, h in latest.items()}
        assert all(r["attempts"] == k * (round_index + 1) for r in rows)
    now = {p.problem_id: p.in_curriculum for p in store.problems(run_id_for(run_dir))}
    assert any(now[r["id"]] != r["in_curriculum"] for r in before["curriculum"])


def test_decontamination_removes_planted_evaluation_problems(tmp_path: Path, shared_data: Path) -> None:
    from coevo.tasks.heldout import heldout_set

    gsm8k = [json.loads(line)["question"] for line in (shared_data / "gsm8k" / "test.jsonl").open()][:2]
    changed = re.sub(r"\d+", lambda m: str(int(m.group()) + 3), gsm8k[1])  # the same problem, other numbers
    heldout = heldout_set(300, seed=0)
    plain = next(p for p in heldout if p.difficulty["distractors"] == 0)
    noisy = next(p for p in heldout if p.difficulty["distractors"] > 0)
    own = (
        "A robot paints seven fences every morning and five fences every evening for a whole week. How many?"
    )
    (tmp_path / "eval.jsonl").write_text(json.dumps({"question": own, "answer": "84"}) + "\n")
    clean = [
        "Mia has 14 stickers and buys 9 more. How many stickers does she have now?",
        "A shelf holds 32 books. 15 are taken away. How many books are left?",
        "There are 45 birds in a tree and 23 fly away. How many birds remain?",
    ]
    planted = [
        {"question": gsm8k[0], "answer": "18"},
        {"question": changed, "answer": "7"},
        {"question": plain.question, "answer": plain.answer, "skills": plain.skills},
        {"question": noisy.question, "answer": noisy.answer, "skills": noisy.skills},
        {"question": own, "answer": "84"},
    ]
    config = {
        "name": "planted",
        "engines": {"e": {"kind": "replay"}},
        "agents": {
            "teacher": {"role": "teacher", "policy": "llm", "engine": "e", "pool": {"problems": []}},
            "solver": {"role": "solver", "engine": "e"},
        },
        "graph": [
            {"source": "teacher", "target": "solver", "message": "ProblemPosed"},
            {"source": "solver", "target": "teacher", "message": "SolutionSubmitted"},
        ],
        "schedule": {"rounds": 1, "problems_per_round": 60, "attempts_per_problem": 2},
    }
    config["agents"]["teacher"]["pool"]["problems"] = [
        *({"question": q, "answer": "1"} for q in clean),
        *planted,
    ]
    society = parse_config(yaml.safe_dump(config), "planted.yaml")
    run_dir = tmp_path / "run"
    asyncio.run(run_society(society, run_dir, resume=False, engines=make_replay_engines(society)))
    posed = {p.question for p in Store.for_run_dir(run_dir).problems(run_id_for(run_dir))}
    assert posed == {*clean, *(p["question"] for p in planted)}

    out = tmp_path / "out"
    eval_file = str(tmp_path / "eval.jsonl")
    assert (
        export("--run", str(run_dir), "--kind", "curriculum", "--decontaminate", eval_file, "--out", str(out))
        == 0
    )
    assert sorted(r["question"] for r in load(out)) == sorted(clean)
    assert removed_by(card(out)[1]) == {"procedural held-out": 2, "GSM8K test": 2, eval_file: 1}


BAD = [
    (["--run", "/nonexistent/run", "--kind", "sft"], "run directory not found"),
    (["--kind", "preferences"], "unknown kind 'preferences'"),
    (["--kind", "curriculum", "--success", "0.8-0.2"], "--success '0.8-0.2'"),
    (["--kind", "curriculum", "--success", "half"], "--success 'half'"),
    (["--kind", "curriculum", "--rounds", "3-1"], "--rounds '3-1'"),
    (["--kind", "curriculum", "--rounds", "0-9"], "--rounds reaches round 9"),
    (["--kind", "curriculum", "--rounds", "1", "--as-of-round", "0"], "after --as-of-round 0"),
    (["--kind", "curriculum", "--as-of-round", "7"], "--as-of-round 7 is not a committed round"),
    (["--kind", "curriculum", "--zones", "easy"], "unknown zone easy"),
    (["--kind", "curriculum", "--skills", "calculus"], "no curriculum rows to export"),
    (["--kind", "generator"], "no generator agent"),
    (["--kind", "dpo", "--agent", "teacher"], "agent 'teacher' is a teacher"),
    (["--kind", "grpo", "--agent", "solver"], "--agent does not apply to grpo"),
    (["--kind", "dpo", "--agent", "nobody"], "no agent 'nobody'"),
    (["--kind", "curriculum", "--decontaminate", "/nonexistent/eval.jsonl"], "dataset file not found"),
    (["--kind", "curriculum", "--format", "csv"], "unknown format 'csv'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_arguments_are_a_message_and_exit_2(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    full = args if "--run" in args else ["--run", str(runs["demo"]), *args]
    assert export(*full, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("coevo export: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_an_existing_output_is_replaced_only_with_force(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert export("--run", str(runs["demo"]), "--kind", "grpo", "--out", str(out)) == 2
    assert (out / "keep.txt").exists()
    assert export("--run", str(runs["demo"]), "--kind", "grpo", "--out", str(out), "--force") == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    assert export("--run", str(runs["demo"]), "--kind", "grpo", "--out", str(runs["demo"]), "--force") == 2
    assert (runs["demo"] / "coevo.db").exists()
