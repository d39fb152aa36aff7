"""raw__ingest: one row per contract source for the ingest date: did the day arrive whole, fresh and plausible?

The contract suites (raw__<source>) check each landed row; this suite checks the day as a delivery, against the
landing manifests (lake/_manifests) and the trailing ingest dates. Before validating, `profile_ingest` (a prepare
step of the raw gate) writes `monitoring.ingest_profile`: per (as_of_date, source, ingest_date) over the as-of
date and the `history_days` before it, the manifest counts (files landed / rejected / duplicate, rows in / landed /
quarantined), the rows actually in the lake, the newest timestamp landed and the median amount. The batch is the
as-of date's row per source with the trailing medians beside it. Expectations (one each, over every source;
thresholds and severities in gates.yml, suites.raw__ingest):

    volume               rows landed within [volume_low, volume_high] x the trailing median of rows landed per
                         ingest date (only with >= min_history_days of history and a median >= volume_min_rows)
    freshness            the newest timestamp landed so far is at most freshness_hours old at the end of the day
    quarantine_share     rows quarantined / rows in (readable, non-duplicate files) above quarantine_warning
    quarantine_share_max  ... above quarantine_critical
    rejected_files       files that could not be read (kept whole under _rejected/)
    duplicate_files      exact copies of files already landed (quarantined whole)
    amount_distribution  median amount of the day within [amount_low, amount_high] x the trailing median of daily
                         medians (catches amounts in cents: plausible one by one, wrong as a whole)
    amount_outliers      rows whose amount is above amount_outlier_factor x the median amount of the source's own
                         trailing window (warning only: a genuinely large invoice is valid data, never quarantined;
                         the shared contract has no "typical" maximum)
    rows_reconcile       manifests: rows in = landed + quarantined, and the lake holds exactly the rows landed
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.suites._base import GateContext, SuiteBuilder, Target
from expectations.suites._contract import source_files
from seg.core.contract import load_contract

SUITE = "raw__ingest"
PROFILE = "monitoring.ingest_profile"


def _t(ctx: GateContext, name: str) -> Any:
    return ctx.policy.threshold(SUITE, name)


def _per_source(ctx: GateContext, name: str) -> dict[str, Any]:
    """A threshold that may be a number or {default: x, <source>: y}: the value for every contract source."""
    value = _t(ctx, name)
    sources = list(load_contract().sources)
    if not isinstance(value, dict):
        return dict.fromkeys(sources, value)
    return {s: value.get(s, value.get("default")) for s in sources}


def _case(values: dict[str, Any], column: str = "source") -> str:
    """SQL CASE choosing a per-source value (NULL for a source without one)."""
    whens = " ".join(f"when '{s}' then {v!r}" for s, v in values.items() if v is not None)
    return f"(case {column} {whens} else null end)" if whens else "null"


# --- prepare: the profile table ------------------------------------------------------------------------------------

def _manifest_counts(ctx: GateContext, source: str, day: dt.date) -> dict[str, int]:
    counts = dict.fromkeys(("files_landed", "files_rejected", "files_duplicate", "rows_in", "rows_landed",
                            "rows_quarantined", "dup_rows", "unbalanced_files"), 0)
    folder = ctx.settings.paths.manifests / source / f"ingest_date={day.isoformat()}"
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text())
        status = entry.get("status")
        if status == "rejected":
            counts["files_rejected"] += 1
            continue
        if status == "duplicate":
            counts["files_duplicate"] += 1
            counts["dup_rows"] += int(entry.get("rows_in") or 0)
            continue
        counts["files_landed"] += 1
        rows_in, landed, quarantined = (int(entry.get(k) or 0) for k in ("rows_in", "rows_landed", "rows_quarantined"))
        counts["rows_in"] += rows_in
        counts["rows_landed"] += landed
        counts["rows_quarantined"] += quarantined
        counts["unbalanced_files"] += int(rows_in != landed + quarantined)
    return counts


def profile_ingest(ctx: GateContext, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Replace the as-of date's rows of monitoring.ingest_profile (the gate's prepare step; needs the lake views)."""
    history_days = int(_t(ctx, "history_days"))
    first = ctx.as_of_date - dt.timedelta(days=history_days)
    days = [first + dt.timedelta(days=i) for i in range(history_days + 1)]
    amounts = _t(ctx, "amount_columns") or {}
    factor = float(_t(ctx, "amount_outlier_factor"))
    rows = []
    for source in load_contract().sources.values():
        amount = amounts.get(source.name)
        relation = ctx.relation("lake." + source.name)
        newest = f'max("{source.timestamp}")' if source.timestamp else "cast(null as timestamp)"
        median = f'median("{amount}")' if amount else "cast(null as double)"
        # "unusually large" is judged against the source's own amounts over the window, not a fixed maximum
        outliers = "cast(null as bigint)"
        if amount:
            window_median = f'(select median("{amount}") from {relation} where ingest_date between $1 and $2 and "{amount}" > 0)'
            outliers = f'count(*) filter (where "{amount}" > {factor} * {window_median})'
        lake = {d: (n, ts, m, o) for d, n, ts, m, o in con.execute(
            f"select ingest_date, count(*), {newest}, {median}, {outliers} from {relation} "
            "where ingest_date between $1 and $2 group by ingest_date", [first, ctx.as_of_date]).fetchall()}
        for day in days:
            counts = _manifest_counts(ctx, source.name, day)
            lake_rows, newest_at, amount_median, amount_outliers = lake.get(day, (0, None, None, None))
            rows.append((ctx.as_of_date, source.name, day, *counts.values(), lake_rows, newest_at, amount_median,
                         amount_outliers))
    con.execute("create schema if not exists monitoring")
    con.execute(f"""
        create table if not exists {PROFILE} (
            as_of_date date not null, source varchar not null, ingest_date date not null,
            files_landed integer, files_rejected integer, files_duplicate integer,
            rows_in bigint, rows_landed bigint, rows_quarantined bigint, duplicate_rows bigint,
            unbalanced_files integer, lake_rows bigint, newest_at timestamp, amount_median double,
            amount_outliers bigint
        )""")
    con.execute(f"alter table {PROFILE} add column if not exists amount_outliers bigint")  # warehouses from before
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {PROFILE} where as_of_date = ?", [ctx.as_of_date])
        con.executemany(f"insert into {PROFILE} values ({', '.join(['?'] * len(rows[0]))})", rows)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return []


# --- the suite ------------------------------------------------------------------------------------------------------

def target(ctx: GateContext) -> Target:
    profile = ctx.relation(PROFILE)
    query = f"""
select
    today.source,
    today.files_landed, today.files_rejected, today.files_duplicate, today.duplicate_rows,
    today.rows_in, today.rows_landed, today.rows_quarantined, today.unbalanced_files, today.lake_rows,
    history.history_days, history.median_rows,
    round(today.rows_landed / nullif(history.median_rows, 0), 4) as volume_ratio,
    today.rows_quarantined / nullif(today.rows_in, 0) as quarantine_share,
    seen.newest_at,
    today.amount_median, history.median_amount, today.amount_outliers,
    round(today.amount_median / nullif(history.median_amount, 0), 4) as amount_ratio
from {profile} as today
left join (
    select source, count(*) as history_days, median(rows_landed) as median_rows, median(amount_median) as median_amount
    from {profile}
    where as_of_date = {ctx.date_literal} and ingest_date < {ctx.date_literal} and rows_landed > 0
    group by source
) as history on history.source = today.source
left join (
    select source, max(newest_at) as newest_at
    from {profile}
    where as_of_date = {ctx.date_literal}
    group by source
) as seen on seen.source = today.source
where today.as_of_date = {ctx.date_literal} and today.ingest_date = {ctx.date_literal}
""".strip()
    return Target(query=query, requires=(profile,))


def _check(b: SuiteBuilder, check: str, where: str, columns: str, description: str, expectation_type: str) -> None:
    b.add(check, gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=f"select source, {columns} from {{batch}} where {where}", description=description),
        expectation_type=expectation_type)


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    min_history = int(_t(ctx, "min_history_days"))
    low, high, min_rows = (float(_t(ctx, k)) for k in ("volume_low", "volume_high", "volume_min_rows"))
    _check(b, "volume",
           f"history_days >= {min_history} and median_rows >= {min_rows} "
           f"and (volume_ratio < {low} or volume_ratio > {high})",
           "rows_landed, median_rows, volume_ratio, history_days",
           f"rows landed within [{low}, {high}] x the median of the previous {_t(ctx, 'history_days')} ingest dates",
           "expect_daily_volume_to_be_within_trailing_band")
    timed = {name for name, source in load_contract().sources.items() if source.timestamp}  # order_items has none
    hours = _case({s: h for s, h in _per_source(ctx, "freshness_hours").items() if s in timed})
    end = ctx.day_end.isoformat(sep=" ")
    # a source that never delivered is noted (and skipped) by its contract suite; one that stopped is stale
    delivered = ", ".join(f"'{s}'" for s in sorted(timed) if source_files(ctx, s)) or "null"
    _check(b, "freshness",
           f"source in ({delivered}) and {hours} is not null and "
           f"(newest_at is null or newest_at < timestamp '{end}' - to_hours(cast({hours} as bigint)))",
           f"newest_at, {hours} as max_age_hours",
           f"newest timestamp landed is at most freshness_hours old at {end}",
           "expect_newest_timestamp_to_be_recent")
    warn, crit = float(_t(ctx, "quarantine_warning")), float(_t(ctx, "quarantine_critical"))
    _check(b, "quarantine_share", f"quarantine_share > {warn}",
           "rows_in, rows_quarantined, round(quarantine_share, 4) as quarantine_share",
           f"at most {warn:.1%} of the rows of the day's files quarantined at landing",
           "expect_quarantine_share_to_be_below")
    _check(b, "quarantine_share_max", f"quarantine_share > {crit}",
           "rows_in, rows_quarantined, round(quarantine_share, 4) as quarantine_share",
           f"at most {crit:.1%} of the rows of the day's files quarantined at landing",
           "expect_quarantine_share_to_be_below")
    _check(b, "rejected_files", "files_rejected > 0", "files_rejected",
           "every file of the day could be read", "expect_no_rejected_files")
    _check(b, "duplicate_files", "files_duplicate > 0", "files_duplicate, duplicate_rows",
           "no file of the day is a copy of one already landed", "expect_no_duplicate_files")
    a_low, a_high = float(_t(ctx, "amount_low")), float(_t(ctx, "amount_high"))
    a_rows = float(_t(ctx, "amount_min_rows"))
    _check(b, "amount_distribution",
           f"amount_ratio is not null and history_days >= {min_history} and rows_landed >= {a_rows} "
           f"and (amount_ratio < {a_low} or amount_ratio > {a_high})",
           "amount_median, median_amount, amount_ratio",
           f"median amount of the day within [{a_low}, {a_high}] x the trailing median of daily medians",
           "expect_median_amount_to_be_within_trailing_band")
    _check(b, "amount_outliers", "amount_outliers > 0", "amount_outliers, amount_median",
           f"no amount above {float(_t(ctx, 'amount_outlier_factor')):g} x the source's median amount of the last "
           f"{_t(ctx, 'history_days')} ingest dates (a warning: large values are kept)",
           "expect_no_unusually_large_amounts")
    _check(b, "rows_reconcile",
           "files_landed + files_duplicate + files_rejected > 0 and (unbalanced_files > 0 or lake_rows <> rows_landed)",
           "rows_in, rows_landed, rows_quarantined, unbalanced_files, lake_rows",
           "manifests: rows in = landed + quarantined, and the lake holds the rows landed",
           "expect_landing_to_reconcile")
    return b.build()
