"""Publish the audited segment assignments to the marts analysts and downstream tools read.

Write-audit-publish for segments, per segmentation ("lens"): the model writes the lens's rows of
`ml_stage.customer_assignments`, the lens's `segments` gate audits them, and only then this step swaps them into
`marts.customer_segments` (current membership, one row per person and lens) and replaces that lens and as-of date
in `marts.customer_segment_history` and `marts.segment_profiles`, in one transaction. A failed gate never reaches
this step, so the previously published segments of that lens stay as they were; the other lenses' rows are never
touched.

Current state moves only forward, per lens: the published as-of date is the newest date of the lens's history
(`published_as_of`). A rerun of an older date (a backfill, a repaired day) replaces that date's history and
profiles but leaves `marts.customer_segments` at the newer date. The history also says which model version was
live on a day (`model_live_on`, `model_live_before`): a rerun of an old date assigns with that model again.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from seg.core.config import Settings
from seg.core.warehouse import add_segmentation_column, column_exists, connect, table_exists

SEGMENT_COLUMNS = "segmentation, person_id, customer_id, segment_id, segment_name, as_of_date, model_version"
# ml.assign writes the audited inputs (seg/core/catalog.py); this module is the one writer of the three marts.
ASSIGNMENTS = "ml_stage.customer_assignments"
PROFILES_STAGE = "ml_stage.segment_profiles"
PROFILES_MART = "marts.segment_profiles"
PROFILE_COLUMNS = "segmentation, segment_id, segment_name, size, share, top_features, model_version, as_of_date"
PROFILES_DDL = (
    "segmentation varchar, segment_id integer, segment_name varchar, size bigint, share double, "
    "top_features varchar, model_version varchar, as_of_date date"
)

CURRENT = "marts.customer_segments"
HISTORY = "marts.customer_segment_history"


def published_as_of(con: duckdb.DuckDBPyConnection, lens: str) -> dt.date | None:
    """The as-of date of lens `lens`'s current segments: the newest date it published (None before its first
    publication)."""
    if not _lensed_history(con):
        return None
    return con.execute(f"select max(as_of_date) from {HISTORY} where segmentation = ?", [lens]).fetchone()[0]


def _lensed_history(con: duckdb.DuckDBPyConnection) -> bool:
    """The history exists with its `segmentation` column (a history from before lenses is migrated by `run`;
    until then it is read as nothing published, so a first lensed run of an old warehouse starts afresh)."""
    return column_exists(con, "marts", "customer_segment_history", "segmentation")


def _version_on(con: duckdb.DuckDBPyConnection, lens: str, where: str, order: str, day: dt.date) -> str | None:
    row = con.execute(f"select any_value(cast(model_version as varchar)) from {HISTORY} where segmentation = ? "
                      f"and as_of_date = (select {order}(as_of_date) from {HISTORY} where segmentation = ? "
                      f"and {where})", [lens, lens, day]).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def model_live_before(con: duckdb.DuckDBPyConnection, day: dt.date, lens: str) -> str | None:
    """The lens's model version of the last date it published before `day` (the one a drift report of `day`
    compares with), None when nothing was published before it."""
    if not _lensed_history(con):
        return None
    return _version_on(con, lens, "as_of_date < ?", "max", day)


def model_live_on(con: duckdb.DuckDBPyConnection, day: dt.date, lens: str) -> str | None:
    """The lens's model version published for `day`; else the one live then (of the last date before it); else,
    for a day before the first publication, the first model published. None before any publication."""
    if not _lensed_history(con):
        return None
    for where, order in (("as_of_date = ?", "max"), ("as_of_date < ?", "max"), ("as_of_date > ?", "min")):
        version = _version_on(con, lens, where, order, day)
        if version is not None:
            return version
    return None


def run(settings: Settings, as_of_date: dt.date) -> dict:
    """Publish lens settings.lens's audited assignments and profiles of `as_of_date`."""
    lens = settings.lens
    with connect(settings) as con:
        if not table_exists(con, "ml_stage", "customer_assignments"):
            raise RuntimeError("ml_stage.customer_assignments does not exist: the assign step has not run")
        dates = con.execute("select distinct as_of_date from ml_stage.customer_assignments where segmentation = ?",
                            [lens]).fetchall()
        if [d[0] for d in dates] != [as_of_date]:
            raise RuntimeError(f"ml_stage.customer_assignments holds as-of dates {dates} for lens {lens}, "
                               f"expected only {as_of_date}")
        con.execute("create schema if not exists marts")
        for relation in (CURRENT, HISTORY, PROFILES_MART):  # tables of a warehouse from before lenses
            add_segmentation_column(con, relation, settings.lenses[0])
        current = published_as_of(con, lens)
        moves = current is None or as_of_date >= current  # an older date never replaces the current segments
        rows = f"select {SEGMENT_COLUMNS} from {ASSIGNMENTS} where segmentation = ? order by person_id"
        con.execute("begin transaction")
        try:
            for relation in (CURRENT, HISTORY):
                con.execute(f"create table if not exists {relation} as select {SEGMENT_COLUMNS} from {ASSIGNMENTS} "
                            "where false")
            if moves:
                con.execute(f"delete from {CURRENT} where segmentation = ?", [lens])
                con.execute(f"insert into {CURRENT} by name {rows}", [lens])
            con.execute(f"delete from {HISTORY} where segmentation = ? and as_of_date = ?", [lens, as_of_date])
            con.execute(f"insert into {HISTORY} by name {rows}", [lens])
            profiles = publish_profiles(con, as_of_date, lens)  # marts.segment_profiles, same transaction
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        sizes = con.execute(
            f"select segment_id, segment_name, count(*) from {HISTORY} where segmentation = ? and as_of_date = ? "
            "group by all order by segment_id", [lens, as_of_date]).fetchall()
    return {
        "segmentation": lens,
        "as_of_date": as_of_date.isoformat(),
        "current": as_of_date.isoformat() if moves else
        f"kept at {current} (a newer date; {as_of_date} replaced its history only)",
        "customers": sum(n for *_, n in sizes),
        "segment_profiles": profiles,
        "segments": [{"segment_id": s, "segment_name": name, "customers": n} for s, name, n in sizes],
    }


def publish_profiles(con: duckdb.DuckDBPyConnection, as_of_date: dt.date, lens: str) -> int:
    """Copy lens `lens`'s rows of ml_stage.segment_profiles into marts.segment_profiles, replacing that lens's
    as-of date.

    Runs no transaction of its own (`run` calls it inside its one). Returns the number of rows published.
    """
    dates = con.execute(f"select distinct as_of_date from {PROFILES_STAGE} where segmentation = ?", [lens]).fetchall()
    if [d[0] for d in dates] != [as_of_date]:
        raise RuntimeError(f"{PROFILES_STAGE} holds as-of dates {dates} for lens {lens}, expected only {as_of_date}")
    con.execute("create schema if not exists marts")
    con.execute(f"create table if not exists {PROFILES_MART} ({PROFILES_DDL})")
    con.execute(f"delete from {PROFILES_MART} where segmentation = ? and as_of_date = ?", [lens, as_of_date])
    con.execute(f"insert into {PROFILES_MART} by name select {PROFILE_COLUMNS} from {PROFILES_STAGE} "
                "where segmentation = ? order by segment_id", [lens])
    return int(con.execute(f"select count(*) from {PROFILES_MART} where segmentation = ? and as_of_date = ?",
                           [lens, as_of_date]).fetchone()[0])
