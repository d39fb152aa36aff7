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
def lake(generator_settings):
    """Every source landed for DAY, orders also for the day before; the rows have the generator's shapes, so the
    data directory is the generator's deployment (its overlay adds the identifier formats the gates check)."""
    write_lake(generator_settings)
    return generator_settings
