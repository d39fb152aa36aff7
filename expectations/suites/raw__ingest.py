"""raw__ingest: one row per contract source for the ingest date: did the day arrive whole, fresh and plausible?

The contract suites (raw__<source>) check each landed row; this suite checks the day as a delivery, against the
landing manifests (lake/_manifests) and the trailing ingest dates. Before validating, `profile_ingest` (a prepare
step of the raw gate) writes `monitoring.ingest_profile`: per (as_of_date, source, ingest_date) over the as-of
date and the `history_days` before it, the manifest counts (files landed / rejected / duplicate, rows in / landed /
quarantined), the rows actually in the lake, the newest timestamp landed and the median amount. The as-of date's row
also counts the late files: those the run of the as-of date landed (manifest `landed_on`) into an earlier ingest
date that an earlier run had landed already (a first run's backlog is not late: nothing of those days was expected
yet). The batch is the as-of date's row per source with the trailing medians beside it. Expectations (one each,
over every source; thresholds and severities in gates.yml, suites.raw__ingest):

    volume               rows landed within [volume_low, volume_high] x the trailing median of rows landed per
                         ingest date (only with >= min_history_days of history and a median >= volume_min_rows)
    freshness            the newest timestamp landed so far is at most freshness_hours old at the end of the day
    quarantine_share     rows quarantined / rows in (readable, non-duplicate files, late ones included) above
                         quarantine_warning
    quarantine_share_max  ... above quarantine_critical
    rejected_files       files that could not be read (kept whole under _rejected/), late ones included
    duplicate_files      exact copies of files already landed (quarantined whole), late ones included
    amount_distribution  median amount of the day within [amount_low, amount_high] x the trailing median of daily
                         medians (catches amounts in cents: plausible one by one, wrong as a whole)
    amount_outliers      rows whose amount is above amount_outlier_factor x the median amount of the source's own
                         trailing window (warning only: a genuinely large invoice is valid data, never quarantined;
                         the shared contract has no "typical" maximum)
    rows_reconcile       manifests: rows in = landed + quarantined, and the lake holds exactly the rows landed
                         (the day's, and the late files' own rows)
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.suites._base import GateContext, SuiteBuilder, Target
from expectations.suites._contract import landed_by_run, source_files
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

COUNTS = ("files_landed", "files_rejected", "files_duplicate", "rows_in", "rows_landed", "rows_quarantined",
          "dup_rows", "unbalanced_files")
LATE = ("late_files", "late_files_rejected", "late_files_duplicate", "late_rows_in", "late_rows_landed",
        "late_rows_quarantined", "late_unbalanced_files", "late_lake_rows")


def _count(entries: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTS, 0)
    for entry in entries:
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


def _day_entries(ctx: GateContext, source: str, day: dt.date) -> list[dict]:
    folder = ctx.settings.paths.manifests / source / f"ingest_date={day.isoformat()}"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _manifest_counts(ctx: GateContext, source: str, day: dt.date) -> dict[str, int]:
    return _count(_day_entries(ctx, source, day))


def late_files(ctx: GateContext, source: str) -> list[dict]:
    """Manifest entries of the files the as-of date's run landed into an earlier ingest date that an earlier run
    had landed already: delivered late (entries without `landed_on` were landed on their own ingest date)."""
    as_of = ctx.as_of_date.isoformat()
    by_day: dict[str, list[dict]] = {}
    for entry in landed_by_run(ctx, source):
        by_day.setdefault(entry["ingest_date"], []).append(entry)
    late = []
    for day, entries in by_day.items():
        earlier = [e for e in _day_entries(ctx, source, dt.date.fromisoformat(day))
                   if (e.get("landed_on") or e.get("ingest_date")) < as_of]
        if earlier:
            late += entries
    return late


def _late_counts(ctx: GateContext, con: duckdb.DuckDBPyConnection, source: str, relation: str) -> dict[str, int]:
    entries = late_files(ctx, source)
    counts = _count(entries)
    lake_rows = 0
    landed = [e for e in entries if e.get("status") == "landed"]
    if landed:
        days = sorted({e["ingest_date"] for e in landed})
        lake_rows = con.execute(
            f"select count(*) from {relation} where ingest_date in ({', '.join(['?'] * len(days))}) "
            f"and _source_file in ({', '.join(['?'] * len(landed))})",
            [*(dt.date.fromisoformat(d) for d in days), *(e["file"] for e in landed)]).fetchone()[0]
    late = dict(zip(LATE, (counts["files_landed"] + counts["files_rejected"] + counts["files_duplicate"],
                           counts["files_rejected"], counts["files_duplicate"], counts["rows_in"],
                           counts["rows_landed"], counts["rows_quarantined"], counts["unbalanced_files"], lake_rows),
                    strict=True))
    return late


PROFILE_COLUMNS = ("as_of_date", "source", "ingest_date", "files_landed", "files_rejected", "files_duplicate",
                   "rows_in", "rows_landed", "rows_quarantined", "duplicate_rows", "unbalanced_files", "lake_rows",
                   "newest_at", "amount_median", "amount_outliers", *LATE)


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
        late = _late_counts(ctx, con, source.name, relation)
        for day in days:
            counts = _manifest_counts(ctx, source.name, day)
            lake_rows, newest_at, amount_median, amount_outliers = lake.get(day, (0, None, None, None))
            day_late = late.values() if day == ctx.as_of_date else [0] * len(LATE)  # the run's late files: its day
            rows.append((ctx.as_of_date, source.name, day, *counts.values(), lake_rows, newest_at, amount_median,
                         amount_outliers, *day_late))
    con.execute("create schema if not exists monitoring")
    con.execute(f"""
        create table if not exists {PROFILE} (
            as_of_date date not null, source varchar not null, ingest_date date not null,
            files_landed integer, files_rejected integer, files_duplicate integer,
            rows_in bigint, rows_landed bigint, rows_quarantined bigint, duplicate_rows bigint,
            unbalanced_files integer, lake_rows bigint, newest_at timestamp, amount_median double,
            amount_outliers bigint
        )""")
    for column in ("amount_outliers", *LATE):  # warehouses from before these columns
        con.execute(f"alter table {PROFILE} add column if not exists {column} bigint")
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {PROFILE} where as_of_date = ?", [ctx.as_of_date])
        con.executemany(f"insert into {PROFILE} ({', '.join(PROFILE_COLUMNS)}) "
                        f"values ({', '.join(['?'] * len(PROFILE_COLUMNS))})", rows)
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
    today.late_files, today.late_files_rejected, today.late_files_duplicate, today.late_rows_in,
    today.late_rows_landed, today.late_rows_quarantined, today.late_unbalanced_files, today.late_lake_rows,
    history.history_days, history.median_rows,
    round(today.rows_landed / nullif(history.median_rows, 0), 4) as volume_ratio,
    (today.rows_quarantined + today.late_rows_quarantined) / nullif(today.rows_in + today.late_rows_in, 0)
        as quarantine_share,
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


def _hours(by_source: dict[str, Any]) -> str:
    """freshness_hours in words: '36 hours', or per source when they differ."""
    values = {s: h for s, h in by_source.items() if h is not None}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values())):g} hours"
    return ", ".join(f"{s} {h:g} h" for s, h in sorted(values.items()))


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
    max_age = {s: h for s, h in _per_source(ctx, "freshness_hours").items() if s in timed}
    hours = _case(max_age)
    end = ctx.day_end.isoformat(sep=" ")
    # a source that never delivered is noted (and skipped) by its contract suite; one that stopped is stale
    delivered = ", ".join(f"'{s}'" for s in sorted(timed) if source_files(ctx, s)) or "null"
    _check(b, "freshness",
           f"source in ({delivered}) and {hours} is not null and "
           f"(newest_at is null or newest_at < timestamp '{end}' - to_hours(cast({hours} as bigint)))",
           f"newest_at, {hours} as max_age_hours",
           f"newest timestamp landed is recent at {end}: at most {_hours(max_age)} old (freshness_hours)",
           "expect_newest_timestamp_to_be_recent")
    warn, crit = float(_t(ctx, "quarantine_warning")), float(_t(ctx, "quarantine_critical"))
    shares = "rows_in, rows_quarantined, late_rows_in, late_rows_quarantined, round(quarantine_share, 4) as quarantine_share"
    _check(b, "quarantine_share", f"quarantine_share > {warn}", shares,
           f"at most {warn:.1%} of the rows of the day's files (and of late files) quarantined at landing",
           "expect_quarantine_share_to_be_below")
    _check(b, "quarantine_share_max", f"quarantine_share > {crit}", shares,
           f"at most {crit:.1%} of the rows of the day's files (and of late files) quarantined at landing",
           "expect_quarantine_share_to_be_below")
    _check(b, "rejected_files", "files_rejected + late_files_rejected > 0", "files_rejected, late_files_rejected",
           "every file of the day, and every late file, could be read", "expect_no_rejected_files")
    _check(b, "duplicate_files", "files_duplicate + late_files_duplicate > 0",
           "files_duplicate, duplicate_rows, late_files_duplicate",
           "no file of the day, and no late file, is a copy of one already landed", "expect_no_duplicate_files")
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
           "(files_landed + files_duplicate + files_rejected > 0 and (unbalanced_files > 0 or lake_rows <> rows_landed)) "
           "or late_unbalanced_files > 0 or late_lake_rows <> late_rows_landed",
           "rows_in, rows_landed, rows_quarantined, unbalanced_files, lake_rows, late_rows_landed, late_lake_rows",
           "manifests: rows in = landed + quarantined, and the lake holds the rows landed (late files' included)",
           "expect_landing_to_reconcile")
    return b.build()
