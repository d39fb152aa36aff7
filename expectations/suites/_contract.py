"""Raw suites derived from the data contract (seg/core/contract/sources.yml).

For one source and one as-of date D the batch is `lake.<source>` filtered on `ingest_date`: the rows of D, and
every earlier ingest date into which the run of D landed files (its manifests say `landed_on: D`): a file delivered
late into an older date folder, or a first run's backlog, is audited by the run that landed it, together with the
rest of its day. The expectations are:

    row_count        at least one row landed for the day D
    columns_present  every contract column and the lineage columns (_source_file, _row_number) exist
    column_type      the column's DuckDB type is the contract type
    not_null         required columns
    allowed_values   closed value lists (taxonomy event types included)
    pattern          identifier formats (regex, whole value)
    bounds           numeric / date min and max
    not_in_future    timestamps no later than the end of the ingest date + landing.future_tolerance_hours
    row_rule         the contract's row rules (DuckDB SQL)
    duplicate_key    the primary key is unique within each ingest date

The contract is the deployment's: the shared one plus its overlay (deployment.contract_overlay), as landing used.
Landing already quarantines rows that break the contract, so a failure here means landing and the contract
disagree (a landing bug, or a contract change landing has not picked up).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target
from seg.core.contract import Source, for_settings

LINEAGE_COLUMNS = ("_source_file", "_row_number")
NUMERIC_TYPES = ("integer", "bigint", "double")


def source_files(ctx: GateContext, source: str) -> list[Path]:
    return sorted((ctx.settings.paths.raw / source).glob("*/*.parquet"))


def landed_by_run(ctx: GateContext, source: str) -> list[dict]:
    """Manifest entries of the files the run of the as-of date landed into earlier ingest dates (late files, a first
    run's backlog). Entries from before landing recorded `landed_on` count as landed on their own ingest date."""
    as_of = ctx.as_of_date.isoformat()
    entries = []
    for path in sorted((ctx.settings.paths.manifests / source).glob("ingest_date=*/*.json")):
        if path.parent.name.removeprefix("ingest_date=") < as_of:  # the folder name: no need to parse the newer ones
            entry = json.loads(path.read_text())
            if entry.get("landed_on") == as_of:
                entries.append(entry)
    return entries


def audited_dates(ctx: GateContext, source: str) -> list[dt.date]:
    """The ingest dates the raw suites of `source` audit for the as-of date: it, and those its run landed rows into."""
    late = {e["ingest_date"] for e in landed_by_run(ctx, source) if e.get("status") == "landed" and e.get("rows_landed")}
    return [ctx.as_of_date, *(dt.date.fromisoformat(d) for d in sorted(late))]


def raw_target(ctx: GateContext, source: str) -> Target:
    dates = ", ".join(f"DATE '{d.isoformat()}'" for d in audited_dates(ctx, source))
    query = compat.relation_query(ctx.relation(f"lake.{source}"), where=f"ingest_date in ({dates})")
    skip = None
    if not source_files(ctx, source):
        skip = f"no Parquet file under {ctx.settings.paths.raw / source}: source not delivered yet, not validated"
    return Target(query=query, requires=(ctx.relation(f"lake.{source}"),), skip=skip)


def future_limit(ctx: GateContext) -> dt.datetime:
    """Latest acceptable timestamp for rows landed on the as-of date (the rule landing applies)."""
    tolerance = ctx.settings.landing.future_tolerance_hours
    return ctx.day_end + dt.timedelta(hours=tolerance)


def _bound(column_type: str, value: object) -> object:
    if value is None:
        return None
    if column_type in NUMERIC_TYPES:
        return float(value) if column_type == "double" else int(value)
    return str(value)  # dates / timestamps as ISO text: DuckDB casts the literal to the column type


def contract_suite(name: str, source_name: str, ctx: GateContext) -> SuiteBuilder:
    """A SuiteBuilder holding every contract-derived expectation of one source (callers may add more)."""
    source: Source = for_settings(ctx.settings).source(source_name)  # the deployment's overlay included
    b = SuiteBuilder(name, ctx)
    idx = ctx.index_columns

    # the batch may hold older ingest dates (files landed late by this run): the count is the as-of date's own
    b.add("row_count", gxe.ExpectTableRowCountToBeBetween(
        min_value=1, row_condition=Column("ingest_date") == ctx.as_of_date.isoformat(),
        description=f"rows landed in {source_name} for ingest_date {ctx.as_of_date}"))

    for column in (*source.columns, *LINEAGE_COLUMNS):
        b.add("columns_present", gxe.ExpectColumnToExist(column=column), column=column)

    for col in source.columns.values():
        b.add("column_type", compat.column_type_in(col.name, compat.ACCEPTED_TYPES[col.type]), column=col.name,
              expectation_type="expect_column_values_to_be_of_type")
        if col.required:
            b.add("not_null", gxe.ExpectColumnValuesToNotBeNull(column=col.name), column=col.name)
        if col.allowed:
            b.add("allowed_values", gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed)),
                  column=col.name)
        if col.pattern:
            b.add("pattern", compat.match_regex(col.name, col.pattern, index_columns=idx), column=col.name,
                  expectation_type="expect_column_values_to_match_regex")
        if col.min is not None or col.max is not None:
            b.add("bounds", gxe.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=_bound(col.type, col.min), max_value=_bound(col.type, col.max)),
                column=col.name)
        if col.type == "timestamp":
            b.add("not_in_future", gxe.ExpectColumnValuesToBeBetween(
                column=col.name, max_value=future_limit(ctx).isoformat(sep=" "),
                description=f"`{col.name}` is not later than {future_limit(ctx)} (end of ingest date + tolerance)"),
                column=col.name)

    for rule in source.rules:
        select = ", ".join(compat.sql_identifier(c) for c in idx) or "*"
        query = f"select {select} from {{batch}} where not coalesce(({_escape_braces(rule.sql)}), false)"
        b.add("row_rule", gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=query, description=f"row rule {rule.name}: {rule.description or rule.sql}"),
            key=f"rule.{rule.name}", expectation_type="expect_row_rule")

    # unique within each ingest date of the batch (a key delivered again on a later day is a new version, kept by
    # staging's latest_version); SQL, so that the samples name the rows by their lineage for compound keys too
    key = list(source.primary_key)
    keys = ", ".join(compat.sql_identifier(c) for c in key)
    select = ", ".join(compat.sql_identifier(c) for c in (*idx, *key))
    present = " and ".join(f"{compat.sql_identifier(c)} is not null" for c in key)
    query = (f"select {select} from {{batch}} where {present} "
             f"qualify count(*) over (partition by ingest_date, {keys}) > 1")
    b.add("duplicate_key", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query, description=f"({', '.join(key)}) is unique within each ingest date"),
        column=",".join(key),
        expectation_type="expect_column_values_to_be_unique" if len(key) == 1 else "expect_compound_columns_to_be_unique")
    return b


def build_contract_suite(name: str, source_name: str, ctx: GateContext) -> gx.ExpectationSuite:
    return contract_suite(name, source_name, ctx).build()


def _escape_braces(sql: str) -> str:
    return sql.replace("{", "{{").replace("}", "}}")
