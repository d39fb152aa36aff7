"""One session rule, one gap: dbt's int_events_sessionized and the triggers' sessions (seg.triggers.sessions) cut
the same events at the same places, and both follow settings sessions.gap_minutes."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from seg.core import config
from seg.core.warehouse import configure
from seg.transform import dbt
from seg.triggers import sessions, sql
from tests.triggers.conftest import END

AT = dt.datetime.combine(END, dt.time(23, 59, 59, 999_999))  # dbt's as-of date END: everything before END + 1
SINCE = dt.datetime(2000, 1, 1)  # the whole lake


def _triggers_sessions(settings: config.Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection holding the triggers' sessionised events (temp table ev) over the whole lake."""
    con = configure(duckdb.connect(str(settings.paths.warehouse), read_only=True), settings)
    sql.prepare(con, settings.paths, AT, SINCE, sessions.gap(settings))
    return con


def _compare(con: duckdb.DuckDBPyConnection) -> dict:
    return dict(zip(("events", "dbt_events", "sessions", "different"), con.execute("""
        select count(t.event_id), count(d.event_id), count(distinct d.session_id),
               count(*) filter (where t.session_key is distinct from d.session_id
                                or t.session_started_at is distinct from d.session_started_at)
        from (select distinct event_id, session_key, session_started_at from ev) t
        full outer join intermediate.int_events_sessionized d using (event_id)
    """).fetchone(), strict=True))


def test_dbt_and_the_triggers_cut_the_same_events_into_the_same_sessions(trigger_lake):
    con = _triggers_sessions(trigger_lake)
    try:
        seen = _compare(con)
    finally:
        con.close()
    assert seen["events"] == seen["dbt_events"] > 10_000 and seen["sessions"] > 1_000
    assert seen["different"] == 0, seen


def test_the_gap_setting_moves_dbt_and_the_triggers_together(lake_copy):
    before = _triggers_sessions(lake_copy)
    try:
        sessions_30 = _compare(before)["sessions"]
    finally:
        before.close()
    lake_copy = lake_copy.with_overrides({"sessions": {"gap_minutes": 10}})
    assert dbt._vars(lake_copy, END)["session_gap_minutes"] == 10  # seg.transform.dbt passes the setting
    dbt.invoke(lake_copy, ["run", "--select", "int_events_sessionized", "--full-refresh"], END.isoformat())
    con = _triggers_sessions(lake_copy)
    try:
        seen = _compare(con)
    finally:
        con.close()
    assert seen["different"] == 0, seen
    assert seen["sessions"] > sessions_30  # a shorter gap cuts more sessions, in both


def test_the_rule_on_dbts_unit_test_rows():
    """The rows of dbt's unit test test_sessions_split_after_more_than_30_minutes, plus sub-second and tie cases:
    exactly the gap stays in the session, more starts a new one, equal times are ordered by event_id."""
    con = duckdb.connect()
    con.execute("""
        create table e as select event_id, cast(occurred_at as timestamp) as occurred_at, anonymous_id, customer_id
        from (values
            ('E1', '2025-03-01 10:00:00', 'dev', null), ('E2', '2025-03-01 10:30:00', 'dev', 'C00000001'),
            ('E3', '2025-03-01 11:00:00', 'dev', 'C00000001'), ('E4', '2025-03-01 11:31:00', 'dev', null),
            ('E5', '2025-03-01 11:00:00', 'other', null),
            ('F2', '2025-03-02 10:00:00', 'tie', null), ('F1', '2025-03-02 10:00:00', 'tie', null),
            ('G1', '2025-03-02 10:00:00.900', 'sub', null), ('G2', '2025-03-02 10:30:00.950', 'sub', null),
            ('G3', '2025-03-02 11:00:01.100', 'sub', null)
        ) t(event_id, occurred_at, anonymous_id, customer_id)
    """)
    rows = con.execute(f"select event_id, device_session_number, session_customer_id, is_session_start, "
                       f"session_started_at from ({sessions.sessionized('e', dt.timedelta(minutes=30))}) "
                       "order by event_id").fetchall()
    t = dt.datetime
    assert rows == [
        ("E1", 1, "C00000001", True, t(2025, 3, 1, 10, 0)),
        ("E2", 1, "C00000001", False, t(2025, 3, 1, 10, 0)),
        ("E3", 1, "C00000001", False, t(2025, 3, 1, 10, 0)),
        ("E4", 2, None, True, t(2025, 3, 1, 11, 31)),
        ("E5", 1, None, True, t(2025, 3, 1, 11, 0)),
        ("F1", 1, None, True, t(2025, 3, 2, 10, 0)),  # same time: event_id orders, F1 starts
        ("F2", 1, None, False, t(2025, 3, 2, 10, 0)),
        ("G1", 1, None, True, t(2025, 3, 2, 10, 0, 0, 900_000)),
        ("G2", 1, None, False, t(2025, 3, 2, 10, 0, 0, 900_000)),  # 30 min in whole seconds: stays
        ("G3", 2, None, True, t(2025, 3, 2, 11, 0, 1, 100_000)),  # 1801 whole seconds: a new session
    ]


def test_the_gap_is_one_setting(tmp_path):
    settings = config.load(tmp_path)
    assert sessions.gap(settings) == dt.timedelta(minutes=settings.sessions.gap_minutes)
    assert dbt._vars(settings, END)["session_gap_minutes"] == settings.sessions.gap_minutes
    with pytest.raises(config.SettingsError, match="dbt.vars.session_gap_minutes: set by the pipeline from "
                                                   "sessions.gap_minutes"):
        settings.with_overrides({"dbt": {"vars": {"session_gap_minutes": 20}}})
