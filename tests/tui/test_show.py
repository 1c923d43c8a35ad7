"""`coevo show` (a run's messages as text or JSON lines, for scripts and pipes) and the bad-argument
answers of `coevo show` and `coevo watch`: a message and exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coevo.cli import main
from coevo.memory.store import Store
from coevo.messages import SolutionSubmitted
from tests.tui.conftest import HandMadeRun
from tests.tui.fixture_run import RUN_ID


def test_show_prints_every_event_with_its_texts(fixed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(fixed_run)]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line.startswith("#")]
    store = Store.for_run_dir(fixed_run)
    assert len(heads) == len(store.events(RUN_ID))
    store.close()
    assert heads[0].startswith("#1 round 0 episode -  scheduler → (stored)  RoundStarted")
    assert "solver → teacher  SolutionSubmitted  [base]" in out and "  response:\n    " in out
    assert "(provisional)" not in out  # every round of the fixed run committed


def test_show_filters_and_json_lines(fixed_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["show", str(fixed_run), "--round", "1", "--agent", "solver", "--type", "SolutionSubmitted"])
        == 0
    )
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith("#")]
    assert heads and all("round 1 " in h and "solver → teacher  SolutionSubmitted" in h for h in heads)
    url = f"sqlite:///{fixed_run / 'coevo.db'}"
    assert main(["show", url, "--run-id", RUN_ID, "--type", "RoundFinished", "--json", "--limit", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["type"], r["round"]) for r in records] == [("RoundFinished", 1), ("RoundFinished", 2)]
    assert records[0]["row"] < records[1]["row"] and records[0]["provisional"] is False


def test_show_writes_model_output_inert(hand_made: HandMadeRun, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "\x1b]0;pwned\x07\x1b[2J [red]x[/red]"
    hand_made.add(SolutionSubmitted(problem_id="p", attempt_index=0, response=hostile, sender="solver"))
    assert main(["show", str(hand_made.run_dir)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2J [red]x[/red]" in out and "(provisional)" in out
    assert main(["show", str(hand_made.run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["response"] == hostile  # JSON escapes it, losslessly


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "{tmp}/nowhere"], "no such directory"),
        (["show", "{tmp}"], "a run directory without a database"),
        (["show", "sqlite:///{tmp}/none.db"], "no such database file"),
        (["show", "{run}", "--type", "Bogus"], "unknown type Bogus"),
        (["show", "{run}", "--agent", "nobody"], "no agent 'nobody' in this run"),
        (["show", "{run}", "--round", "-1"], "--round must be 0 or more"),
        (["show", "{run}", "--limit", "0"], "--limit must be 1 or more"),
        (["show", "{run}", "--run-id", "other"], "no run other in this database"),
        (["watch", "{tmp}/nowhere"], "no such directory"),
        (["watch", "{run}"], "needs a terminal"),
        (["watch", "{run}", "--web", "70000"], "--web needs a port between 1 and 65535"),
    ],
)
def test_bad_arguments_are_a_message_and_exit_2(
    argv: list[str], message: str, fixed_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(tmp=tmp_path, run=fixed_run) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
