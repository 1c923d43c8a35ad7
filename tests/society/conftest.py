"""Fixtures of the society tests."""

from __future__ import annotations

import pytest

from tests.society.trainer_rows import Training, record_trainings


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[Training]:
    """Every training the society under test runs: its kind, settings, rows and output folder."""
    return record_trainings(monkeypatch)
