"""Fixtures of the gate tests; `settings` (tests/conftest.py) gives every test its own data directory."""

from __future__ import annotations

import pytest

from expectations import duckdb_compat

from ._lakes import write_lake


@pytest.fixture(autouse=True)
def _duckdb_compat_installed():
    duckdb_compat.install()
    yield
    duckdb_compat.install()


@pytest.fixture
def lake(settings):
    """Every source landed for DAY, orders also for the day before."""
    write_lake(settings)
    return settings
