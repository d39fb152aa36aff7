"""Fixtures for the trigger tests: a small generated lake with the identity graph built, hand-written events,
and a Redis database of the real local server with a key prefix per test (cleaned up afterwards)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import uuid
from pathlib import Path

import duckdb
import pytest

from seg.core import config
from seg.triggers import definitions

END = dt.date(2026, 11, 4)
CUSTOMERS = 1500
DAYS = 28
REDIS_URL = "redis://127.0.0.1:6379/12"  # DB 12: the trigger tests' own database; keys under a per-test prefix


@pytest.fixture(scope="session")
def trigger_lake(tmp_path_factory) -> config.Settings:
    """Generated lake (landed) + the identity graph the triggers read (marts.identities: dbt run without the audit
    var builds the marts layer straight into marts) and dbt's sessions (int_events_sessionized); copy before
    writing."""
    from seg.generate import run as generate
    from seg.lake.landing import land_all
    from seg.transform import dbt

    settings = config.load(tmp_path_factory.mktemp("trigger_lake"))
    generate(settings.paths, customers=CUSTOMERS, days=DAYS, end=END, seed=5)
    land_all(settings, END)
    dbt.invoke(settings, ["run", "--select", "+identities", "+int_events_sessionized"], END.isoformat())
    return settings


def copy_lake(source: config.Settings, target: Path) -> config.Settings:
    shutil.copytree(source.paths.root, target, ignore=shutil.ignore_patterns("airflow", "dbt", "tmp", "*.wal"))
    return config.load(target)


@pytest.fixture
def lake_copy(trigger_lake, tmp_path) -> config.Settings:
    return copy_lake(trigger_lake, tmp_path / "data")


@pytest.fixture
def redis_prefix():
    import redis

    prefix = f"test:triggers:{uuid.uuid4().hex[:10]}"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i:i + 5000])


@pytest.fixture
def cfg(redis_prefix) -> definitions.TriggerConfig:
    return dataclasses.replace(definitions.load(), redis_prefix=redis_prefix)


def query(settings: config.Settings, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def write_incoming(settings: config.Settings, source: str, day: str, name: str, sql: str) -> None:
    """Write an incoming Parquet file from a DuckDB SELECT (columns named as in the contract)."""
    target = settings.paths.incoming / source / day / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"copy ({sql}) to '{target}' (format parquet)")
    finally:
        con.close()
