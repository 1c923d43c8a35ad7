"""Every command, given bad arguments, prints a message and exits 2 — never a traceback. Each case
runs the real command line in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPLAY_CONFIG = """
name: replayed
engines: {local: {kind: replay}}
agents:
  teacher: {role: teacher, policy: procedural, curriculum: {kind: uniform, skills: [add_carry]}}
  solver: {role: solver, engine: local}
graph:
  - {source: teacher, target: solver, message: ProblemPosed}
  - {source: solver, target: teacher, message: SolutionSubmitted}
"""


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    (tmp / "replay.yaml").write_text(REPLAY_CONFIG)
    (tmp / "bad.yaml").write_text("name: x\nagents: {a: {role: solvr}}\n")
    (tmp / "empty.jsonl").write_text("")
    (tmp / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    (tmp / "afile").write_text("x")
    (tmp / "exits.py").write_text("import sys\nsys.exit(0)\n")
    (tmp / "exits.yaml").write_text("plugins: [exits.py]\n" + REPLAY_CONFIG)
    (tmp / "deep.yaml").write_text("name: x\nagents: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp / "deep.jsonl").write_text('{"question": ' + "[" * 100_000 + "]" * 100_000 + ', "answer": "1"}\n')
    (tmp / "long.jsonl").write_text('{"question": "' + "q" * 30_000 + '", "answer": "1"}\n')
    return [
        ("no command", []),
        ("unknown command", ["nope"]),
        ("unknown option", ["models", "--bogus"]),
        ("generate without a prompt", ["generate"]),
        ("generate on an unknown engine", ["generate", "hi", "--engine", "nope"]),
        ("check a missing file", ["check", str(tmp / "missing.yaml")]),
        ("check a bad config", ["check", str(tmp / "bad.yaml")]),
        ("check the replay test double", ["check", str(tmp / "replay.yaml")]),
        (
            "check with a bad override",
            ["check", str(ROOT / "configs" / "demo.yaml"), "--set", "schedule.roundz=1"],
        ),
        ("check a plugin that exits at import", ["check", str(tmp / "exits.yaml")]),
        ("check a config nested 100,000 deep", ["check", str(tmp / "deep.yaml")]),
        (
            "check a prompt version the role lacks",
            ["check", str(ROOT / "configs" / "demo.yaml"), "--set", "agents.solver.prompt_version=v9"],
        ),
        ("roles with an unknown option", ["roles", "--bogus"]),
        ("run without a config", ["run"]),
        ("run a missing file", ["run", str(tmp / "missing.yaml")]),
        ("run the replay test double", ["run", str(tmp / "replay.yaml"), "--run-dir", str(tmp / "r")]),
        ("run into a file", ["run", str(ROOT / "configs" / "demo.yaml"), "--run-dir", str(tmp / "afile")]),
        ("resume nothing", ["run", "--resume", str(tmp / "nothing")]),
        ("runs under a file", ["runs", "--root", str(tmp / "afile")]),
        ("demo with a bad override", ["demo", "--set", "schedule.rounds=0"]),
        ("eval a missing dataset", ["eval", "--dataset", str(tmp / "missing.jsonl")]),
        ("eval an empty dataset", ["eval", "--dataset", str(tmp / "empty.jsonl")]),
        ("eval a binary file", ["eval", "--dataset", str(tmp / "binary.jsonl")]),
        ("eval a dataset nested 100,000 deep", ["eval", "--dataset", str(tmp / "deep.jsonl")]),
        ("eval a question too long", ["eval", "--dataset", str(tmp / "long.jsonl")]),
        ("eval bad levels", ["eval", "--levels", "digits=x"]),
        ("eval a missing run", ["eval", "--run", str(tmp / "nothing")]),
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.mark.parametrize("index", range(len(cases(Path("/tmp")))), ids=[c[0] for c in cases(Path("/tmp"))])
def test_bad_arguments_exit_2_with_a_message(index: int, workdir: Path) -> None:
    name, argv = cases(workdir)[index]
    proc = subprocess.run(
        [sys.executable, "-m", "coevo.cli", *argv], capture_output=True, text=True, cwd=workdir, timeout=120
    )
    assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stderr.strip(), f"{name}: no message"
