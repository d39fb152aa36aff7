"""The trigger tables: their names and layouts, and every statement that writes them (seg/core/catalog.py names
this module as their one writer; seg.triggers.sql and seg.triggers.redis only read them).

Tables (DuckDB warehouse; `at` is the evaluation time, the run's data_interval_end):

* `marts.trigger_membership_history`  one row per trigger occurrence: entered_at, expires_at, exited_at +
  exit_reason (null while active), evidence (JSON), first_seen_at / exit_seen_at (the micro-batch that saw it).
  "Who was in cart_abandonment on D, and why": `where trigger = 'cart_abandonment' and entered_at < D + 1
  and coalesce(exited_at, expires_at) > D` (see seg/triggers/__init__.py).
* `marts.trigger_memberships`         current memberships at `at`: one row per (member_key, trigger).
* `marts.trigger_membership_changes`  entered / exited / retracted per micro-batch (replaced per `at`).
* `marts.customer_active_segments`    view: each lens's ML segment (`<lens>_segment_id` / `_name`) + the
  highest-priority active trigger segment; the active segment is the trigger's, else the first lens's.
* `triggers.runs`                     one row per micro-batch (summary with per-step seconds).
* `triggers.activity_by_day`          lapsing's cache: last activity / orders per identifier and closed ingest day
  (`triggers.activity_by_day_partitions`: the signature of every ingest partition it holds).

No table here holds an email or phone: a guest the identity graph does not know yet is keyed by the HMAC of the
normalised email with the deployment's key ('email_hmac:<hex>', the key marts.identities gives that email), and
the cache keeps only that HMAC (`pii_hmac` below; rekey_clear_emails re-keys rows of earlier versions).

Re-running the same `at` changes nothing: the evaluation reads only data up to `at`, rows are replaced by
occurrence id, first_seen_at / exit_seen_at keep the batch that saw them first, the changes of `at` are rebuilt.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from seg.core.config import pii_key
from seg.core.paths import Paths
from seg.core.warehouse import column_exists, sql_str, table_exists

HISTORY = "marts.trigger_membership_history"
CURRENT = "marts.trigger_memberships"
CHANGES = "marts.trigger_membership_changes"
ACTIVE_VIEW = "marts.customer_active_segments"
RUNS = "triggers.runs"
ACTIVITY_CACHE = "triggers.activity_by_day"
ACTIVITY_CACHE_PARTITIONS = "triggers.activity_by_day_partitions"
ML_SEGMENTS = "marts.customer_segments"  # read only (seg.transform.segments writes it)

# one trigger occurrence: the rows seg.triggers.sql.evaluate produces, the first columns of the history
OCCURRENCE_COLUMNS = (
    "occurrence_id varchar, trigger varchar, segment_name varchar, priority integer, member_key varchar, "
    "person_id varchar, customer_id varchar, anonymous_id varchar, anchor_at timestamp, entered_at timestamp, "
    "expires_at timestamp, exited_at timestamp, exit_reason varchar, evidence varchar"
)
CURRENT_COLUMNS = ("member_key, person_id, customer_id, anonymous_id, trigger, segment_name, priority, entered_at, "
                   "expires_at, occurrence_id, evidence")


def ts(value: dt.datetime) -> str:
    """A timestamp literal (the trigger SQL splices evaluation times in, microseconds kept)."""
    return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def occurrence_id(trigger: str) -> str:
    """SQL: an occurrence's id from the SQL text `trigger` (a literal or a column), member_key and anchor_at."""
    return f"md5({trigger} || '|' || member_key || '|' || cast(anchor_at as varchar))"


# --- personal identifiers ----------------------------------------------------------------------------------------

# An email is keyed as marts.identities publishes it: type 'email_hmac', the HMAC-SHA256 of the normalised address.
EMAIL_TYPE = "email_hmac"
# the DuckDB variable holding the key on a connection (set by use_pii_key; dbt's profile plugin sets the same one)
PII_KEY_VARIABLE = "seg_pii_key"


def use_pii_key(con: duckdb.DuckDBPyConnection, paths: Paths) -> None:
    """Give the connection the deployment's key (seg.core.config.pii_key), bound as a parameter: no SQL text,
    and so no error message or log, ever holds it."""
    con.execute(f"set variable {PII_KEY_VARIABLE} = ?", [pii_key(paths.root)])


def pii_hmac(column: str) -> str:
    """SQL: the hex HMAC-SHA256 of a text expression with the connection's key (use_pii_key), the same function as
    dbt's macro pii_hash (dbt_project/macros/normalise.sql, which says how HMAC is built from DuckDB's sha256);
    fails when the key is not set rather than hashing to null."""
    key = (f"encode(if(getvariable('{PII_KEY_VARIABLE}') is null, "
           f"error('DuckDB variable {PII_KEY_VARIABLE} is not set: no key to hash personal identifiers with'), "
           f"cast(getvariable('{PII_KEY_VARIABLE}') as varchar)))")
    block = f"unhex(rpad(hex(case when octet_length({key}) > 64 then unhex(sha256({key})) else {key} end), 128, '0'))"

    def key_xor(pad_byte: str) -> str:
        return f"xor({block}::bit, unhex(repeat('{pad_byte}', 64))::bit)::blob"

    return f"sha256({key_xor('5c')} || unhex(sha256({key_xor('36')} || encode({column}))))"


def rekey_clear_emails(con: duckdb.DuckDBPyConnection) -> int:
    """Earlier versions keyed a guest by the normalised email in clear ('email:<address>'): re-key such rows of the
    history and the changes as an evaluation keys them now (member key 'email_hmac:<hmac>', the occurrence id that
    follows from it, win-back evidence pointing at the old id). The current memberships are rebuilt from the history
    by the next write. Returns the rows re-keyed (0 once done); the connection needs the key (use_pii_key)."""
    present = [t for t in (HISTORY, CHANGES) if table_exists(con, *t.split("."))]
    if not present or not sum(con.execute(f"select count(*) from {t} where member_key like 'email:%'").fetchone()[0]
                              for t in present):
        return 0
    new_key = f"'{EMAIL_TYPE}:' || {pii_hmac('substr(member_key, 7)')}"
    n = 0
    con.execute("begin transaction")
    try:
        con.execute("create or replace temp table rekeyed (old_id varchar, new_id varchar)")
        if HISTORY in present:
            con.execute(f"""
                insert into rekeyed
                select occurrence_id, {occurrence_id('trigger')}
                from (select occurrence_id, trigger, anchor_at, {new_key} as member_key
                      from {HISTORY} where member_key like 'email:%')
            """)
            con.execute(f"update {HISTORY} h set occurrence_id = r.new_id from rekeyed r where h.occurrence_id = r.old_id")
            con.execute(f"update {HISTORY} h set evidence = replace(h.evidence, r.old_id, r.new_id) from rekeyed r "
                        "where h.trigger = 'win_back' and strpos(h.evidence, r.old_id) > 0")
        if CHANGES in present:
            con.execute(f"update {CHANGES} c set occurrence_id = r.new_id from rekeyed r where c.occurrence_id = r.old_id")
        for table in present:
            n += con.execute(f"update {table} set member_key = {new_key} where member_key like 'email:%'").fetchone()[0]
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return n


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """The schemas and the tables a micro-batch appends to (the current table and the view are replaced whole)."""
    con.execute("create schema if not exists marts")
    con.execute("create schema if not exists triggers")
    con.execute(f"create table if not exists {HISTORY} ({OCCURRENCE_COLUMNS}, first_seen_at timestamp, "
                "exit_seen_at timestamp, updated_at timestamp)")
    con.execute(f"create table if not exists {CHANGES} (evaluated_at timestamp, change varchar, trigger varchar, "
                "segment_name varchar, member_key varchar, person_id varchar, occurrence_id varchar, changed_at timestamp, "
                "exit_reason varchar)")
    con.execute(f"create table if not exists {RUNS} (evaluated_at timestamp, since timestamp, finished_at timestamp, "
                "seconds double, summary varchar)")


def write(con: duckdb.DuckDBPyConnection, at: dt.datetime, zones: dict[str, dt.datetime],
          lenses: tuple[str, ...]) -> None:
    """Merge temp table `occurrences` into the history, then rebuild current memberships and this batch's changes
    (one transaction). `zones`: per event trigger, the start of its authoritative zone (seg.triggers.sql.evaluate):
    a stored occurrence there that the evaluation no longer produces was cancelled by late data (retracted)."""
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
        _create_active_view(con, lenses)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _create_active_view(con: duckdb.DuckDBPyConnection, lenses: tuple[str, ...]) -> None:
    """One row per person: a segment column pair per lens (so a person is one row whatever the lens count)."""
    schema, table = ML_SEGMENTS.split(".")
    per_lens = ", ".join(
        f"max(segment_id) filter (where segmentation = {sql_str(lens)}) as {lens}_segment_id, "
        f"max(segment_name) filter (where segmentation = {sql_str(lens)}) as {lens}_segment_name"
        for lens in lenses)
    if table_exists(con, schema, table):
        lensed = column_exists(con, schema, table, "segmentation")
        lens_column = "segmentation" if lensed else f"{sql_str(lenses[0])} as segmentation"  # written before lenses
        source = f"select person_id, customer_id, segment_id, segment_name, {lens_column} from {ML_SEGMENTS}"
    else:
        source = ("select null::varchar as person_id, null::varchar as customer_id, null::integer as segment_id, "
                  "null::varchar as segment_name, null::varchar as segmentation where false")
    ml = f"select person_id, any_value(customer_id) as customer_id, {per_lens} from ({source}) group by person_id"
    lens_columns = ", ".join(f"ml.{lens}_segment_id, ml.{lens}_segment_name" for lens in lenses)
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
               {lens_columns},
               t.trigger, t.segment_name as trigger_segment_name, t.priority as trigger_priority,
               t.expires_at as trigger_expires_at, t.active_triggers,
               coalesce(t.segment_name, ml.{lenses[0]}_segment_name) as active_segment_name,
               case when t.trigger is not null then 'trigger' else 'model' end as active_segment_source
        from ml full outer join ranked t on t.person_id = ml.person_id
    """)


def last_evaluated_at(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """The latest evaluation time recorded in triggers.runs (None before the first)."""
    return con.execute(f"select max(evaluated_at) from {RUNS}").fetchone()[0]


def record_run(con: duckdb.DuckDBPyConnection, at: dt.datetime, since: dt.datetime, seconds: float, summary: dict) -> None:
    """The micro-batch's row in triggers.runs (replaced when `at` runs again)."""
    con.execute(f"delete from {RUNS} where evaluated_at = {ts(at)}")
    con.execute(f"insert into {RUNS} values ({ts(at)}, {ts(since)}, now()::timestamp, ?, ?)", [seconds, json.dumps(summary)])


# --- lapsing's activity cache ------------------------------------------------------------------------------------

# Activity per identifier and ingest day, for lapsing: (timestamp column, identifier columns) per source. Emails
# only as their HMAC (the normalised address keyed, as marts.identities has it).
_EMAIL_HMAC = pii_hmac("nullif(lower(trim(email)), '')") + " as email_hmac"
ACTIVITY_SOURCES = {
    "events": ("occurred_at", "customer_id, anonymous_id, null::varchar as email_hmac, null::varchar as loyalty_id"),
    "orders": ("ordered_at", f"customer_id, null::varchar as anonymous_id, {_EMAIL_HMAC}, null::varchar as loyalty_id"),
    "store_visits": ("visited_at", "null::varchar as customer_id, null::varchar as anonymous_id, "
                                   "null::varchar as email_hmac, loyalty_id"),
    "survey_responses": ("answered_at", f"customer_id, null::varchar as anonymous_id, {_EMAIL_HMAC}, "
                                        "null::varchar as loyalty_id"),
}
# A partition is closed (cached once) when no row of it can be later than the evaluation time: rows lie at most
# a day + landing's future tolerance (24 h) after their ingest date.
CLOSED_AFTER_DAYS = 3


def activity_cutoff(at: dt.datetime) -> dt.date:
    """The last closed ingest day at `at`: the cache holds the days up to it, later days are read from the lake."""
    return at.date() - dt.timedelta(days=CLOSED_AFTER_DAYS)


def activity_agg(source: str, relation: str, where: str = "") -> str:
    """Per identifier and ingest day of `relation` (rows of `source`): last activity, orders, first order."""
    col, keys = ACTIVITY_SOURCES[source]
    orders = "count(*)" if source == "orders" else "0"
    first = f"min({col})" if source == "orders" else "null::timestamp"
    return (f"select '{source}' as source, ingest_date, customer_id, anonymous_id, email_hmac, loyalty_id, max({col}) as last_at, "
            f"{orders} as orders, {first} as first_order_at "
            f"from (select ingest_date, {col}, {keys} from {relation} {where}) group by all")


def _partition_signature(directory: Path) -> str:
    return "|".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in sorted(directory.glob("*.parquet")))


def refresh_activity_cache(con: duckdb.DuckDBPyConnection, paths: Paths, sources: list[str], at: dt.datetime) -> dt.date:
    """Aggregate every closed ingest partition of `sources` once (again when its files change); returns the
    cut-off day (activity_cutoff(at))."""
    cutoff = activity_cutoff(at)
    use_pii_key(con, paths)
    con.execute("create schema if not exists triggers")
    if table_exists(con, *ACTIVITY_CACHE.split(".")) and "email_hmac" not in {
            r[0] for r in con.execute(f"describe {ACTIVITY_CACHE}").fetchall()}:
        # the layout of earlier versions, emails in clear: dropped, and aggregated again below
        con.execute(f"drop table {ACTIVITY_CACHE}")
        con.execute(f"drop table if exists {ACTIVITY_CACHE_PARTITIONS}")
    con.execute(f"create table if not exists {ACTIVITY_CACHE} (source varchar, ingest_date date, customer_id varchar, "
                "anonymous_id varchar, email_hmac varchar, loyalty_id varchar, last_at timestamp, orders bigint, "
                "first_order_at timestamp)")
    con.execute(f"create table if not exists {ACTIVITY_CACHE_PARTITIONS} (source varchar, ingest_date date, signature varchar)")
    known = {(s, d): sig for s, d, sig in con.execute(f"select * from {ACTIVITY_CACHE_PARTITIONS}").fetchall()}
    # which key the cached hashes were made with (16 hex of an HMAC, not the key): another key aggregates again
    label = f"'{ACTIVITY_CACHE}'"
    key_id = con.execute(f"select left({pii_hmac(label)}, 16)").fetchone()[0]
    for source in sources:
        for part in sorted((paths.raw / source).glob("ingest_date=*")):
            day = dt.date.fromisoformat(part.name.split("=", 1)[1])
            if day > cutoff:
                continue
            files = _partition_signature(part)
            sig = f"key:{key_id}|{files}"
            if known.get((source, day)) == sig:
                continue
            con.execute(f"delete from {ACTIVITY_CACHE} where source = ? and ingest_date = ?", [source, day])
            con.execute(f"delete from {ACTIVITY_CACHE_PARTITIONS} where source = ? and ingest_date = ?", [source, day])
            if files:
                relation = (f"(select *, DATE '{day}' as ingest_date from read_parquet('{part}/*.parquet', "
                            "union_by_name = true, hive_partitioning = false))")
                con.execute(f"insert into {ACTIVITY_CACHE} {activity_agg(source, relation)}")
            con.execute(f"insert into {ACTIVITY_CACHE_PARTITIONS} values (?, ?, ?)", [source, day, sig])
    return cutoff
