"""The README's tables of roles, messages, conditions and trainer kinds are `coevo roles
--markdown`, generated from the registries the checker and the runtime read."""

from __future__ import annotations

from pathlib import Path

from coevo.cli import main
from coevo.society.docs import roles_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tables_match_the_registries() -> None:
    text = README.read_text()
    block = text.split("<!-- roles:begin -->\n", 1)[1].split("\n<!-- roles:end -->", 1)[0]
    assert block == roles_markdown(), "README is stale: paste `coevo roles --markdown` between the markers"


def test_roles_command(capsys: object) -> None:
    assert main(["roles"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "teacher (procedural)" in out and "ProblemProposed: generator ->" in out
