"""Write-audit-publish for the dbt marts: build into an audit schema, gate it, then publish into `marts`.

    dbt.build(settings, d, extra_vars=wap.AUDIT_VARS)            # dbt builds the marts layer into `marts_audit`
    run_gate(settings, "marts", d, schemas=wap.AUDIT_SCHEMAS)    # the gates read the audit schema
    wap.publish(settings, d)                     # every audited table into `marts`, in one DuckDB transaction

dbt's `generate_schema_name` macro sends the marts layer to the schema named by the var `marts_schema`
(default `marts`); the pipeline sets it to `marts_audit`. Staging and intermediate are not published: nothing
outside dbt reads them. A failed gate stops the DAG before `publish`, so the published `marts.*` (and the
segments, published by seg/transform/segments.py from them) stay as they were; `marts_audit` keeps the failed build for
inspection until the next run replaces it.

Publishing a table:
- a dbt model materialized `incremental` with `unique_key='as_of_date'` (the *_history marts) replaces only the
  as-of date's rows in `marts` (insert by name; new audit columns are added first), so a day that failed its gate
  in the audit schema never reaches the published history;
- every other table in the audit schema replaces its `marts` namesake whole, unless the build is of an older
  as-of date than the published one (`published_as_of`, the newest date of the published history): current
  tables move only forward, so a rerun of an old date publishes that date's history rows and leaves the current
  marts alone. The model steps of such a run read the date's own audited build (`schema_of`).
Tables in `marts` that dbt does not build (customer_segments, customer_segment_history) are never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from seg.core.config import Settings
from seg.core.warehouse import connect, table_exists

PUBLISHED_SCHEMA = "marts"
AUDIT_SCHEMA = "marts_audit"
# logical -> physical schema for the gates that audit what dbt built (expectations.run_gate(schemas=...))
AUDIT_SCHEMAS = {PUBLISHED_SCHEMA: AUDIT_SCHEMA}
# the dbt var that sends the marts layer to the audit schema (macro generate_schema_name)
AUDIT_VARS = {"marts_schema": AUDIT_SCHEMA}
# Publish what was audited: each build step into the audit schema gets a build id, each gate that passed records
# the build id it read, and publish refuses when the audit schema changed after its gate (another run's build).
BUILDS = f"{AUDIT_SCHEMA}._builds"  # one row per build step: step, build_id, as_of_date, built_at
AUDITS = f"{AUDIT_SCHEMA}._audits"  # one row per gate that passed: gate, step, build_id, audited_at


class AuditMismatch(RuntimeError):
    """The audit schema is not what the gates passed: publishing it would publish unaudited marts."""


def _ensure_records(con: Any) -> None:
    con.execute(f"create schema if not exists {AUDIT_SCHEMA}")
    con.execute(f"create table if not exists {BUILDS} (step varchar primary key, build_id varchar, as_of_date date, "
                "built_at timestamp)")
    con.execute(f"create table if not exists {AUDITS} (gate varchar primary key, step varchar, build_id varchar, "
                "audited_at timestamp)")


def start_build(settings: Settings, step: str) -> None:
    """Forget the step's build id before dbt rewrites the audit schema: a build that fails half-way leaves no id
    an earlier audit could match."""
    with connect(settings) as con:
        _ensure_records(con)
        con.execute(f"delete from {BUILDS} where step = ?", [step])


def finish_build(settings: Settings, step: str, as_of_date: dt.date) -> str:
    """A new build id for the step, after dbt wrote the audit schema successfully."""
    build_id = uuid.uuid4().hex
    with connect(settings) as con:
        _ensure_records(con)
        con.execute(f"insert or replace into {BUILDS} values (?, ?, ?, now()::timestamp)", [step, build_id, as_of_date])
    return build_id


def current_build(settings: Settings, step: str) -> str | None:
    with connect(settings) as con:
        return _build_ids(con).get(step)


def _build_ids(con: Any) -> dict[str, str]:
    if not table_exists(con, AUDIT_SCHEMA, "_builds"):
        return {}
    return dict(con.execute(f"select step, build_id from {BUILDS}").fetchall())


def record_audit(settings: Settings, gate: str, step: str, build_id: str | None) -> None:
    """The gate passed on the step's build `build_id` (read before the gate ran)."""
    with connect(settings) as con:
        _ensure_records(con)
        if _build_ids(con).get(step) != build_id or build_id is None:
            raise AuditMismatch(f"the audit schema was rebuilt while gate {gate} was reading it (by another run?): "
                                "rerun the date")
        con.execute(f"insert or replace into {AUDITS} values (?, ?, ?, now()::timestamp)", [gate, step, build_id])


def _check_audited(con: Any, audited: Mapping[str, str]) -> None:
    builds = _build_ids(con)
    passed: dict[str, tuple[str, str]] = {}
    if table_exists(con, AUDIT_SCHEMA, "_audits"):
        passed = {g: (s, b) for g, s, b in con.execute(f"select gate, step, build_id from {AUDITS}").fetchall()}
    for gate, step in audited.items():
        if step not in builds:
            raise AuditMismatch(f"{step} has no finished build in {AUDIT_SCHEMA}: nothing audited to publish")
        if passed.get(gate) != (step, builds[step]):
            raise AuditMismatch(f"gate {gate} did not pass on the current {step} build of {AUDIT_SCHEMA} (rebuilt "
                                "after the gate, by another run?): publishing it would publish unaudited marts; "
                                "rerun the date")


def _dated_models(settings: Settings) -> set[str]:
    """Audit-schema tables that dbt builds incrementally keyed on as_of_date (from dbt's manifest)."""
    manifest = settings.paths.dbt_target / "manifest.json"
    if not manifest.exists():
        return set()
    nodes = json.loads(manifest.read_text()).get("nodes", {}).values()
    return {
        (n.get("alias") or n["name"])
        for n in nodes
        if n.get("resource_type") == "model" and n.get("schema") == AUDIT_SCHEMA
        and (n.get("config") or {}).get("materialized") == "incremental"
        and (n.get("config") or {}).get("unique_key") == "as_of_date"
    }


def _tables(con: Any, schema: str) -> list[str]:
    """The schema's tables, without the build/audit records (names starting with _)."""
    return [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' "
        "and not starts_with(table_name, '_') order by table_name", [schema]).fetchall()]


def _columns(con: Any, schema: str, table: str) -> dict[str, str]:
    return dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall())


def _published_as_of(con: Any, dated: set[str]) -> dt.date | None:
    newest = [con.execute(f"select max(as_of_date) from {PUBLISHED_SCHEMA}.{t}").fetchone()[0]
              for t in sorted(dated) if table_exists(con, PUBLISHED_SCHEMA, t)]
    return max((d for d in newest if d is not None), default=None)


def published_as_of(settings: Settings) -> dt.date | None:
    """The as-of date of the current (replaced) marts: the newest date in the published history marts."""
    with connect(settings, read_only=True) as con:
        return _published_as_of(con, _dated_models(settings))


def schema_of(settings: Settings, as_of_date: dt.date) -> str:
    """Where the marts of `as_of_date` are, after publish_marts: `marts` when they are the current ones, else
    (a rerun of an older date, which publishes history only) the date's own audited build in the audit schema.
    Raises when neither holds that date (publish_marts has not run for it)."""
    current = published_as_of(settings)
    if current is None or current == as_of_date:
        return PUBLISHED_SCHEMA
    with connect(settings, read_only=True) as con:
        builds = {}
        if table_exists(con, AUDIT_SCHEMA, "_builds"):
            builds = dict(con.execute(f"select step, as_of_date from {BUILDS}").fetchall())
    if as_of_date < current and builds and set(builds.values()) == {as_of_date}:
        return AUDIT_SCHEMA
    raise RuntimeError(f"the published marts are of {current} and {AUDIT_SCHEMA} holds builds of {builds or 'none'}: "
                       f"nothing audited for {as_of_date}; run publish_marts for it first")


def publish(settings: Settings, as_of_date: dt.date, audited: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Swap the audited marts into `marts` in one transaction; returns {table: rows published}.

    audited: gate -> build step ({"marts": "dbt_build"}) whose current build each gate must have passed (the
    pipeline passes it; AuditMismatch otherwise)."""
    dated = _dated_models(settings)
    published: dict[str, Any] = {}
    with connect(settings) as con:
        if audited:
            _check_audited(con, audited)
        tables = _tables(con, AUDIT_SCHEMA)
        if not tables:
            raise RuntimeError(f"schema {AUDIT_SCHEMA} holds no table: dbt_build has not run for {as_of_date}")
        current = _published_as_of(con, dated)
        moves = current is None or as_of_date >= current  # current tables move only forward
        con.execute(f"create schema if not exists {PUBLISHED_SCHEMA}")
        con.execute("begin transaction")
        try:
            for table in tables:
                source, target = f"{AUDIT_SCHEMA}.{table}", f"{PUBLISHED_SCHEMA}.{table}"
                if table in dated:
                    con.execute(f"create table if not exists {target} as select * from {source} where false")
                    have = _columns(con, PUBLISHED_SCHEMA, table)
                    for column, dtype in _columns(con, AUDIT_SCHEMA, table).items():
                        if column not in have:
                            con.execute(f'alter table {target} add column "{column}" {dtype}')
                    con.execute(f"delete from {target} where as_of_date = ?", [as_of_date])
                    con.execute(f"insert into {target} by name select * from {source} where as_of_date = ?",
                                [as_of_date])
                    rows = con.execute(f"select count(*) from {target} where as_of_date = ?", [as_of_date]).fetchone()
                    published[table] = {"mode": "as_of_date", "rows": rows[0]}
                elif not moves:
                    published[table] = {"mode": f"kept (the published marts are of {current})"}
                else:
                    con.execute(f"create or replace table {target} as select * from {source}")
                    published[table] = {"mode": "replace", "rows": con.execute(f"select count(*) from {target}").fetchone()[0]}
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return {"as_of_date": as_of_date.isoformat(), "from": AUDIT_SCHEMA, "to": PUBLISHED_SCHEMA,
            "current": as_of_date.isoformat() if moves else current.isoformat(), "tables": published}
