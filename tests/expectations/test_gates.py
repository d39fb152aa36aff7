"""The gates end to end: small lakes and marts in a temp data directory, validated through run_gate()."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest
import yaml

from expectations import GATES, GateFailed, run_gate
from expectations.suites._base import POLICY_FILE, Policy
from seg.core import warehouse

from ._lakes import (
    DAY,
    PREVIOUS_DAY,
    at,
    build_assignments,
    build_marts,
    failed,
    row,
    write_lake,
    write_partition,
)

RAW_SUITES = {f"raw__{s}" for s in ("fx_rates", "crm_customers", "orders", "order_items", "events", "store_visits",
                                    "survey_responses")} | {"raw__ingest"}


def gate_rows(settings, gate=None):
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        where, params = ("where gate = ?", [gate]) if gate else ("", [])
        cursor = con.execute(f"select * from monitoring.gate_results {where} order by suite, expectation_key", params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()


# --- raw -------------------------------------------------------------------------------------------------------

def test_raw_gate_passes_a_clean_day_and_records_it_everywhere(lake):
    result = run_gate(lake, "raw", DAY)

    assert result.success and result.critical_failures == 0 and result.warnings == 0
    assert {r.suite for r in result.expectations} == RAW_SUITES
    assert all(r.success and r.error is None for r in result.expectations)
    checks = {r.key.split(".")[-1] for r in result.expectations}
    assert {"row_count", "columns_present", "column_type", "not_null", "allowed_values", "pattern", "bounds",
            "not_in_future", "duplicate_key"} <= checks
    assert row(result, "raw__orders", "row_count").observed_value == "4"  # the day only, not the day before

    recorded = gate_rows(lake, "raw")
    assert len(recorded) == len(result.expectations)
    assert {r["as_of_date"] for r in recorded} == {DAY}

    document = json.loads(result.result_path.read_text())
    assert result.result_path == lake.paths.reports / "gx" / DAY.isoformat() / "raw.json"
    assert document["success"] is True
    assert set(document["validation_results"]) == RAW_SUITES
    assert len(document["expectations"]) == len(result.expectations)

    assert result.data_docs_index == lake.paths.reports / "data_docs" / "index.html"
    assert "raw__orders" in result.data_docs_index.read_text()
    assert (lake.paths.root / "gx" / "great_expectations.yml").exists()


def bad_rows() -> dict[str, list[dict]]:
    """One defect per row; each must fail exactly the expectation named in EXPECTED_RAW_FAILURES."""
    order = {"customer_id": "C00000001", "ordered_at": at(14), "channel": "web", "status": "completed",
             "amount": 5.0, "currency": "EUR"}
    return {
        "orders": [
            {**order, "order_id": None},                                            # null id
            {**order, "order_id": "O0000000010", "amount": -5.0},                   # negative amount
            {**order, "order_id": "O0000000002", "email": "guest@example.com", "customer_id": None},  # duplicate
            {**order, "order_id": "O0000000011", "ordered_at": at(9, DAY + dt.timedelta(days=3))},  # future
            {**order, "order_id": "O0000000012", "channel": "fax"},                 # unknown channel
            {**order, "order_id": "X1"},                                            # malformed id
            {**order, "order_id": "O0000000013", "customer_id": None},              # nobody bought it
        ],
        "events": [{"event_id": "E000000000099", "occurred_at": at(9), "anonymous_id": "0123456789abcdef",
                    "event_type": "teleport"}],
        "crm_customers": [{"customer_id": "C00000099", "country": "Germany", "signup_at": at(8),
                           "updated_at": at(8)}],
        "order_items": [{"order_id": "O0000000001", "line_no": 3, "sku": "SKU-00009", "quantity": 0,
                         "unit_price": 1.0}],
        "store_visits": [{"visit_id": "V0000000099", "loyalty_id": "L000000001", "store_id": "S1",
                          "visited_at": at(12)}],
        "survey_responses": [{"response_id": "R0000000099", "customer_id": "C00000001", "answered_at": at(13),
                              "question_id": "mood", "answer": "5"}],
    }


EXPECTED_RAW_FAILURES = {
    ("raw__orders", "order_id.not_null"): "critical",
    ("raw__orders", "amount.bounds"): "critical",
    ("raw__orders", "order_id.duplicate_key"): "warning",
    ("raw__orders", "ordered_at.not_in_future"): "critical",
    ("raw__orders", "channel.allowed_values"): "critical",
    ("raw__orders", "order_id.pattern"): "critical",
    ("raw__orders", "rule.customer_id_or_email"): "critical",
    ("raw__events", "event_type.allowed_values"): "critical",
    ("raw__crm_customers", "country.pattern"): "critical",
    ("raw__order_items", "quantity.bounds"): "critical",
    ("raw__store_visits", "store_id.pattern"): "critical",
    ("raw__survey_responses", "question_id.allowed_values"): "critical",
}


def test_raw_gate_fails_each_contract_violation_with_its_severity_and_samples(lake):
    for source, rows in bad_rows().items():
        write_partition(lake, source, DAY, rows, name="bad")

    with pytest.raises(GateFailed) as raised:
        run_gate(lake, "raw", DAY)
    result = raised.value.result

    assert failed(result) == EXPECTED_RAW_FAILURES
    assert result.critical_failures == 11 and result.warnings == 1

    negative = row(result, "raw__orders", "amount.bounds")
    assert negative.unexpected_count == 1
    assert negative.sample_values == [{"_source_file": f"orders/{DAY}/bad.parquet", "_row_number": 2, "amount": -5.0}]
    pattern = row(result, "raw__orders", "order_id.pattern")  # a SQL expectation: samples fetched by the runner
    assert pattern.expectation == "expect_column_values_to_match_regex"
    assert pattern.unexpected_count == 1
    assert pattern.sample_values == [{"_source_file": f"orders/{DAY}/bad.parquet", "_row_number": 6, "order_id": "X1"}]
    assert row(result, "raw__events", "event_type.allowed_values").sample_values[0]["event_type"] == "teleport"
    duplicates = row(result, "raw__orders", "order_id.duplicate_key").sample_values
    assert {(s["_source_file"], s["_row_number"], s["order_id"]) for s in duplicates} == {
        (f"orders/{DAY}/part-0.parquet", 2, "O0000000002"), (f"orders/{DAY}/bad.parquet", 3, "O0000000002")}

    message = str(raised.value)
    assert "gate 'raw' failed" in message and "11 critical" in message
    assert "raw__orders / expect_column_values_to_be_between (amount)" in message and "-5.0" in message
    assert "raw__orders / expect_column_values_to_match_regex (order_id)" in message and '"X1"' in message
    assert "duplicate_key" not in message  # warnings are not part of the failure

    recorded = {(r["suite"], r["expectation_key"]): r for r in gate_rows(lake, "raw") if not r["success"]}
    assert {k: r["severity"] for k, r in recorded.items()} == EXPECTED_RAW_FAILURES
    assert "-5.0" in recorded[("raw__orders", "amount.bounds")]["sample_values"]
    assert json.loads(result.result_path.read_text())["success"] is False


def test_raw_gate_reruns_replace_their_rows_and_keep_other_dates(lake):
    first = run_gate(lake, "raw", DAY)
    with pytest.raises(GateFailed):  # only orders landed the day before: the big sources have no rows
        run_gate(lake, "raw", PREVIOUS_DAY)
    second = run_gate(lake, "raw", DAY)

    recorded = gate_rows(lake, "raw")
    by_date = {d: [r for r in recorded if r["as_of_date"] == d] for d in (DAY, PREVIOUS_DAY)}
    assert len(by_date[DAY]) == len(second.expectations) == len(first.expectations)
    assert {r["checked_at"] for r in by_date[DAY]} == {second.checked_at}
    assert len(by_date[PREVIOUS_DAY]) > 0
    keys = [(r["as_of_date"], r["suite"], r["expectation_key"]) for r in recorded]
    assert len(keys) == len(set(keys))
    missing_rows = [r for r in by_date[PREVIOUS_DAY] if r["expectation_key"] == "row_count" and not r["success"]]
    assert {r["suite"]: r["severity"] for r in missing_rows} == {
        "raw__fx_rates": "warning", "raw__crm_customers": "warning", "raw__order_items": "critical", "raw__events": "critical",
        "raw__store_visits": "warning", "raw__survey_responses": "warning"}


def test_raw_gate_skips_sources_that_never_delivered(settings):
    write_lake(settings, rows={"orders": []})  # orders on the day before only
    write_partition(settings, "orders", DAY, [
        {"order_id": "O0000000009", "customer_id": "C00000001", "ordered_at": at(9), "amount": 1.0}])
    result = run_gate(settings, "raw", DAY)

    assert result.success
    assert {r.suite for r in result.expectations} == {"raw__orders", "raw__ingest"}
    skipped = [n for n in result.notes if "skipped" in n]
    assert len(skipped) == 6 and any(n.startswith("raw__events: skipped") for n in skipped)
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:  # typed empty views
        assert con.execute("select count(*) from lake.events").fetchone() == (0,)


# --- marts -----------------------------------------------------------------------------------------------------

def test_marts_gate_passes_consistent_marts(lake):
    build_marts(lake)
    result = run_gate(lake, "marts", DAY)

    assert result.success and not result.failures()
    document = json.loads(result.result_path.read_text())
    assert set(document["validation_results"]) == set(GATES["marts"].suites)  # every suite validated
    # keys, ranges and the reconciliation are dbt tests (tests/expectations/test_dbt_owned_mart_checks.py)
    assert {(r.suite, r.key) for r in result.expectations} == {("mart__customers", "row_count")}


@pytest.mark.parametrize("suite", GATES["marts"].suites)
def test_marts_gate_fails_when_a_mart_does_not_exist(lake, suite):
    table = suite.removeprefix("mart__")
    build_marts(lake, sql=(f"drop table marts.{table}",))
    with pytest.raises(GateFailed, match=f"marts.{table} does not exist") as raised:
        run_gate(lake, "marts", DAY)
    result = raised.value.result
    assert failed(result) == {(suite, f"marts.{table}.table_exists"): "critical"}
    document = json.loads(result.result_path.read_text())
    assert set(document["validation_results"]) == set(GATES["marts"].suites) - {suite}  # the others still ran


def test_marts_gate_fails_an_empty_customers_mart(lake):
    build_marts(lake, sql=("delete from marts.customers",))
    with pytest.raises(GateFailed, match="mart__customers / expect_table_row_count_to_be_between") as raised:
        run_gate(lake, "marts", DAY)
    assert failed(raised.value.result) == {("mart__customers", "row_count"): "critical"}


def test_features_gate_fails_a_customer_without_a_feature_row(lake):
    build_marts(lake, sql=("insert into marts.customers values ('P6', 'C00000009')",))
    assert run_gate(lake, "marts", DAY).success
    with pytest.raises(GateFailed) as raised:  # features have their own gate, run after build_features
        run_gate(lake, "features", DAY)
    assert failed(raised.value.result) == {("mart__customer_features", "row_count_matches"): "critical",
                                           ("mart__customer_behaviour_features", "row_count_matches"): "critical"}
    assert row(raised.value.result, "mart__customer_features", "row_count_matches").sample_values == [
        {"feature_rows": 5, "customer_rows": 6}]


def test_marts_gate_can_audit_a_staging_schema_before_it_is_published(lake):
    build_marts(lake, sql=(
        "create schema marts_staging",
        *(f"create table marts_staging.{t} as select * from marts.{t}"
          for t in ("customers", "customer_rfm", "orders", "customer_features")),
        "delete from marts_staging.customers",
    ))
    assert run_gate(lake, "marts", DAY.isoformat()).success  # published marts are fine
    with pytest.raises(GateFailed, match="mart__customers / expect_table_row_count_to_be_between"):
        run_gate(lake, "marts", DAY, schemas={"marts": "marts_staging"})


# --- segments --------------------------------------------------------------------------------------------------

def test_segments_gate_passes_complete_assignments(lake):
    build_marts(lake)
    build_assignments(lake)
    result = run_gate(lake, "segments", DAY)
    assert result.success and not result.failures()


def test_segments_gate_fails_unassigned_duplicated_unknown_and_empty_segments(lake):
    build_marts(lake)
    build_assignments(lake, sql=(
        "delete from ml_stage.customer_assignments where person_id = 'P3'",
        f"insert into ml_stage.customer_assignments values ('profile', 'P1', 'C00000001', 0, 'Loyal', DATE '{DAY}', "
        "'3', 0.1)",
        f"insert into ml_stage.customer_assignments values ('profile', 'P9', NULL, 0, 'Loyal', DATE '{DAY}', '3', 0.1)",
        "update ml_stage.customer_assignments set segment_id = NULL where person_id = 'P4'",
        "update ml_stage.customer_assignments set segment_id = 3 where person_id = 'P5'",
    ))
    with pytest.raises(GateFailed) as raised:
        run_gate(lake, "segments", DAY)
    result = raised.value.result

    assert failed(result) == {
        ("segments__assignments", "person_id.assigned_once"): "critical",
        ("segments__assignments", "person_id.known_person"): "critical",
        ("segments__assignments", "segment_id.not_null"): "critical",
        ("segments__assignments", "empty_segment"): "critical",
        ("segments__assignments", "unknown_segment"): "critical",
        ("segments__assignments", "segment_share"): "warning",
    }
    problems = {s["person_id"]: s["problem"] for s in row(result, "segments__assignments",
                                                          "person_id.assigned_once").sample_values}
    assert problems == {"P3": "not assigned", "P1": "assigned 2 times"}
    empty = row(result, "segments__assignments", "empty_segment").sample_values
    assert sorted(s["segment_id"] for s in empty) == [1, 2]
    assert row(result, "segments__assignments", "unknown_segment").sample_values == [{"segment_id": 3, "members": 1}]
    assert "P3" in str(raised.value)


def test_segments_gate_accepts_the_gaps_stable_segment_ids_leave(lake):
    """A refit keeps matched ids and never reuses a vanished one: ids 0, 2, 5 is a complete model."""
    build_marts(lake)
    build_assignments(lake, sql=(
        "update ml_stage.customer_assignments set segment_id = 5 where segment_id = 1",
        "update ml_stage.segment_profiles set segment_id = 5 where segment_id = 1",
        "update ml_stage.customer_assignments set segment_id = 0 where person_id = 'P5'",
        "update ml_stage.segment_profiles set size = 0, share = 0 where segment_id = 2",
        "delete from ml_stage.segment_profiles where segment_id = 2",
    ))
    result = run_gate(lake, "segments", DAY)
    assert result.success and not [r for r in result.failures() if r.severity == "critical"]


def test_segments_gate_only_warns_about_segment_shares(lake):
    build_marts(lake)
    build_assignments(lake, sql=("update ml_stage.customer_assignments set segment_id = 0, segment_name = 'All'",
                                 "delete from ml_stage.segment_profiles where segment_id <> 0"))
    result = run_gate(lake, "segments", DAY)  # no GateFailed
    assert result.success and result.warnings == 1
    [share] = result.failures()
    assert (share.key, share.severity) == ("segment_share", "warning")
    assert share.sample_values == [{"segment_id": 0, "segment_name": "All", "members": 5, "share": 1.0}]


def test_segments_gate_runs_per_lens_on_that_lens_rows_only(lake):
    """Each lens's segments are gated on their own (recorded as segments.<lens>): another lens's broken rows
    neither fail this lens nor hide that this lens has not assigned anyone."""
    build_marts(lake)
    build_assignments(lake, sql=(  # the behaviour lens's rows: one person twice, an unknown segment
        "insert into ml_stage.customer_assignments select 'behaviour', person_id, customer_id, 7, 'Odd', as_of_date, "
        "'1', 0.1 from ml_stage.customer_assignments union all select 'behaviour', 'P1', 'C00000001', 7, 'Odd', "
        f"DATE '{DAY}', '1', 0.1",))
    profile = run_gate(lake, "segments", DAY)
    assert profile.gate == "segments.profile" and profile.success and not profile.failures()
    with pytest.raises(GateFailed) as raised:
        run_gate(lake.for_lens("behaviour"), "segments", DAY)
    result = raised.value.result
    assert result.gate == "segments.behaviour"
    assert {key for _, key in failed(result)} >= {"person_id.assigned_once", "unknown_segment"}
    with warehouse.connect(lake, read_only=True) as con:
        gates = con.execute("select distinct gate from monitoring.gate_results order by 1").fetchall()
    assert gates == [("segments.behaviour",), ("segments.profile",)]


def test_segments_gate_validates_only_the_as_of_date(lake):
    build_marts(lake)
    build_assignments(lake, day=PREVIOUS_DAY)
    with pytest.raises(GateFailed, match="not assigned"):
        run_gate(lake, "segments", DAY)


def test_severity_is_configuration_not_code(lake, tmp_path):
    raw = yaml.safe_load(POLICY_FILE.read_text())
    raw["suites"]["segments__assignments"]["severity"] = {"segment_share": "critical"}
    strict = tmp_path / "gates.yml"
    strict.write_text(yaml.safe_dump(raw))
    build_marts(lake)
    build_assignments(lake, sql=("update ml_stage.customer_assignments set segment_id = 0",))
    with pytest.raises(GateFailed, match="expect_segment_share_between"):
        run_gate(lake, "segments", DAY, policy=Policy.load(strict))


# --- policy ----------------------------------------------------------------------------------------------------

def test_policy_lookup_order_and_validation(tmp_path):
    policy = Policy({
        "default_severity": "critical",
        "severity": {"not_null": "warning"},
        "suites": {"s": {"severity": {"not_null": "critical", "a.bounds": "warning"}}},
    })
    assert policy.severity("s", "not_null", "x.not_null") == "critical"   # suite check beats global check
    assert policy.severity("other", "not_null", "x.not_null") == "warning"
    assert policy.severity("s", "bounds", "a.bounds") == "warning"       # suite key beats everything
    assert policy.severity("s", "bounds", "b.bounds") == "critical"      # default
    bad = tmp_path / "gates.yml"
    bad.write_text("severity: {not_null: fatal}\n")
    with pytest.raises(ValueError, match="fatal"):
        Policy.load(bad)
    assert Policy.load().threshold("segments__assignments", "min_segment_share") > 0


def test_expectations_never_import_ml_or_airflow():
    import expectations

    package = Path(expectations.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert not re.search(r"^\s*(from|import)\s+(ml|airflow)\b", text, re.MULTILINE), source


def test_unknown_gate_is_refused(settings):
    with pytest.raises(KeyError, match="unknown gate"):
        run_gate(settings, "gold", DAY)
