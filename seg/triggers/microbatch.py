"""One micro-batch: land the current day's files, evaluate the triggers at `at`, write the membership tables.

Tables (DuckDB warehouse; `at` is the evaluation time, the run's data_interval_end):

* `marts.trigger_membership_history`  one row per trigger occurrence: entered_at, expires_at, exited_at +
  exit_reason (null while active), evidence (JSON), first_seen_at / exit_seen_at (the micro-batch that saw it).
  "Who was in cart_abandonment on D, and why": `where trigger = 'cart_abandonment' and entered_at < D + 1
  and coalesce(exited_at, expires_at) > D` (see README text in seg/triggers/__init__.py).
* `marts.trigger_memberships`         current memberships at `at`: one row per (member_key, trigger).
* `marts.trigger_membership_changes`  entered / exited / retracted per micro-batch (replaced per `at`).
* `marts.customer_active_segments`    view: the ML segment + the highest-priority active trigger segment.
* `triggers.runs`                     one row per micro-batch (summary with per-step seconds).
* `triggers.activity_by_day`          lapsing's cache: last activity / orders per identifier and closed ingest day.

Re-running the same `at` changes nothing: the evaluation reads only data up to `at`, rows are replaced by
occurrence id, first_seen_at / exit_seen_at keep the batch that saw them first, the changes of `at` are rebuilt.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import duckdb

from seg.config import Settings
from seg.triggers import definitions
from seg.triggers.evaluate import HISTORY, OCCURRENCE_COLUMNS, _has_table, evaluate, ts

log = logging.getLogger(__name__)

CURRENT = "marts.trigger_memberships"
CHANGES = "marts.trigger_membership_changes"
ACTIVE_VIEW = "marts.customer_active_segments"
RUNS = "triggers.runs"
CURRENT_COLUMNS = ("member_key, person_id, customer_id, anonymous_id, trigger, segment_name, priority, entered_at, "
                   "expires_at, occurrence_id, evidence")


def connect_with_retry(settings: Settings, cfg: definitions.TriggerConfig, read_only: bool = False):
    """The warehouse, waiting for another writer (the daily DAG) to release the DuckDB lock."""
    from seg.warehouse import configure

    deadline = time.monotonic() + cfg.lock_timeout_s
    settings.paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            return configure(duckdb.connect(str(settings.paths.warehouse), read_only=read_only), settings)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            log.info("warehouse is locked by another writer; waiting")
            time.sleep(2)


def land(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None) -> dict:
    """Land new or changed incoming files of the micro-batch sources dated on the evaluation day or the day
    before (late files of older days are the daily DAG's job); unchanged files are skipped by content hash."""
    from seg.contract import for_settings
    from seg.lake.landing import discover, land_file, read_manifests

    cfg = cfg or definitions.load()
    contract = for_settings(settings)  # the deployment's overlay, as the daily landing
    low = (at - dt.timedelta(days=1)).date().isoformat()
    out = {}
    for source in cfg.land_sources:
        known = {m["sha256"]: m["file"] for m in read_manifests(settings.paths, source) if m["status"] == "landed"}
        counts = {"files_landed": 0, "files_skipped": 0, "rows_landed": 0, "rows_quarantined": 0}
        for inc in discover(settings.paths, at.date(), [source], settings["landing"]["formats"]):
            if inc.day < low:
                continue
            entry = land_file(settings, inc, contract, known)
            if entry is None:
                counts["files_skipped"] += 1
                continue
            counts["files_landed"] += 1
            counts["rows_landed"] += entry.rows_landed
            counts["rows_quarantined"] += entry.rows_quarantined
            if entry.status == "landed":
                known.setdefault(entry.sha256, entry.file)
        out[source] = counts
    return out


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists marts")
    con.execute("create schema if not exists triggers")
    con.execute(f"create table if not exists {HISTORY} ({OCCURRENCE_COLUMNS}, first_seen_at timestamp, "
                "exit_seen_at timestamp, updated_at timestamp)")
    con.execute(f"create table if not exists {CHANGES} (evaluated_at timestamp, change varchar, trigger varchar, "
                "segment_name varchar, member_key varchar, person_id varchar, occurrence_id varchar, changed_at timestamp, "
                "exit_reason varchar)")
    con.execute(f"create table if not exists {RUNS} (evaluated_at timestamp, since timestamp, finished_at timestamp, "
                "seconds double, summary varchar)")


def _write(con: duckdb.DuckDBPyConnection, at: dt.datetime, zones: dict[str, dt.datetime]) -> None:
    """Merge temp table `occurrences` into the history, then rebuild current memberships and this batch's changes."""
    T = ts(at)
    con.execute(f"""
        create or replace temp table merged as
        select o.*,
               case when h.first_seen_at is not null and h.first_seen_at < {T} then h.first_seen_at else {T} end as first_seen_at,
               case when o.exited_at is null then null
                    when h.exited_at is not null and h.exit_seen_at < {T} then h.exit_seen_at else {T} end as exit_seen_at,
               {T} as updated_at,
               h.occurrence_id is null
                 or h.exited_at is distinct from o.exited_at or h.exit_reason is distinct from o.exit_reason
                 or h.expires_at is distinct from o.expires_at or h.evidence is distinct from o.evidence
                 or h.member_key is distinct from o.member_key as is_changed
        from (select distinct on (occurrence_id) * from occurrences order by occurrence_id, exited_at nulls first) o
        left join {HISTORY} h using (occurrence_id)
    """)
    con.execute("begin transaction")
    try:
        retracted_filter = " or ".join(f"(trigger = '{name}' and anchor_at >= {ts(zone)})" for name, zone in zones.items())
        con.execute(f"delete from {CHANGES} where evaluated_at = {T}")
        if retracted_filter:
            # occurrences of the authoritative zone that late data cancelled (e.g. an order that arrived late)
            con.execute(f"""
                insert into {CHANGES}
                select {T}, 'retracted', trigger, segment_name, member_key, person_id, occurrence_id, {T}, 'late_data'
                from {HISTORY} where ({retracted_filter}) and anchor_at <= {T}
                  and occurrence_id not in (select occurrence_id from merged)
            """)
            con.execute(f"delete from {HISTORY} where ({retracted_filter}) and anchor_at <= {T} "
                        "and occurrence_id not in (select occurrence_id from merged)")
        con.execute(f"delete from {HISTORY} where occurrence_id in (select occurrence_id from merged where is_changed)")
        con.execute(f"insert into {HISTORY} select * exclude (is_changed) from merged where is_changed")
        # memberships nobody re-evaluated (outside every zone) still expire
        con.execute(f"update {HISTORY} set exited_at = expires_at, exit_reason = 'expired', exit_seen_at = {T}, updated_at = {T} "
                    f"where exited_at is null and expires_at <= {T}")
        con.execute(f"""
            create or replace table {CURRENT} as
            select {CURRENT_COLUMNS}, {T} as evaluated_at from {HISTORY}
            where entered_at <= {T} and (exited_at is null or exited_at > {T}) and expires_at > {T}
            qualify row_number() over (partition by member_key, trigger order by entered_at desc, occurrence_id) = 1
            order by trigger, member_key
        """)
        con.execute(f"""
            insert into {CHANGES}
            select {T}, 'entered', trigger, segment_name, member_key, person_id, occurrence_id, entered_at, null
            from {HISTORY} where first_seen_at = {T}
            union all
            select {T}, 'exited', trigger, segment_name, member_key, person_id, occurrence_id, exited_at, exit_reason
            from {HISTORY} where exit_seen_at = {T}
        """)
        _create_active_view(con)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _create_active_view(con: duckdb.DuckDBPyConnection) -> None:
    ml = ("select person_id, customer_id, segment_id, segment_name from marts.customer_segments"
          if _has_table(con, "marts", "customer_segments") else
          "select null::varchar as person_id, null::varchar as customer_id, null::integer as segment_id, "
          "null::varchar as segment_name where false")
    con.execute(f"""
        create or replace view {ACTIVE_VIEW} as
        with ml as ({ml}),
        ranked as (
            select *, list(trigger order by priority, trigger) over (partition by member_key) as active_triggers
            from {CURRENT}
            qualify row_number() over (partition by member_key order by priority, entered_at desc, trigger) = 1
        )
        select coalesce(ml.person_id, t.person_id) as person_id,
               coalesce(t.member_key, ml.person_id) as member_key,
               coalesce(ml.customer_id, t.customer_id) as customer_id,
               ml.segment_id as ml_segment_id, ml.segment_name as ml_segment_name,
               t.trigger, t.segment_name as trigger_segment_name, t.priority as trigger_priority,
               t.expires_at as trigger_expires_at, t.active_triggers,
               coalesce(t.segment_name, ml.segment_name) as active_segment_name,
               case when t.trigger is not null then 'trigger' else 'model' end as active_segment_source
        from ml full outer join ranked t on t.person_id = ml.person_id
    """)


def run_tables(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
               since: dt.datetime | None = None) -> dict:
    """Evaluate at `at` and write the tables (no landing, no Redis). `since` widens the read range (backfills)."""
    cfg = cfg or definitions.load()
    start = time.monotonic()
    con = connect_with_retry(settings, cfg)
    try:
        _ensure_tables(con)
        info = evaluate(con, settings.paths, cfg, at, since)
        t_write = time.monotonic()
        _write(con, at, info["zones"])
        info["steps"]["write"] = round(time.monotonic() - t_write, 3)
        counts = dict(con.execute(f"select trigger, count(*) from {CURRENT} group by all order by all").fetchall())
        changes = {f"{c}:{t}": n for c, t, n in con.execute(
            f"select change, trigger, count(*) from {CHANGES} where evaluated_at = {ts(at)} group by all order by all").fetchall()}
        summary = {"evaluated_at": at.isoformat(), "since": info["since"].isoformat(), "active": counts,
                   "active_total": sum(counts.values()), "changes": changes, "steps": info["steps"]}
        seconds = round(time.monotonic() - start, 3)
        con.execute(f"delete from {RUNS} where evaluated_at = {ts(at)}")
        con.execute(f"insert into {RUNS} values ({ts(at)}, {ts(info['since'])}, now()::timestamp, ?, ?)",
                    [seconds, json.dumps(summary)])
        summary["seconds"] = seconds
        return summary
    finally:
        con.close()


def run(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None, publish: bool = True) -> dict:
    """The whole micro-batch without Airflow: land, evaluate + tables, Redis (when SEG_REDIS_URL is set)."""
    from seg.triggers.publish import publish_redis

    cfg = cfg or definitions.load()
    timings = {}
    t0 = time.monotonic()
    landed = land(settings, at, cfg)
    timings["land_s"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    summary = run_tables(settings, at, cfg)
    timings["evaluate_s"] = round(time.monotonic() - t0, 3)
    if publish and settings.redis_url:
        t0 = time.monotonic()
        summary["redis"] = publish_redis(settings, at, cfg)
        timings["redis_s"] = round(time.monotonic() - t0, 3)
    return {**summary, "landed": landed, "timings": timings}
