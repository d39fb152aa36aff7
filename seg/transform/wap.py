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
- every other table in the audit schema replaces its `marts` namesake whole.
Tables in `marts` that dbt does not build (customer_segments, customer_segment_history) are never touched.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from seg.core.config import Settings
from seg.core.warehouse import connect

PUBLISHED_SCHEMA = "marts"
AUDIT_SCHEMA = "marts_audit"
# logical -> physical schema for the gates that audit what dbt built (expectations.run_gate(schemas=...))
AUDIT_SCHEMAS = {PUBLISHED_SCHEMA: AUDIT_SCHEMA}
# the dbt var that sends the marts layer to the audit schema (macro generate_schema_name)
AUDIT_VARS = {"marts_schema": AUDIT_SCHEMA}


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
    return [r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE' "
        "order by table_name", [schema]).fetchall()]


def _columns(con: Any, schema: str, table: str) -> dict[str, str]:
    return dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, table]).fetchall())


def publish(settings: Settings, as_of_date: dt.date) -> dict[str, Any]:
    """Swap the audited marts into `marts` in one transaction; returns {table: rows published}."""
    dated = _dated_models(settings)
    published: dict[str, Any] = {}
    with connect(settings) as con:
        tables = _tables(con, AUDIT_SCHEMA)
        if not tables:
            raise RuntimeError(f"schema {AUDIT_SCHEMA} holds no table: dbt_build has not run for {as_of_date}")
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
                else:
                    con.execute(f"create or replace table {target} as select * from {source}")
                    published[table] = {"mode": "replace", "rows": con.execute(f"select count(*) from {target}").fetchone()[0]}
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return {"as_of_date": as_of_date.isoformat(), "from": AUDIT_SCHEMA, "to": PUBLISHED_SCHEMA, "tables": published}
