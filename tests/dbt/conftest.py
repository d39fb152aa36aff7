"""Real dbt builds (through seg.transform.dbt.build) on small fixture lakes in temporary data directories.

Each lake is built once per test session and shared by the tests that only read its warehouse: a dbt build
costs seconds, the queries milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb
import pytest

from seg.core import config
from seg.transform import dbt as seg_dbt
from tests.dbt import fixture_lake

EARLIER = "2025-03-09"


def _built(tmp_path_factory, name: str, sources: tuple[str, ...] | None, as_of: str = fixture_lake.AS_OF):
    root = tmp_path_factory.mktemp(name)
    fixture_lake.write_lake(root, sources)
    settings = config.load(root)
    core = seg_dbt.build(settings, as_of, exclude="tag:features")
    features = seg_dbt.build(settings, as_of, select="tag:features")
    return settings, {"core": core, "features": features}


@contextmanager
def _query(settings) -> Iterator[Callable]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        yield lambda sql, params=None: con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def full_lake(tmp_path_factory):
    """All six sources, built as of fixture_lake.AS_OF: (settings, build summaries)."""
    return _built(tmp_path_factory, "full_lake", None)


@pytest.fixture(scope="session")
def orders_only_lake(tmp_path_factory):
    """A deployment with only the orders source."""
    # the rates come along: the lake holds a USD order, which landing lets in only with its rate
    return _built(tmp_path_factory, "orders_only_lake", ("fx_rates", "orders"))


@pytest.fixture(scope="session")
def earlier_lake(tmp_path_factory):
    """All six sources, built as of 2025-03-09 (before most of the fixture's activity)."""
    return _built(tmp_path_factory, "earlier_lake", None, as_of=EARLIER)


@pytest.fixture
def full_query(full_lake):
    with _query(full_lake[0]) as query:
        yield query


@pytest.fixture
def orders_only_query(orders_only_lake):
    with _query(orders_only_lake[0]) as query:
        yield query


@pytest.fixture
def query_for():
    """Open a read-only query function on any built data directory."""
    return _query
