"""Memory fixtures: a fresh database URL per test, on SQLite and on a throwaway PostgreSQL server
(tests/conftest.py's `postgres_database`, skipped with the reason where there is none)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coevo.memory.store import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coevo.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    yield store
    store.close()
