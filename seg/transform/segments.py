"""Publish the audited segment assignments to the marts analysts and downstream tools read.

Write-audit-publish for segments: the model writes `ml_stage.customer_assignments`, the `segments` gate audits
it, and only then this step swaps it into `marts.customer_segments` (current membership, one row per person)
and replaces that as-of date in `marts.customer_segment_history` and `marts.segment_profiles`, in one transaction. A failed gate never
reaches this step, so the previously published segments stay as they were.

Current state moves only forward: the published as-of date is the newest date of the history
(`published_as_of`). A rerun of an older date (a backfill, a repaired day) replaces that date's history and
profiles but leaves `marts.customer_segments` at the newer date. The history also says which model version was
live on a day (`model_live_on`, `model_live_before`): a rerun of an old date assigns with that model again.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from seg.core.config import Settings
from seg.core.warehouse import connect, table_exists

SEGMENT_COLUMNS = "person_id, customer_id, segment_id, segment_name, as_of_date, model_version"
# ml.assign writes the audited inputs (seg/core/catalog.py); this module is the one writer of the three marts.
ASSIGNMENTS = "ml_stage.customer_assignments"
PROFILES_STAGE = "ml_stage.segment_profiles"
PROFILES_MART = "marts.segment_profiles"
PROFILE_COLUMNS = "segment_id, segment_name, size, share, top_features, model_version, as_of_date"
PROFILES_DDL = (
    "segment_id integer, segment_name varchar, size bigint, share double, top_features varchar, "
    "model_version varchar, as_of_date date"
)


HISTORY = "marts.customer_segment_history"


def published_as_of(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    """The as-of date of the current segments: the newest date published (None before the first publication)."""
    if not table_exists(con, "marts", "customer_segment_history"):
        return None
    return con.execute(f"select max(as_of_date) from {HISTORY}").fetchone()[0]


def _version_on(con: duckdb.DuckDBPyConnection, where: str, order: str, day: dt.date) -> str | None:
    row = con.execute(f"select any_value(cast(model_version as varchar)) from {HISTORY} where as_of_date = "
                      f"(select {order}(as_of_date) from {HISTORY} where {where})", [day]).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def model_live_before(con: duckdb.DuckDBPyConnection, day: dt.date) -> str | None:
    """The model version of the last published date before `day` (the one a drift report of `day` compares
    with), None when nothing was published before it."""
    if not table_exists(con, "marts", "customer_segment_history"):
        return None
    return _version_on(con, "as_of_date < ?", "max", day)


def model_live_on(con: duckdb.DuckDBPyConnection, day: dt.date) -> str | None:
    """The model version published for `day`; else the one live then (of the last date before it); else, for
    a day before the first publication, the first model published. None before any publication."""
    if not table_exists(con, "marts", "customer_segment_history"):
        return None
    for where, order in (("as_of_date = ?", "max"), ("as_of_date < ?", "max"), ("as_of_date > ?", "min")):
        version = _version_on(con, where, order, day)
        if version is not None:
            return version
    return None


def run(settings: Settings, as_of_date: dt.date) -> dict:
    with connect(settings) as con:
        if not table_exists(con, "ml_stage", "customer_assignments"):
            raise RuntimeError("ml_stage.customer_assignments does not exist: the assign step has not run")
        dates = con.execute("select distinct as_of_date from ml_stage.customer_assignments").fetchall()
        if [d[0] for d in dates] != [as_of_date]:
            raise RuntimeError(f"ml_stage.customer_assignments holds as-of dates {dates}, expected only {as_of_date}")
        con.execute("create schema if not exists marts")
        current = published_as_of(con)
        moves = current is None or as_of_date >= current  # an older date never replaces the current segments
        con.execute("begin transaction")
        try:
            if moves:
                con.execute(f"create or replace table marts.customer_segments as select {SEGMENT_COLUMNS} "
                            f"from {ASSIGNMENTS} order by person_id")
            con.execute(f"create table if not exists {HISTORY} as select {SEGMENT_COLUMNS} from {ASSIGNMENTS} "
                        "where false")
            con.execute(f"delete from {HISTORY} where as_of_date = ?", [as_of_date])
            con.execute(f"insert into {HISTORY} select {SEGMENT_COLUMNS} from {ASSIGNMENTS} order by person_id")
            profiles = publish_profiles(con, as_of_date)  # marts.segment_profiles, same transaction
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        sizes = con.execute(
            f"select segment_id, segment_name, count(*) from {HISTORY} where as_of_date = ? group by all "
            "order by segment_id", [as_of_date]).fetchall()
    return {
        "as_of_date": as_of_date.isoformat(),
        "current": as_of_date.isoformat() if moves else
        f"kept at {current} (a newer date; {as_of_date} replaced its history only)",
        "customers": sum(n for *_, n in sizes),
        "segment_profiles": profiles,
        "segments": [{"segment_id": s, "segment_name": name, "customers": n} for s, name, n in sizes],
    }


def publish_profiles(con: duckdb.DuckDBPyConnection, as_of_date: dt.date) -> int:
    """Copy ml_stage.segment_profiles into marts.segment_profiles, replacing that as-of date's rows.

    Runs no transaction of its own (`run` calls it inside its one). Returns the number of rows published.
    """
    dates = con.execute(f"select distinct as_of_date from {PROFILES_STAGE}").fetchall()
    if [d[0] for d in dates] != [as_of_date]:
        raise RuntimeError(f"{PROFILES_STAGE} holds as-of dates {dates}, expected only {as_of_date}")
    con.execute("create schema if not exists marts")
    con.execute(f"create table if not exists {PROFILES_MART} ({PROFILES_DDL})")
    con.execute(f"delete from {PROFILES_MART} where as_of_date = ?", [as_of_date])
    con.execute(f"insert into {PROFILES_MART} select {PROFILE_COLUMNS} from {PROFILES_STAGE} order by segment_id")
    return int(con.execute(f"select count(*) from {PROFILES_MART} where as_of_date = ?", [as_of_date]).fetchone()[0])
