"""One evaluation of the triggers at `at`, written to the trigger tables, in one warehouse connection.

    summary = evaluate_and_write(settings, at)          # what the DAG task evaluate_triggers runs

Opens the warehouse (waiting up to warehouse.lock_timeout_s for another writer), gives the connection the
deployment's key for emails (re-keying member keys earlier versions wrote in clear), refreshes lapsing's
activity cache, evaluates (seg.triggers.sql, session gap from seg.triggers.sessions), merges the occurrences into
the tables and records the run (seg.triggers.tables). Landing and Redis are the micro-batch's other stages
(seg/pipeline/microbatch.py).

Trigger state moves only forward: an evaluation at an earlier time than the last one (a micro-batch rerun for an
old interval, `seg triggers run --at <past>`) is refused before anything is written (`EvaluationBehind`), since it
would rebuild current memberships as of then and reopen occurrences that have exited since. Re-running the last
`at` is allowed and changes nothing. The history already says who was in which trigger at any earlier time.
"""

from __future__ import annotations

import datetime as dt
import time

from seg.core.config import Settings
from seg.core.warehouse import connect_waiting
from seg.triggers import definitions, sessions, sql, tables


class EvaluationBehind(RuntimeError):
    """The evaluation time is earlier than the last evaluation: it would roll trigger state back."""


def evaluate_and_write(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
                       since: dt.datetime | None = None) -> dict:
    """Evaluate at `at` and write the tables (no landing, no Redis). `since` widens the read range (backfills).
    Returns the run's summary (active memberships per trigger, this batch's changes, seconds per step)."""
    cfg = cfg or definitions.load()
    session_gap = sessions.gap(settings)
    start = time.monotonic()
    con = connect_waiting(settings)  # waits up to warehouse.lock_timeout_s
    try:
        tables.ensure(con)
        latest = tables.last_evaluated_at(con)
        if latest is not None and at < latest:
            raise EvaluationBehind(
                f"triggers were last evaluated at {latest}; evaluating at the earlier {at} would move current "
                "memberships back in time, so nothing was written. Trigger state only moves forward: evaluate at "
                f"{latest} or later (marts.trigger_membership_history already holds who was in a trigger at {at})")
        tables.use_pii_key(con, settings.paths)
        rekeyed = tables.rekey_clear_emails(con)
        t0 = time.monotonic()
        activity = sql.activity_sources(settings.paths, cfg)
        if "orders" in activity:  # lapsing needs an order history; without one it reads nothing
            tables.refresh_activity_cache(con, settings.paths, activity, at)
        cache_s = round(time.monotonic() - t0, 3)
        info = sql.evaluate(con, settings.paths, cfg, at, since, session_gap)
        info["steps"] = {"activity_cache": cache_s, **info["steps"]}
        t0 = time.monotonic()
        tables.write(con, at, info["zones"], settings.lenses)
        info["steps"]["write"] = round(time.monotonic() - t0, 3)
        counts = dict(con.execute(f"select trigger, count(*) from {tables.CURRENT} group by all order by all").fetchall())
        changes = {f"{c}:{t}": n for c, t, n in con.execute(
            f"select change, trigger, count(*) from {tables.CHANGES} where evaluated_at = {tables.ts(at)} "
            "group by all order by all").fetchall()}
        summary = {"evaluated_at": at.isoformat(), "since": info["since"].isoformat(), "active": counts,
                   "active_total": sum(counts.values()), "changes": changes, "steps": info["steps"]}
        if rekeyed:
            summary["rekeyed_clear_emails"] = rekeyed
        seconds = round(time.monotonic() - start, 3)
        tables.record_run(con, at, info["since"], seconds, summary)
        summary["seconds"] = seconds
        return summary
    finally:
        con.close()
