"""Secrets in a society config: what counts as one, where they come from, and why they are never
written down or printed. The one place that knows; everything that writes or prints config data or
an error message goes through it.

Keys and passwords come from the environment: any string in the config may hold `${NAME}`,
replaced by the environment variable NAME when the value is used (building an engine, opening the
memory), and an engine's `api_key_env: NAME` names the variable holding its API key. The config
itself keeps `${NAME}`, so the run's config snapshot, the database and the console never see the
value.

A literal secret still works for the run that was given it (from the config file or a `--set`),
but every copy coevo writes or prints is masked (`***`): the config snapshot, the `runs` table,
recorded resume overrides, `coevo check`'s summary, config errors and the messages of failed runs.
Resuming such a run asks for the secret again (an override, or better the environment). A literal
secret is:
- the value of a key named like a credential (`api_key`, `token`, `secret`, `password`,
  `credentials`, `authorization`, ... see `_SECRET_KEY`), and everything under such a key;
- in a URL's userinfo (`scheme://user:PASSWORD@host`), the password, always;
- a userinfo without a password (`scheme://TOKEN@host`) unless it is a plain user name: lowercase
  letters, digits, `_`, `.`, `-`, starting with a letter or `_`, at most 32 characters and at most
  4 digits (`postgres@host` stays readable; `ghp_x7Hq...@github.com` or a hex token does not).
Messages (errors, log records) are redacted twice over (`redact`): URL credentials by their
shape, and by value every literal secret of 8 characters or more that this process read from a
config (`remember`, called by the config's parser), and the environment value of each `${NAME}` or
`api_key_env` a config holds as a secret, so a server or driver quoting a key back in its error
message, or a traceback in the run's log, does not show it either. The values are kept in this
process's memory only: what prints a message (a log handler, a command's error) needs no config.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

MASK = "***"
_SECRET_KEY = re.compile(
    r"(api[_-]?key|token|secret|passw(or)?d|pwd|credentials?|authori[sz]ation|auth|private[_-]?key)$",
    re.IGNORECASE,
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A URL's userinfo: everything between `scheme://` and the authority's last `@` (a password may
# hold an unescaped `@`; the authority ends at the first `/`, `?`, `#` or space).
_URL_USERINFO = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@", re.IGNORECASE)
_USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_MAX_USER_NAME_DIGITS = 4
# Shorter literal secrets are masked where they stand (a key's value, a URL's password) but not
# searched for in free text, where a value such as vLLM's customary key `EMPTY` would mask words.
_MIN_REDACTED = 8
# The secrets this process has read from configs (`remember`), which `redact` masks by value.
_remembered: set[str] = set()


class SecretError(ValueError):
    """A secret the run needs but cannot get (an unset variable, a masked literal on resume)."""


def expand(value: str, where: str) -> str:
    """`${NAME}` → the environment variable NAME; SecretError naming `where` when it is unset."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SecretError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    if MASK in _ENV_REF.sub("", value):
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
    return _walk(data, bool(_SECRET_KEY.search(key)), set())


def mask_url(text: str) -> str:
    """`text` (a URL, or a message naming URLs) with the credentials in each URL masked."""
    return _mask_text(text, False, set())


def mask_override(override: str) -> str:
    """A `--set KEY=VALUE` as it may be written down or printed: its value masked as `mask` masks
    config data (the whole value under a credential's key, URL credentials anywhere)."""
    key, sep, raw = override.partition("=")
    if not sep:
        return mask_url(override)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    masked = mask(value, key.strip().rpartition(".")[2])
    # JSON is YAML: the masked value reads back as the same type, and `***` stays a string.
    return override if masked == value else f"{key}={json.dumps(masked)}"


def remember(data: Any) -> None:
    """Note the secrets of config data (its literals, and the environment values it names as
    secrets), so that `redact` masks them in any message this process prints or logs later."""
    found: set[str] = set()
    _walk(data, False, found)
    _remembered.update(value for value in found if len(value) >= _MIN_REDACTED)


def redact(text: str) -> str:
    """A message (an error's, a log record's) fit to print: URL credentials masked, and every
    remembered secret masked wherever it appears, in whatever form a library quoted it."""
    text = mask_url(text)
    for value in sorted(_remembered, key=len, reverse=True):  # a longer secret may hold a shorter one
        text = text.replace(value, MASK)
    return text


def _walk(data: Any, secret: bool, found: set[str]) -> Any:
    """`data` with its literal secrets masked (everything under a credential's key when `secret`);
    each secret value masked, and each environment value named as a secret, is added to `found`."""
    if isinstance(data, Mapping):
        masked = {}
        for key, value in data.items():
            if key == "api_key_env" and isinstance(value, str):
                _add_env(value, found)
            masked[key] = _walk(value, secret or bool(_SECRET_KEY.search(str(key))), found)
        return masked
    if isinstance(data, list | tuple):
        return [_walk(item, secret, found) for item in data]
    if isinstance(data, str):
        return _mask_text(data, secret, found)
    if secret and isinstance(data, int | float) and not isinstance(data, bool):
        found.add(str(data))  # `password: 12345` is YAML's number, and still a password
        return MASK
    return data


def _mask_text(text: str, secret: bool, found: set[str]) -> str:
    """A string of config data, or a message: all of it when `secret`, else its URLs' credentials."""
    if secret:
        return _hidden(text, found)

    def hide(match: re.Match[str]) -> str:
        user, colon, password = match.group("userinfo").partition(":")
        if colon:
            shown = f"{user}:{_hidden(password, found)}"
        elif _USER_NAME.fullmatch(user) and sum(c.isdigit() for c in user) <= _MAX_USER_NAME_DIGITS:
            shown = user
        else:
            shown = _hidden(user, found)
        return f"{match.group('head')}{shown}@"

    return _URL_USERINFO.sub(hide, text)


def _hidden(credential: str, found: set[str]) -> str:
    """A credential as written down: a `${NAME}` stays (its value is the secret), a literal is masked."""
    reference = _ENV_REF.fullmatch(credential.strip())
    if reference is not None:
        _add_env(reference.group(1), found)
        return credential
    found.add(credential)
    return MASK


def _add_env(name: str, found: set[str]) -> None:
    if os.environ.get(name):
        found.add(os.environ[name])
