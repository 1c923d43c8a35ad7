"""The role registry: per role, the message types it handles, what it may send back, what it sends
when it opens an episode, and how to build it (a `RoleSpec`). `coevo check` (the graph checker),
the runtime and the docs (`coevo roles`, the README table) all read this one table, through
coevo.agents.catalog, which also loads the built-in roles and installed plugins.

Built-in roles register themselves with the `register_role` decorator in their modules. A user
adds a role without editing coevo in either of two ways:

- a decorator in any module the society imports, named under `plugins:` in the config
  (`plugins: [my_package.roles]` or a file, `plugins: [roles/tutor.py]`), e.g.

      from coevo.agents.registry import register_role
      from coevo.agents.role import Role

      @register_role("echo", summary="Repeats every problem back as an answer.",
                     handles={"ProblemPosed": {"SolutionSubmitted"}}, needs_reply={"ProblemPosed"})
      class Echo(Role):
          async def handle(self, ctx, inbox): ...

- a Python entry point in the group `coevo.roles` whose target is such a module (or a callable that
  registers roles), so `pip install` of a package makes its roles available everywhere.

A role may have variants chosen by an agent's `policy:` (the Teacher: `procedural` or `llm`);
each variant is registered under the same role name with its own message table.

The registry is process-wide, on purpose: a role is a class, and Python imports a module once per
process, so a plugin's roles stay registered for the rest of the process (a later config in the
same process — a test, the demo's repeats — sees them too, whether or not it names the plugin).
Registering the same class again is a no-op; another class under a registered name is an error, so
no config can silently replace a role another one uses. Nothing else mutates it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from coevo.agents.role import DEFAULT_PROMPT_VERSION, Activation, EngineUse, NoParams, Role, RoleSpec
from coevo.messages import MESSAGE_TYPES


class RoleRegistryError(ValueError):
    """A role registered twice, with unknown message types, or a plugin that cannot be loaded."""


# role name -> policy (None for a role without variants) -> spec
_REGISTRY: dict[str, dict[str | None, RoleSpec]] = {}

R = TypeVar("R", bound=type[Role])


def register_role(
    name: str,
    *,
    summary: str,
    handles: Mapping[str, Iterable[str]] | None = None,
    opens: Iterable[str] = (),
    needs_reply: Iterable[str] = (),
    activation: Mapping[str, Activation] | None = None,
    engine: EngineUse = "required",
    params: type[BaseModel] = NoParams,
    policy: str | None = None,
    outcomes: Iterable[str] = (),
    holdable: Iterable[str] = (),
    prompts: Iterable[str] = (DEFAULT_PROMPT_VERSION,),
    opening_counts: Callable[[Any], Mapping[str, int]] | None = None,
) -> Callable[[R], R]:
    """Class decorator: register a `Role` subclass under `name` (and `policy`, for a variant).

    `outcomes`: the types it emits with an `Outcome` (what `when:` conditions read); `holdable`:
    the accepted types it can be handed as the opening of a later round's episode
    (`deliver: next_round`); `prompts`: the prompt versions it has (the keys of its prompt table);
    `opening_counts`: how many of each opening type one opening sends, from the agent's params.
    """

    def wrap(cls: R) -> R:
        spec = RoleSpec(
            name=name,
            summary=summary,
            factory=cls,
            handles={t: frozenset(out) for t, out in (handles or {}).items()},
            opens=frozenset(opens),
            needs_reply=frozenset(needs_reply),
            activation=dict(activation or {}),
            engine=engine,
            params=params,
            policy=policy,
            outcomes=frozenset(outcomes),
            holdable=frozenset(holdable),
            prompts=frozenset(prompts),
            opening_counts=opening_counts,
        )
        add_role(spec)
        cls.spec = spec
        return cls

    return wrap


def add_role(spec: RoleSpec) -> None:
    unknown = (spec.accepts | spec.produces | set(spec.activation)) - MESSAGE_TYPES
    if unknown:
        raise RoleRegistryError(
            f"role {spec.name!r} names unknown message types {sorted(unknown)}; "
            f"known: {', '.join(sorted(MESSAGE_TYPES))}"
        )
    if not spec.needs_reply <= spec.accepts:
        raise RoleRegistryError(f"role {spec.name!r}: needs_reply must be among the types it handles")
    if not spec.holdable <= spec.accepts:
        raise RoleRegistryError(f"role {spec.name!r}: holdable must be among the types it handles")
    if not spec.outcomes <= spec.produces:
        raise RoleRegistryError(f"role {spec.name!r}: outcomes must be among the types it sends")
    if not spec.prompts:
        raise RoleRegistryError(f"role {spec.name!r}: prompts must name at least one prompt version")
    variants = _REGISTRY.setdefault(spec.name, {})
    if spec.policy in variants and variants[spec.policy].factory is not spec.factory:
        what = f"{spec.name!r}" + (f" (policy {spec.policy!r})" if spec.policy else "")
        raise RoleRegistryError(f"role {what} is registered twice")
    if (None in variants) != (spec.policy is None) and variants:
        raise RoleRegistryError(f"role {spec.name!r} mixes a plain registration with policy variants")
    variants[spec.policy] = spec


def import_plugin(plugin: str, base_dir: Path | None = None) -> Any:
    """A module by dotted name or .py path; the file's module is cached under a stable name so
    importing it twice registers nothing twice."""
    if plugin.endswith(".py"):
        path = Path(plugin)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        path = path.resolve()
        if not path.is_file():
            raise RoleRegistryError(f"plugin file not found: {path}")
        module_name = f"coevo_plugin_{path.stem}_{abs(hash(str(path))):x}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise RoleRegistryError(f"cannot import plugin file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            del sys.modules[module_name]
            raise plugin_error(str(path), exc) from exc
        return module
    try:
        return importlib.import_module(plugin)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise plugin_error(repr(plugin), exc) from exc


def plugin_error(plugin: str, exc: BaseException) -> RoleRegistryError:
    """What a plugin that fails to import is reported as. Anything it raises, SystemExit included
    (a module that calls `sys.exit()` or `exit()` at import), is the plugin's error, never a reason
    for `coevo check` or `coevo run` to exit quietly; only Ctrl+C (KeyboardInterrupt) goes through."""
    return RoleRegistryError(f"plugin {plugin} failed to import: {type(exc).__name__}: {exc}")
