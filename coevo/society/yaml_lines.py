"""YAML loading that remembers where every value came from, so config errors can name a line.

PyYAML's composed node tree carries start marks; we construct the plain Python data from the
same tree and record, for every key path, the line of its key (or of the list item). A path
that is not in the map (a missing field) falls back to its nearest recorded parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from coevo.society.config_errors import ConfigError, ConfigIssue

PathPart = str | int
KeyPath = tuple[PathPart, ...]
# A line in the file (1-based), or "--set" for a value that came from a command-line override.
Line = int | Literal["--set"]


@dataclass
class LineMap:
    """Key path → line, plus the paths whose values were replaced by `--set` overrides."""

    lines: dict[KeyPath, int] = field(default_factory=dict)
    overridden: set[KeyPath] = field(default_factory=set)

    def line_of(self, path: Iterable[PathPart]) -> Line | None:
        parts = tuple(path)
        # Everything under an overridden value came from the command line.
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.overridden:
                return "--set"
        for end in range(len(parts), -1, -1):
            if parts[:end] in self.lines:
                return self.lines[parts[:end]]
        return None


# Aliases let a small file expand into a huge (or endless) structure; a society config never needs
# more than this many values, and an alias that contains itself is refused outright.
MAX_VALUES = 100_000
# Nor does it nest deeper than a few levels (`trainers: - args: {...}`); PyYAML builds nested
# values recursively, so a file of 100,000 `[` would otherwise end in a RecursionError.
MAX_DEPTH = 64


class _TooBig(Exception):
    pass


_TOO_DEEP = f"the YAML nests deeper than {MAX_DEPTH} levels"


def load_yaml_with_lines(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; raise ConfigError with file:line:col on a syntax error, a duplicate
    key, a recursive alias, aliases that expand past `MAX_VALUES` values, or nesting deeper than
    `MAX_DEPTH`."""
    loader = yaml.SafeLoader(text)
    lines = LineMap()
    issues: list[ConfigIssue] = []
    try:
        node = loader.get_single_node()
        if node is not None:
            lines.lines[()] = node.start_mark.line + 1
            try:
                _record(node, (), _Walk(source, lines.lines, issues))
            except _TooBig:
                raise ConfigError(
                    source,
                    [
                        ConfigIssue(
                            path="", message=f"the YAML expands to more than {MAX_VALUES:,} values (aliases?)"
                        )
                    ],
                ) from None
        if issues:
            raise ConfigError(source, issues)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ConfigError(source, [ConfigIssue(path="", line=line, column=column, message=message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [ConfigIssue(path="", message=str(exc))]) from None
    except RecursionError:
        # PyYAML's composer recurses once per level before `_record` can count them.
        raise ConfigError(source, [ConfigIssue(path="", message=_TOO_DEEP)]) from None
    finally:
        loader.dispose()
    return data, lines


@dataclass
class _Walk:
    """What walking the node tree collects: lines by key path, issues, and the bounds' state."""

    source: str
    lines: dict[KeyPath, int]
    issues: list[ConfigIssue]
    count: int = 0
    open_nodes: set[int] = field(default_factory=set)


def _record(node: yaml.Node, path: KeyPath, walk: _Walk) -> None:
    walk.count += 1
    if walk.count > MAX_VALUES:
        raise _TooBig
    if len(path) > MAX_DEPTH:
        line = node.start_mark.line + 1
        raise ConfigError(walk.source, [ConfigIssue(path="", line=line, message=_TOO_DEEP)])
    if id(node) in walk.open_nodes:  # an alias inside the node it names
        walk.issues.append(
            ConfigIssue(
                path=".".join(map(str, path)),
                line=node.start_mark.line + 1,
                message="a recursive alias (a value that contains itself)",
            )
        )
        return
    walk.open_nodes.add(id(node))
    try:
        _record_children(node, path, walk)
    finally:
        walk.open_nodes.discard(id(node))


def _record_children(node: yaml.Node, path: KeyPath, walk: _Walk) -> None:
    lines, issues = walk.lines, walk.issues
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                # PyYAML silently keeps the last value; a repeated key is almost always a mistake.
                issues.append(
                    ConfigIssue(
                        path=".".join(map(str, (*path, key))),
                        line=line,
                        message=f"duplicate key (first defined on line {seen[key]})",
                    )
                )
            seen[key] = line
            lines[(*path, key)] = line
            _record(value_node, (*path, key), walk)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record(item, (*path, index), walk)
