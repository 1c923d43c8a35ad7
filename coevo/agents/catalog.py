"""The role catalog: every role the registry knows — the five built-in ones, those of installed
packages (Python entry points in the group `coevo.roles`), and those of plugins a config names —
and the questions the checker, the runtime and the docs ask of it.

Built-in roles are imported here (not by the registry itself), so that the registry stays a plain
table the role modules can import without a cycle.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

import coevo.agents.builtin  # noqa: F401  (registers the five built-in roles)
from coevo.agents.registry import _REGISTRY, RoleRegistryError, import_plugin, plugin_error
from coevo.agents.role import RoleSpec
from coevo.messages import MESSAGE_TYPES

ENTRY_POINT_GROUP = "coevo.roles"
_loaded_entry_points = False


def _ensure_loaded() -> None:
    """Import the roles of installed packages (entry points), once."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # A broken plugin names itself instead of breaking coevo (or, raising SystemExit, ending
        # it quietly); see plugin_error.
        try:
            loaded = entry.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except (KeyboardInterrupt, RoleRegistryError):
            raise
        except BaseException as exc:
            raise plugin_error(f"{entry.name!r} ({entry.value})", exc) from exc


def role_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def policies(role: str) -> list[str]:
    """The policy variants of a role; empty when it has none."""
    _ensure_loaded()
    return sorted(p for p in _REGISTRY.get(role, {}) if p is not None)


def role_spec(role: str, policy: str | None = None) -> RoleSpec:
    """The spec of a role (of its `policy` variant, for a role that has variants)."""
    _ensure_loaded()
    variants = _REGISTRY.get(role)
    if variants is None:
        raise RoleRegistryError(f"unknown role {role!r}; known: {', '.join(role_names())}")
    if None in variants:
        return variants[None]
    if policy not in variants:
        raise RoleRegistryError(
            f"a {role} needs `policy:` one of {', '.join(sorted(str(p) for p in variants))}"
        )
    return variants[policy]


def all_specs() -> list[RoleSpec]:
    _ensure_loaded()
    return [spec for name in sorted(_REGISTRY) for _, spec in sorted(_REGISTRY[name].items(), key=_key)]


def _key(item: tuple[str | None, RoleSpec]) -> str:
    return item[0] or ""


def load_plugins(plugins: Iterable[str], base_dir: Path | None = None) -> None:
    """Import plugin modules (dotted names) or files (paths ending in .py, relative to `base_dir`)
    so that their `register_role` decorators run."""
    _ensure_loaded()
    for plugin in plugins:
        import_plugin(plugin, base_dir)


def message_table() -> list[tuple[str, list[str], list[str]]]:
    """(message type, roles that send it, roles that accept it) for every message type."""
    rows = []
    for message in sorted(MESSAGE_TYPES):
        senders = sorted({s.label for s in all_specs() if message in s.produces})
        receivers = sorted({s.label for s in all_specs() if message in s.accepts})
        rows.append((message, senders, receivers))
    return rows
