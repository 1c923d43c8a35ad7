"""Import hygiene: the core never imports the TUI (textual), and `coevo --help` pulls in no heavy
library (torch, vllm, trl, transformers, textual), so the command line starts instantly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "vllm", "trl", "transformers", "textual", "peft", "datasets")
CORE_PACKAGES = ["agents", "engines", "memory", "society", "tasks", "trainers"]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_cli_help_imports_nothing_heavy() -> None:
    loaded = _loaded_after(
        "import contextlib, io\nfrom coevo.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    assert not loaded & set(HEAVY), f"coevo --help imported {sorted(loaded & set(HEAVY))}"


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_never_imports_textual(package: str) -> None:
    root = Path(__file__).resolve().parents[1] / "coevo" / package
    modules = [
        f"coevo.{package}." + p.relative_to(root).with_suffix("").as_posix().replace("/", ".")
        for p in root.rglob("*.py")
        if p.name != "__init__.py"
    ]
    code = "\n".join(f"import {m}" for m in modules) or "pass"
    assert "textual" not in _loaded_after(code)
