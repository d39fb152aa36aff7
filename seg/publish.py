"""Publish the audited segment assignments to the marts analysts and downstream tools read.

Write-audit-publish for segments: the model writes `ml_stage.customer_assignments`, the `segments` gate audits
it, and only then this step swaps it into `marts.customer_segments` (current membership, one row per person)
and replaces that as-of date in `marts.customer_segment_history` and `marts.segment_profiles`, in one transaction. A failed gate never
reaches this step, so the previously published segments stay as they were.
"""

from __future__ import annotations

import datetime as dt

from ml.assign import publish_profiles
from seg.config import Settings
from seg.warehouse import connect, table_exists

SEGMENT_COLUMNS = "person_id, customer_id, segment_id, segment_name, as_of_date, model_version"


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
