"""The role registry: a user adds a role without editing coevo (a plugin file named in the config,
or an installed package's entry point), and a role with bad declarations is refused."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coevo.agents import catalog
from coevo.agents.registry import _REGISTRY, RoleRegistryError, register_role
from coevo.agents.role import Role
from coevo.memory.store import Store
from coevo.society.checker import make_replay_engines
from coevo.society.config_errors import ConfigError
from coevo.society.loading import load_config
from coevo.society.session import run_id_for, run_society

PLUGIN = '''
"""A user's role: answers every problem with the largest number in its question."""
import re

from coevo.agents.registry import register_role
from coevo.agents.role import Role
from coevo.messages import ProblemPosed, SolutionSubmitted


@register_role(
    "{name}",
    summary="Answers with the largest number in the question.",
    handles={{"ProblemPosed": {{"SolutionSubmitted"}}}},
    needs_reply={{"ProblemPosed"}},
    engine="none",
)
class Guesser(Role):
    async def handle(self, ctx, inbox):
        for message in inbox:
            if isinstance(message, ProblemPosed):
                numbers = [int(n) for n in re.findall(r"\\d+", message.question)] or [0]
                ctx.emit(
                    SolutionSubmitted(
                        problem_id=message.problem_id,
                        attempt_index=0,
                        response=f"The answer is {{max(numbers)}}.",
                    ),
                    reply_to=[message],
                )
'''

CONFIG = """
name: plugged
plugins: [{plugin}]
agents:
  teacher: {{role: teacher, policy: procedural, curriculum: {{kind: uniform, skills: [add_carry]}}}}
  guesser: {{role: {name}}}
graph:
  - {{source: teacher, target: guesser, message: ProblemPosed}}
  - {{source: guesser, target: teacher, message: SolutionSubmitted}}
schedule: {{rounds: 1, problems_per_round: 3}}
"""


@pytest.fixture(autouse=True)
def _registry_as_it_was() -> Iterator[None]:
    """The roles these tests register leave with them (the registry is process-wide, and the
    README's generated tables, checked in tests/society/test_docs.py, list every registered role)."""
    catalog.role_names()  # the built-in roles and entry points, loaded before the snapshot
    before = {name: dict(variants) for name, variants in _REGISTRY.items()}
    yield
    _REGISTRY.clear()
    _REGISTRY.update(before)


def test_a_role_from_a_plugin_file_named_in_the_config_runs(tmp_path: Path) -> None:
    (tmp_path / "guesser_role.py").write_text(PLUGIN.format(name="guesser_file"))
    path = tmp_path / "society.yaml"
    path.write_text(CONFIG.format(plugin="guesser_role.py", name="guesser_file"))
    config = load_config(path)
    assert "guesser_file" in catalog.role_names()
    asyncio.run(run_society(config, tmp_path / "run", resume=False, engines=make_replay_engines(config)))
    events = Store.for_run_dir(tmp_path / "run").events(run_id_for(tmp_path / "run"))
    answers = [e for e in events if e.type == "SolutionSubmitted"]
    assert len(answers) == 3 and all(e.sender == "guesser" for e in answers)
    assert sum(e.type == "AttemptGraded" for e in events) == 3  # the Teacher graded the plugin's answers


def test_a_role_from_an_installed_package_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "guesser_pkg.py").write_text(PLUGIN.format(name="guesser_pkg"))
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(
        name="guesser", value="guesser_pkg", group=catalog.ENTRY_POINT_GROUP
    )
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: object) -> object:
        if kwargs.get("group") == catalog.ENTRY_POINT_GROUP:
            return [entry]
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(catalog, "_loaded_entry_points", False)
    try:
        assert "guesser_pkg" in catalog.role_names()
        path = tmp_path / "society.yaml"
        path.write_text(
            CONFIG.format(plugin="guesser_pkg", name="guesser_pkg").replace("plugins: [guesser_pkg]\n", "")
        )
        assert load_config(path).agents["guesser"].role == "guesser_pkg"
    finally:
        sys.modules.pop("guesser_pkg", None)


def test_a_plugin_that_fails_to_import_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    path = tmp_path / "society.yaml"
    path.write_text(CONFIG.format(plugin="broken.py", name="solver"))
    with pytest.raises(
        ConfigError, match=r"plugins.0: plugin .*broken.py failed to import: RuntimeError: oops"
    ):
        load_config(path)


def test_bad_role_declarations_are_refused() -> None:
    with pytest.raises(RoleRegistryError, match="unknown message types"):

        @register_role("bad", summary="", handles={"Shout": {"SolutionSubmitted"}})
        class Bad(Role):
            pass

    with pytest.raises(RoleRegistryError, match="registered twice"):

        @register_role("solver", summary="", handles={"ProblemPosed": {"SolutionSubmitted"}})
        class Twice(Role):
            pass
