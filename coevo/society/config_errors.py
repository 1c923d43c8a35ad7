"""Config problems as data: each `ConfigIssue` names a field path and the line it came from, and a
`ConfigError` carries all of them, so a user fixes a config in one pass instead of one error a run."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ConfigIssue:
    path: str  # dotted field path ("agents.solver.engine"); "" for the file as a whole
    message: str
    # 1-based line in the file; "--set" when the value came from a command-line override.
    line: int | Literal["--set"] | None = None
    column: int | None = None

    def format(self, source: str) -> str:
        if self.line == "--set":
            where = "--set"
        elif self.line is None:
            where = source
        elif self.column is not None:
            where = f"{source}:{self.line}:{self.column}"
        else:
            where = f"{source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A society config that cannot be used; `str()` lists every issue, one per line."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = list(issues)
        super().__init__("\n".join(issue.format(source) for issue in self.issues))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(word: str, choices: Iterable[str]) -> str:
    """A message tail for an unknown name: the suggestion, then every allowed value."""
    options = sorted(choices)
    listed = ", ".join(options) if options else "none defined"
    return f"{did_you_mean(word, options)}; expected one of: {listed}"
