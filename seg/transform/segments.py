"""Publish the audited segment assignments to the marts analysts and downstream tools read.

Write-audit-publish for segments: the model writes `ml_stage.customer_assignments`, the `segments` gate audits
it, and only then this step swaps it into `marts.customer_segments` (current membership, one row per person)
and replaces that as-of date in `marts.customer_segment_history` and `marts.segment_profiles`, in one transaction. A failed gate never
reaches this step, so the previously published segments stay as they were.
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


def run(settings: Settings, as_of_date: dt.date) -> dict:
    with connect(settings) as con:
        if not table_exists(con, "ml_stage", "customer_assignments"):
            raise RuntimeError("ml_stage.customer_assignments does not exist: the assign step has not run")
        dates = con.execute("select distinct as_of_date from ml_stage.customer_assignments").fetchall()
        if [d[0] for d in dates] != [as_of_date]:
            raise RuntimeError(f"ml_stage.customer_assignments holds as-of dates {dates}, expected only {as_of_date}")
        con.execute("create schema if not exists marts")
        con.execute("begin transaction")
        try:
            con.execute(f"create or replace table marts.customer_segments as select {SEGMENT_COLUMNS} "
                        "from ml_stage.customer_assignments order by person_id")
            con.execute(f"create table if not exists marts.customer_segment_history as select {SEGMENT_COLUMNS} "
                        "from marts.customer_segments where false")
            con.execute("delete from marts.customer_segment_history where as_of_date = ?", [as_of_date])
            con.execute(f"insert into marts.customer_segment_history select {SEGMENT_COLUMNS} from marts.customer_segments")
            profiles = publish_profiles(con, as_of_date)  # marts.segment_profiles, same transaction
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        sizes = con.execute(
            "select segment_id, segment_name, count(*) from marts.customer_segments group by all order by segment_id"
        ).fetchall()
    return {
        "as_of_date": as_of_date.isoformat(),
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
