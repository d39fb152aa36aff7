"""Write-audit-publish of the marts (seg/transform/wap.py): the gates read the audit schema, publish swaps it in whole."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from expectations import GateFailed, run_gate
from seg.core import warehouse
from seg.transform import wap

from ._lakes import DAY, build_marts

PREVIOUS = DAY - dt.timedelta(days=1)


def tables(settings, schema: str) -> dict[str, list]:
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables where table_schema = ? "
                                           "order by 1", [schema]).fetchall()]
        return {n: con.execute(f"select * from {schema}.{n} order by all").fetchall() for n in names}


def audit_copy(settings, *statements: str) -> None:
    """marts_audit = a copy of the (published) marts, then `statements`."""
    with warehouse.connect(settings) as con:
        con.execute(f"create schema if not exists {wap.AUDIT_SCHEMA}")
        for (name,) in con.execute("select table_name from information_schema.tables where table_schema = 'marts'"
                                   ).fetchall():
            con.execute(f"create or replace table {wap.AUDIT_SCHEMA}.{name} as select * from marts.{name}")
        for statement in statements:
            con.execute(statement)


def dated_model(settings, name: str) -> None:
    """A dbt manifest declaring `name` incremental on as_of_date in the audit schema (as the *_history marts are)."""
    target = settings.paths.root / "dbt" / "target" / "manifest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    node = {"resource_type": "model", "name": name, "alias": name, "schema": wap.AUDIT_SCHEMA,
            "config": {"materialized": "incremental", "unique_key": "as_of_date"}}
    target.write_text(json.dumps({"nodes": {f"model.seg.{name}": node}}))


def test_dbt_is_pointed_at_the_audit_schema_without_touching_the_settings(settings):
    from seg.transform import dbt

    before = repr(settings.raw)
    assert dbt._vars(settings, "2025-03-31", wap.AUDIT_VARS)["marts_schema"] == "marts_audit"
    assert "marts_schema" not in dbt._vars(settings, "2025-03-31")
    assert repr(settings.raw) == before


def test_a_failed_audit_leaves_the_published_marts_untouched(lake):
    build_marts(lake)
    with warehouse.connect(lake) as con:
        con.execute("create table marts.customer_segments as select 'P1' as person_id, 0 as segment_id")
    published = tables(lake, "marts")
    audit_copy(lake, "delete from marts_audit.customers")  # a check GX owns (score ranges etc. are dbt tests)

    with pytest.raises(GateFailed) as raised:  # the DAG stops here: publish_marts never runs
        run_gate(lake, "marts", DAY, schemas=wap.AUDIT_SCHEMAS)

    assert "mart__customers" in str(raised.value)
    assert tables(lake, "marts") == published


def test_publish_swaps_every_audited_table_and_only_the_day_of_dated_ones(lake):
    build_marts(lake)
    with warehouse.connect(lake) as con:
        con.execute("create table marts.customer_segments as select 'P1' as person_id, 0 as segment_id")
        con.execute(f"create table marts.customer_features_history as select DATE '{PREVIOUS}' as as_of_date, "
                    "'P1' as person_id, 1.0 as frequency")
    dated_model(lake, "customer_features_history")
    audit_copy(
        lake,
        "update marts_audit.customer_rfm set monetary = monetary + 1",
        # the audit history holds a bad row for the previous day (a build that failed its gate) and today's rows
        f"update marts_audit.customer_features_history set frequency = -1 where as_of_date = DATE '{PREVIOUS}'",
        "alter table marts_audit.customer_features_history add column recency_days integer",
        f"insert into marts_audit.customer_features_history values (DATE '{DAY}', 'P1', 2.0, 3)",
        "drop table marts_audit.customer_segments",
    )
    segments = tables(lake, "marts")["customer_segments"]

    run_gate(lake, "marts", DAY, schemas=wap.AUDIT_SCHEMAS)
    summary = wap.publish(lake, DAY)

    published, audited = tables(lake, "marts"), tables(lake, wap.AUDIT_SCHEMA)
    for name in ("customers", "orders", "customer_rfm", "customer_features"):
        assert published[name] == audited[name] and summary["tables"][name]["mode"] == "replace"
    assert published["customer_segments"] == segments, "seg/transform/segments.py owns the segments"
    assert published["customer_features_history"] == [(PREVIOUS, "P1", 1.0, None), (DAY, "P1", 2.0, 3)]
    assert summary["tables"]["customer_features_history"] == {"mode": "as_of_date", "rows": 1}


def test_publish_refuses_an_empty_audit_schema(settings):
    with pytest.raises(RuntimeError, match="marts_audit holds no table"):
        wap.publish(settings, DAY)


def _audited_build(settings, step: str) -> str:
    wap.start_build(settings, step)
    return wap.finish_build(settings, step, DAY)


def test_publish_requires_each_gate_to_have_passed_the_current_build(lake):
    """Publish what was audited: a build into the audit schema after the gate (another run's, or a rebuild) is
    refused, and so is a build no gate has seen."""
    from seg.pipeline import daily

    build_marts(lake)
    audit_copy(lake)
    _audited_build(lake, "dbt_build")
    daily.gate(lake, "marts", DAY)  # records the build it audited
    _audited_build(lake, "build_features")
    with pytest.raises(wap.AuditMismatch, match="gate features did not pass"):
        wap.publish(lake, DAY, audited=daily.AUDITED_GATES)  # features were never audited
    daily.gate(lake, "features", DAY)
    _audited_build(lake, "dbt_build")  # a second build lands after the marts gate
    published = tables(lake, "marts")
    with pytest.raises(wap.AuditMismatch, match="gate marts did not pass on the current dbt_build build"):
        wap.publish(lake, DAY, audited=daily.AUDITED_GATES)
    assert tables(lake, "marts") == published
    daily.gate(lake, "marts", DAY)  # audited again: now it publishes
    summary = wap.publish(lake, DAY, audited=daily.AUDITED_GATES)
    assert "_builds" not in summary["tables"] and "_audits" not in summary["tables"]
    assert "_builds" not in tables(lake, "marts")


def test_a_build_that_failed_half_way_matches_no_earlier_audit(lake):
    from seg.pipeline import daily

    build_marts(lake)
    audit_copy(lake)
    _audited_build(lake, "dbt_build")
    daily.gate(lake, "marts", DAY)
    _audited_build(lake, "build_features")
    daily.gate(lake, "features", DAY)
    wap.start_build(lake, "dbt_build")  # dbt rewrites marts_audit and fails: finish_build never runs
    with pytest.raises(wap.AuditMismatch, match="dbt_build has no finished build"):
        wap.publish(lake, DAY, audited=daily.AUDITED_GATES)


def test_a_gate_reading_a_build_that_changed_under_it_records_nothing(lake):
    build_marts(lake)
    audit_copy(lake)
    first = _audited_build(lake, "dbt_build")
    _audited_build(lake, "dbt_build")
    with pytest.raises(wap.AuditMismatch, match="rebuilt while gate marts was reading it"):
        wap.record_audit(lake, "marts", "dbt_build", first)
