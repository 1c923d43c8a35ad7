"""Secrets in a society config: where they come from, and why they are never written down.

Keys and passwords come from the environment: any string in the config may hold `${NAME}`,
replaced by the environment variable NAME when the value is used (building an engine, opening the
memory), and an engine's `api_key_env: NAME` names the variable holding its API key. The config
itself keeps `${NAME}`, so the run's config snapshot, the database and the console never see the
value.

A literal secret (an `api_key`/`token`/`password`/`secret` option, or a password inside a URL)
still works for the run that was given it, but every copy coevo writes or prints is masked
(`***`); resuming such a run asks for the secret again (an override, or better the environment).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(r"(api_?key|token|secret|password|passwd)$", re.IGNORECASE)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@/\s]+)(?P<tail>@)", re.IGNORECASE
)


class SecretError(ValueError):
    """A secret the run needs but cannot get (an unset variable, a masked literal on resume)."""


def expand(value: str, where: str) -> str:
    """`${NAME}` → the environment variable NAME; SecretError naming `where` when it is unset."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SecretError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    if MASK in value and not _ENV_REF.search(value):
        raise SecretError(
            f"{where}: this run was given a literal secret, which coevo does not store; give it again "
            f"(--set {where}=...) or better from the environment (${{NAME}} or api_key_env)"
        )
    return _ENV_REF.sub(lookup, value)


def engine_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An engine's options as the engine gets them: `${NAME}` expanded, `api_key_env` resolved."""
    resolved: dict[str, Any] = {}
    for key, value in options.items():
        if key == "api_key_env":
            if not isinstance(value, str) or value not in os.environ:
                raise SecretError(f"{where}.api_key_env: environment variable {value} is not set")
            resolved["api_key"] = os.environ[value]
        else:
            resolved[key] = expand(value, f"{where}.{key}") if isinstance(value, str) else value
    return resolved


def mask(data: Any, key: str = "") -> Any:
    """A copy of config data (or any JSON-like value) with literal secrets masked."""
    if isinstance(data, Mapping):
        return {k: mask(v, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [mask(v, key) for v in data]
    if isinstance(data, str):
        if _SECRET_KEY.search(key) and not _ENV_REF.fullmatch(data.strip()):
            return MASK
        return mask_url(data)
    return data


def mask_url(text: str) -> str:
    """A URL with its password (if any, and not a `${NAME}`) replaced by `***`."""

    def hide(match: re.Match[str]) -> str:
        password = match.group("password")
        shown = password if _ENV_REF.fullmatch(password) else MASK
        return f"{match.group('head')}{shown}{match.group('tail')}"

    return _URL_PASSWORD.sub(hide, text)
