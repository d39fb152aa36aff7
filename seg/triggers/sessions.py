"""Sessions of web/app events: the rule of dbt's int_events_sessionized, applied to the micro-batch's events.

The rule (one definition, two engines): a device's events (partition anonymous_id), ordered by
(occurred_at, event_id), start a session at the device's first event and at every event more than the gap after
the previous one, in whole seconds as DuckDB's date_diff('second', previous, current) counts them (dbt's
seconds_between); a gap of exactly the gap stays in the session. The session's id is md5(anonymous_id || '|' ||
session start), as int_events_sessionized.session_id (and so marts.sessions.session_id); the customer of a
session is the smallest customer id among its events (who logged in).

The gap has one home: `sessions.gap_minutes` in config/settings.yml. seg.transform.dbt passes it to dbt as the
var session_gap_minutes; gap() reads it here. tests/triggers/test_sessions.py holds dbt's sessions and these
equal, event by event, on a generated lake.
"""

from __future__ import annotations

import datetime as dt

from seg.core.config import Settings


def gap(settings: Settings) -> dt.timedelta:
    """The session gap: settings sessions.gap_minutes, which seg.transform.dbt also passes to dbt (settings refuse a
    second value in dbt.vars)."""
    minutes = settings.sessions.gap_minutes
    if minutes <= 0:
        raise ValueError(f"settings sessions.gap_minutes must be positive, got {minutes}")
    return dt.timedelta(minutes=minutes)


def sessionized(relation: str, session_gap: dt.timedelta) -> str:
    """A SELECT over `relation` (a table name or a parenthesised subquery with event_id, occurred_at, anonymous_id,
    customer_id): every column plus is_session_start (boolean), device_session_number (1, 2, .. per device),
    session_started_at, session_key (the session id) and session_customer_id."""
    seconds = int(session_gap.total_seconds())
    return f"""
        select *,
               md5(anonymous_id || '|' || cast(session_started_at as varchar)) as session_key
        from (
            select *,
                   min(occurred_at) over session as session_started_at,
                   min(customer_id) over session as session_customer_id
            from (
                select *,
                       sum(case when is_session_start then 1 else 0 end) over (
                           device rows between unbounded preceding and current row) as device_session_number
                from (
                    select *,
                           lag(occurred_at) over device is null
                           or date_diff('second', lag(occurred_at) over device, occurred_at) > {seconds}
                               as is_session_start
                    from {relation}
                    window device as (partition by anonymous_id order by occurred_at, event_id)
                )
                window device as (partition by anonymous_id order by occurred_at, event_id)
            )
            window session as (partition by anonymous_id, device_session_number)
        )
    """
