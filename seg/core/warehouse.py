"""DuckDB connections to the warehouse file, with the limits from settings.

DuckDB allows one writer per file: every stage opens a connection, does its work and closes it, and the DAG
runs writing tasks one at a time (max_active_runs=1, a one-slot pool).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from seg.core.config import Settings

DISABLED_OPTIMIZERS = "window_self_join"


def configure(con: duckdb.DuckDBPyConnection, settings: Settings, in_memory: bool = False) -> duckdb.DuckDBPyConnection:
    con.execute(f"SET memory_limit = '{settings.warehouse.memory_limit}'")
    con.execute(f"SET threads = {settings.warehouse.threads}")
    if in_memory:
        # file databases spill next to themselves (<file>.tmp); an in-memory one would spill into the cwd
        spill = settings.paths.root / "tmp" / "duckdb"
        spill.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{spill}'")
    # DuckDB 2.0.1 returns wrong counts for `count(*) over (partition by ...)` on hive-partitioned Parquet filtered
    # on the partition column when this optimizer rewrites the window as a self join (repro in
    # tests/test_warehouse.py); row_number() is unaffected. Off everywhere we query the lake.
    con.execute(f"SET disabled_optimizers = '{DISABLED_OPTIMIZERS}'")
    return con


@contextmanager
def connect(settings: Settings, read_only: bool = False, database: Path | str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (or an in-memory database with database=':memory:') with the configured limits, waiting
    up to warehouse.lock_timeout_s while another process holds the file."""
    target = database if database is not None else settings.paths.warehouse
    if target == ":memory:":
        con = duckdb.connect(":memory:")
    else:
        if read_only and not Path(target).exists():
            raise FileNotFoundError(f"warehouse {target} does not exist yet: run the pipeline first")
        con = _open_waiting(Path(target), read_only, settings.warehouse.lock_timeout_s)
    try:
        yield configure(con, settings, in_memory=target == ":memory:")
    finally:
        con.close()


class WarehouseLocked(RuntimeError):
    """Another process held the warehouse file longer than the configured wait."""


def _open_waiting(path: Path, read_only: bool, timeout_s: float, poll_s: float = 1.0) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLocked(
                    f"warehouse {path} is held by another process (DuckDB allows one writer) for more than "
                    f"{timeout_s:g} s (warehouse.lock_timeout_s): {str(exc).splitlines()[0]}") from exc
            logging.getLogger(__name__).info("warehouse %s is locked by another process; waiting", path)
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def connect_waiting(settings: Settings, read_only: bool = False, timeout_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """The warehouse, configured as connect() does, waiting up to `timeout_s` (default warehouse.lock_timeout_s)
    while another process holds the DuckDB lock. The caller closes the connection."""
    timeout = settings.warehouse.lock_timeout_s if timeout_s is None else timeout_s
    con = _open_waiting(settings.paths.warehouse, read_only, timeout)
    try:
        return configure(con, settings)
    except BaseException:
        con.close()
        raise


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def column_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.columns where table_schema = ? and table_name = ? and column_name = ?",
        [schema, table, column],
    ).fetchone()
    return bool(row and row[0])


def sql_str(value: object) -> str:
    """`value` as a DuckDB string literal (quotes doubled), for the places SQL is composed, not parameterised:
    file paths in read_* / COPY, reason texts and patterns spliced into generated checks."""
    return "'" + str(value).replace("'", "''") + "'"


SEGMENTATION = "segmentation"


def add_segmentation_column(con: duckdb.DuckDBPyConnection, relation: str, lens: str) -> None:
    """A table written before segmentations had lenses (issue #15) gets the `segmentation` column, its rows the
    deployment's first lens (the one segmentation they were); writers then insert by name."""
    schema, table = relation.split(".")
    if table_exists(con, schema, table) and not column_exists(con, schema, table, SEGMENTATION):
        con.execute(f"alter table {relation} add column {SEGMENTATION} varchar default {sql_str(lens)}")
