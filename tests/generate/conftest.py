"""Small generated data sets shared by the generator tests (each is generated once per test session)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from seg.core.config import Paths
from seg.generate import run

END = dt.date(2025, 3, 10)
SMALL = {"customers": 2000, "days": 10, "end": END, "seed": 11}
START = END - dt.timedelta(days=SMALL["days"] - 1)
# one fault of every kind, on different files
FAULTS = [
    f"orders:duplicate_file:{START + dt.timedelta(days=1)}",
    f"events:truncated_file:{START + dt.timedelta(days=2)}",
    f"orders:missing_column:{START + dt.timedelta(days=3)}",
    f"events:unknown_event_type:{START + dt.timedelta(days=4)}",
    f"events:null_ids:{START + dt.timedelta(days=5)}",
    f"order_items:negative_amounts:{START + dt.timedelta(days=6)}",
    f"store_visits:future_timestamps:{START + dt.timedelta(days=7)}",
    f"orders:wrong_units:{START + dt.timedelta(days=8)}",
    f"events:volume_drop:{START + dt.timedelta(days=9)}",
    f"store_visits:wrong_units:{START + dt.timedelta(days=2)}",
    f"crm_customers:null_ids:{START}",
]


@dataclass
class Generated:
    paths: Paths
    summary: dict
    args: dict

    def files(self, source: str) -> list[Path]:
        """The day files of a source (not the _copy files of duplicate_file)."""
        return sorted(p for p in (self.paths.incoming / source).glob("*/*.parquet") if not p.stem.endswith("_copy"))

    def glob(self, source: str) -> str:
        return f"{self.paths.incoming.as_posix()}/{source}/*/{source}_????-??-??.parquet"

    def truth(self, name: str) -> str:
        return (self.paths.truth / name).as_posix()

    def sql(self, query: str):
        con = duckdb.connect()
        try:
            con.execute("set threads = 1")
            return con.execute(query).fetchall()
        finally:
            con.close()

    def df(self, query: str):
        con = duckdb.connect()
        try:
            con.execute("set threads = 1")
            return con.execute(query).df()
        finally:
            con.close()


def hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _generate(tmp_path_factory, name: str, **kwargs) -> Generated:
    root = tmp_path_factory.mktemp(name)
    paths = Paths(root)
    summary = run(paths, **kwargs)
    return Generated(paths, summary, kwargs)


@pytest.fixture(scope="session")
def small(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "small", **SMALL)


@pytest.fixture(scope="session")
def small_again(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "small_again", **SMALL)


@pytest.fixture(scope="session")
def small_other_seed(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "small_seed", **{**SMALL, "seed": 12})


@pytest.fixture(scope="session")
def faulty(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "faulty", **SMALL, faults=FAULTS)


DRIFT = {"customers": 2000, "days": 20, "end": END, "seed": 5}
DRIFT_FROM = END - dt.timedelta(days=9)


@pytest.fixture(scope="session")
def no_drift(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "no_drift", **DRIFT)


@pytest.fixture(scope="session")
def drifted(tmp_path_factory) -> Generated:
    return _generate(tmp_path_factory, "drifted", **DRIFT, drift_from=DRIFT_FROM)


@pytest.fixture(scope="session")
def window60(tmp_path_factory) -> Generated:
    """60 days: long enough for lapsing customers and the persona separability check."""
    return _generate(tmp_path_factory, "window60", customers=4000, days=60, end=END, seed=3)
