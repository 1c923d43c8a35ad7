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


# --- the import contract ----------------------------------------------------------------------------

PACKAGE = Path(__file__).resolve().parents[1] / "coevo"
# Lower layers never import upper ones, not even lazily or for type checking: the message
# vocabulary at the bottom, then inference, the task domain, memory, the roles, the trainers,
# the society runtime, export and the TUI (leaves over the read API), and the command line on top.
LAYERS = ["messages", "engines", "tasks", "memory", "agents", "trainers", "society", "export", "tui", "cli"]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """coevo modules a file imports; with `module_level_only`, only those executed at import time
    (not inside functions, not under `if TYPE_CHECKING:`)."""
    import ast

    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                if not module_level_only:
                    visit(child, False)
                continue
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                if not module_level_only:
                    visit(child, top)
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("coevo"):
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("coevo"))
            visit(child, top)

    visit(tree, True)
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules}


def _layer(module: str) -> int:
    name = module.split(".")[1] if "." in module else module
    return LAYERS.index(name) if name in LAYERS else -1


def test_lower_layers_never_import_upper_ones() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        source = _module(path)
        if _layer(source) < 0:
            continue
        for target in _imports(path, module_level_only=False):
            if _layer(target) > _layer(source):
                violations.append(f"{source} imports {target}")
    assert not violations, "\n".join(sorted(violations))


@pytest.mark.parametrize("module_level_only", [True, False], ids=["at-import", "any-import"])
def test_no_import_cycles(module_level_only: bool) -> None:
    """No cycle among modules, counting even lazy imports and those for type checking."""
    import networkx as nx

    graph = nx.DiGraph()
    for path in PACKAGE.rglob("*.py"):
        source = _module(path)
        for target in _imports(path, module_level_only=module_level_only):
            if target != source and not source.startswith(f"{target}."):
                graph.add_edge(source, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "\n".join(" -> ".join([*c, c[0]]) for c in cycles)
