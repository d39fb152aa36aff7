"""`seg summary` says what the last day decided: the drift decision with its reasons and the checks that failed,
warnings included (a warning does not stop the run, so without this it goes unseen; #17)."""

from __future__ import annotations

import datetime as dt

import duckdb

from seg.pipeline.summary import print_summary

DAY = dt.date(2026, 11, 2)


def _warehouse(settings, failed: bool) -> None:
    settings.paths.root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.paths.warehouse))
    con.execute("create schema monitoring")
    con.execute("create table monitoring.drift_decisions (segmentation varchar, as_of_date date, decision varchar, "
                "reasons varchar)")
    con.execute("insert into monitoring.drift_decisions values ('profile', ?, 'none', 'all ok'), ('profile', ?, "
                "'warn', 'features to watch: frequency (0.12)'), ('behaviour', ?, 'none', 'nothing moved')",
                [DAY - dt.timedelta(days=1), DAY, DAY])
    con.execute("create table monitoring.gate_results (as_of_date date, gate varchar, suite varchar, expectation "
                "varchar, severity varchar, success boolean, unexpected_count bigint, observed_value varchar)")
    con.execute("insert into monitoring.gate_results values "
                "(?, 'raw', 'raw__orders', 'expect_column_values_to_not_be_null', 'critical', true, 0, null), "
                "(?, 'raw', 'raw__ingest', 'expect_daily_volume_to_be_within_trailing_band', 'warning', ?, null, '0.31'),"
                "(?, 'raw', 'raw__ingest', 'expect_daily_volume_to_be_within_trailing_band', 'warning', false, null, "
                "'0.2')", [DAY, DAY, not failed, DAY - dt.timedelta(days=1)])
    con.close()


def test_the_summary_shows_the_days_drift_decision_and_its_failed_checks(settings, capsys):
    _warehouse(settings, failed=True)
    print_summary(settings)
    out = capsys.readouterr().out
    assert f"drift of profile on {DAY}: warn (features to watch: frequency (0.12))" in out
    assert f"drift of behaviour on {DAY}: none (nothing moved)" in out
    assert f"gates on {DAY}: 1 check(s) failed" in out
    assert "warning  raw: raw__ingest.expect_daily_volume_to_be_within_trailing_band (observed 0.31)" in out
    assert "duckdb.connect(" in out and "  warehouse (DuckDB):  duckdb " not in out  # no CLI the venv lacks


def test_a_clean_day_says_every_check_passed(settings, capsys):
    _warehouse(settings, failed=False)
    print_summary(settings)
    assert f"gates on {DAY}: every check passed" in capsys.readouterr().out
