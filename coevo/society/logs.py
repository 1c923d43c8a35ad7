"""The run's log: what coevo's packages log (every `coevo.*` logger) during a run is appended to
`coevo.log` in the run folder, with time, level and logger, so that a failed or strange run can be
read afterwards whatever the terminal showed. Without the UI the same records also go to stderr
(the command line's handler, `terminal_handler`: one line per record, a traceback only in the
file); under the UI the app owns the terminal, and the records go to the file only
(`quiet_terminal`).

Log records are redacted as everywhere else (coevo.society.secrets.redact): URL credentials, and
the secrets of the config by value (a traceback quoting a key a server echoed).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from coevo.society.secrets import redact

LOG_NAME = "coevo.log"
PACKAGE = "coevo"


class _Masking(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Brief(logging.Formatter):
    """One line per record: an exception is named, its traceback left to the run's log."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            text = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        if saved[0] is not None and saved[0][1] is not None:
            text += f" ({type(saved[0][1]).__name__}: {saved[0][1]})"
        return redact(text)


def terminal_handler() -> logging.Handler:
    """The command line's stderr handler (`logging.basicConfig(handlers=[...])`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_Brief("%(levelname)s %(name)s: %(message)s"))
    return handler


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[Path]:
    """Append coevo's log records to RUN_DIR/coevo.log (INFO and up) while the block runs."""
    path = run_dir / LOG_NAME
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(_Masking("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(PACKAGE)
    level = logger.level
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(level)


@contextlib.contextmanager
def quiet_terminal() -> Iterator[None]:
    """coevo's records reach only the run's log (not the terminal's handlers) while the block runs."""
    logger = logging.getLogger(PACKAGE)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.propagate = propagate
