"""Loading a society config: the structural pass (coevo.society.config) and then the checks that
need the registries, the task layer and the engines (coevo.society.validate). What this accepts is
what `coevo run` runs; every problem comes back at once, each with its field and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from coevo.society.config import SocietyConfig, parse_structure, read_config_text, sort_issues
from coevo.society.config_errors import ConfigError
from coevo.society.validate import validate


def parse_config(
    text: str, source_name: str = "<config>", overrides: Sequence[str] = (), base_dir: Path | None = None
) -> SocietyConfig:
    """Parse, override and check a config; ConfigError listing every problem. Relative paths in
    it resolve against `base_dir` (the config file's folder)."""
    config = parse_structure(text, source_name, overrides)
    issues = validate(config, base_dir)
    if issues:
        raise ConfigError(source_name, sort_issues(issues))
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> SocietyConfig:
    """Read, override and check a config file."""
    return parse_config(read_config_text(path), str(path), overrides, Path(path).resolve().parent)
