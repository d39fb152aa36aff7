"""The quality-gate runner: validate one stage's data with Great Expectations and record the verdict.

    result = run_gate(settings, "raw", as_of_date)     # raises GateFailed when a critical expectation fails

A gate is a list of suites (GATES below). For each suite the runner

1. asks the suite for its target (a SQL query on the warehouse) and checks the relations it needs exist
   (a missing mart is a critical failure; a raw source that never delivered a file is skipped with a note);
2. validates all targets in one GX checkpoint (`gate__<gate>`) through GX's SQL datasource on the DuckDB file,
   so every metric runs as SQL in DuckDB (nothing is loaded into pandas);
3. records every expectation: the GX result JSON in `reports/gx/<date>/<gate>.json`, Data Docs under
   `reports/data_docs/`, the rows of (as_of_date, gate) in `monitoring.gate_results` (replaced, so reruns are
   idempotent) and a short log summary;
4. raises GateFailed when a critical expectation failed, after everything was recorded. Severities come from
   expectations/gates.yml.

DuckDB has one writer per file: the runner opens the warehouse read-write only to refresh the lake views and to
write its results, validates through a read-only engine, and holds `<data>/gx/.gate.lock` for the whole run.
The caller must not hold a warehouse connection while a gate runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import great_expectations as gx
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig

from expectations import data_docs
from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, Policy, Target
from expectations.suites._contract import LINEAGE_COLUMNS, source_files
from expectations.suites.raw__ingest import profile_ingest
from seg.core import warehouse
from seg.core.config import Settings
from seg.core.contract import DUCKDB_TYPES, SOURCES, load_contract

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
DOCS_SITE = data_docs.SITE
RESULTS_TABLE = "monitoring.gate_results"
SQL_EXPECTATION = "unexpected_rows_expectation"

Prepare = Callable[[GateContext, duckdb.DuckDBPyConnection], list[str]]


# --- gates -----------------------------------------------------------------------------------------------------

def refresh_lake_views(ctx: GateContext, con: duckdb.DuckDBPyConnection) -> list[str]:
    """One view per contract source in schema `lake` over its Parquet partitions.

    A source without any file gets a typed empty view (as dbt's lake_source() does), so queries over the lake
    never fail on a source that has not delivered yet. Returns notes for those sources.
    """
    notes = []
    schema = ctx.relation("lake.x").split(".")[0]
    con.execute(f"create schema if not exists {schema}")
    for source in load_contract().sources.values():
        view = ctx.relation(f"lake.{source.name}")
        if source_files(ctx, source.name):
            glob = str(ctx.settings.paths.raw / source.name / "*" / "*.parquet").replace("'", "''")
            con.execute(
                f"create or replace view {view} as select * from read_parquet('{glob}', hive_partitioning = true, "
                "union_by_name = true, hive_types = {'ingest_date': DATE})"
            )
        else:
            columns = [f"cast(null as {DUCKDB_TYPES[c.type]}) as \"{c.name}\"" for c in source.columns.values()]
            columns += ["cast(null as varchar) as _source_file", "cast(null as bigint) as _row_number",
                        "cast(null as date) as ingest_date"]
            con.execute(f"create or replace view {view} as select {', '.join(columns)} where false")
            notes.append(f"{source.name}: no files in the lake yet, {view} is an empty view")
    return notes


@dataclass(frozen=True)
class Gate:
    name: str
    suites: tuple[str, ...]                  # modules under expectations.suites
    prepare: tuple[Prepare, ...] = ()        # run with a read-write warehouse connection before validating
    index_columns: tuple[str, ...] = ()      # identify a failing row in every batch of this gate
    per_lens: bool = False                   # run once per segmentation: recorded as `<name>.<lens>`

    def label(self, settings: Settings) -> str:
        """The name results are recorded under (monitoring.gate_results, reports/gx, Data Docs runs)."""
        return f"{self.name}.{settings.lens}" if self.per_lens else self.name


GATES: dict[str, Gate] = {
    "raw": Gate(
        "raw",
        suites=(*(f"raw__{s}" for s in SOURCES), "raw__ingest"),
        # raw__ingest compares the day with the manifests and the trailing days: profile them first
        prepare=(refresh_lake_views, profile_ingest),
        index_columns=LINEAGE_COLUMNS,
    ),
    "marts": Gate(
        "marts",
        # keys, ranges and the revenue reconciliation are dbt tests (they stop dbt_build first); the gate requires
        # every mart and a non-empty customers table
        suites=("mart__customers", "mart__customer_rfm", "mart__orders"),
    ),
    # features are built after the marts gate (dbt models tagged `features`) and checked before any model sees them
    "features": Gate("features", suites=("mart__customer_features", "mart__customer_behaviour_features")),
    # one run per lens (settings.lens): the suite reads that lens's rows
    "segments": Gate("segments", suites=("segments__assignments",), per_lens=True),
}


# --- results ---------------------------------------------------------------------------------------------------

@dataclass
class ExpectationRow:
    suite: str
    expectation: str        # expectation type (the logical one for SQL-backed checks)
    key: str                # unique within the suite, e.g. "order_id.not_null"
    column: str | None
    severity: str           # critical | warning
    success: bool
    observed_value: str | None
    unexpected_count: int | None
    sample_values: list[Any] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        what = f"({self.column})" if self.column else f"[{self.key}]"
        parts = [f"{self.suite} / {self.expectation} {what}"]
        if self.error:
            parts.append(f"error: {self.error}")
        else:
            parts.append(f"observed {self.observed_value}")
            if self.unexpected_count is not None and "unexpected" not in str(self.observed_value):
                parts.append(f"unexpected {self.unexpected_count}")
        if self.sample_values:
            parts.append("samples " + _to_text(self.sample_values))
        return ": ".join(parts[:1]) + ": " + ", ".join(parts[1:])


@dataclass
class GateResult:
    gate: str
    as_of_date: dt.date
    success: bool
    expectations: list[ExpectationRow]
    warnings: int                    # failed warning-level expectations
    critical_failures: int
    notes: list[str]
    result_path: Path                # GX validation results (JSON)
    data_docs_index: Path
    checked_at: dt.datetime
    seconds: float

    def failures(self, severity: str | None = None) -> list[ExpectationRow]:
        return [r for r in self.expectations if not r.success and (severity is None or r.severity == severity)]

    def summary(self) -> dict[str, Any]:
        """Small JSON-serialisable summary (e.g. an Airflow task's return value)."""
        return {
            "gate": self.gate,
            "as_of_date": self.as_of_date.isoformat(),
            "success": self.success,
            "expectations": len(self.expectations),
            "critical_failures": self.critical_failures,
            "warnings": self.warnings,
            "failed": [f"{r.severity}: {r.suite} {r.key}" for r in self.failures()],
            "notes": self.notes,
            "result_path": str(self.result_path),
            "data_docs_index": str(self.data_docs_index),
            "seconds": round(self.seconds, 2),
        }


class GateFailed(Exception):
    """A critical expectation failed; everything was recorded before this was raised."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        critical = result.failures("critical")
        lines = [f"gate {result.gate!r} failed for {result.as_of_date}: "
                 f"{len(critical)} critical expectation(s) failed"]
        lines += [f"- {row.describe()}" for row in critical]
        lines.append(f"results: {result.result_path}; Data Docs: {result.data_docs_index}")
        super().__init__("\n".join(lines))


# --- the runner ------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    suite: str
    module: ModuleType
    target: Target
    missing: list[str]
    expectations: gx.ExpectationSuite | None = None  # built when the suite is validated


def run_gate(settings: Settings, gate: str, as_of_date: dt.date | str, *, schemas: dict[str, str] | None = None,
             policy: Policy | None = None) -> GateResult:
    """Validate gate `gate` for `as_of_date`; returns the result or raises GateFailed (critical failure).

    schemas: logical -> physical schema (e.g. {"marts": "marts_staging"}) to audit a write-audit-publish
    staging schema before it is published; policy: a Policy other than expectations/gates.yml.
    """
    if gate not in GATES:
        raise KeyError(f"unknown gate {gate!r}; known: {', '.join(GATES)}")
    if isinstance(as_of_date, str):
        as_of_date = dt.date.fromisoformat(as_of_date)
    elif isinstance(as_of_date, dt.datetime):
        as_of_date = as_of_date.date()
    spec = GATES[gate]
    started = time.perf_counter()
    ctx = GateContext(settings=settings, gate=spec.label(settings), as_of_date=as_of_date, policy=policy or Policy.load(),
                      schemas=dict(schemas or {}), index_columns=spec.index_columns)
    checked_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    compat.install()

    with _gate_lock(settings):
        notes: list[str] = []
        with warehouse.connect(settings) as con:
            for prepare in spec.prepare:
                notes += prepare(ctx, con)
            plans = _plan(ctx, con, spec)
        for plan in plans:
            if plan.target.skip:
                notes.append(f"{plan.suite}: skipped: {plan.target.skip}")
        runnable = [p for p in plans if not p.target.skip and not p.missing]
        for plan in runnable:
            plan.expectations = plan.module.build_suite(ctx)
        validations, docs_index = _validate(ctx, runnable)
        rows = _missing_rows(ctx, plans) + _rows(ctx, runnable, validations)
        _add_sql_samples(ctx, runnable, rows)
        data_docs.publish(ctx, validations, rows)  # severity and values seen in the pages; assets served locally

        critical = sum(1 for r in rows if not r.success and r.severity == "critical")
        warnings = sum(1 for r in rows if not r.success and r.severity == "warning")
        result = GateResult(
            gate=ctx.gate, as_of_date=as_of_date, success=critical == 0, expectations=rows, warnings=warnings,
            critical_failures=critical, notes=notes,
            result_path=settings.paths.reports / "gx" / as_of_date.isoformat() / f"{ctx.gate}.json",
            data_docs_index=docs_index, checked_at=checked_at, seconds=0.0,
        )
        with warehouse.connect(settings) as con:
            _record(con, result)
        result.seconds = time.perf_counter() - started
        _write_json(result, validations)
    _log_summary(result)
    if not result.success:
        raise GateFailed(result)
    return result


@contextlib.contextmanager
def _gate_lock(settings: Settings) -> Iterator[None]:
    """One gate at a time per data directory (GX's file context and DuckDB's single writer)."""
    lock_path = settings.paths.root / "gx" / ".gate.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _plan(ctx: GateContext, con: duckdb.DuckDBPyConnection, spec: Gate) -> list[_Plan]:
    plans = []
    for name in spec.suites:
        module = importlib.import_module(f"expectations.suites.{name}")
        if module.SUITE != name:
            raise ValueError(f"expectations.suites.{name} declares SUITE = {module.SUITE!r}")
        target = module.target(ctx)
        missing = [] if target.skip else [r for r in target.requires if not _relation_exists(con, r)]
        plans.append(_Plan(name, module, target, missing))
    return plans


def _relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    schema, _, table = relation.partition(".")
    return warehouse.table_exists(con, schema, table)


def _context(ctx: GateContext) -> Any:
    """The file-backed GX context under the data directory (created on first use), Data Docs in reports/."""
    paths = ctx.settings.paths
    context = gx.get_context(mode="file", project_root_dir=str(paths.root))
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(paths.reports / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    if ctx.policy.data_docs_results_limit:
        site["site_index_builder"]["validation_results_limit"] = int(ctx.policy.data_docs_results_limit)
    sites = context.list_data_docs_sites()
    if DOCS_SITE not in sites:
        context.add_data_docs_site(DOCS_SITE, site)
    elif sites[DOCS_SITE] != site:
        context.update_data_docs_site(DOCS_SITE, site)
    for other in [s for s in sites if s != DOCS_SITE]:  # the default site would write inside gx/uncommitted
        context.delete_data_docs_site(other)
    bars = context.variables.progress_bars
    if bars is None or bool(bars["globally"] if isinstance(bars, dict) else bars.globally):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    return context


def _validate(ctx: GateContext, plans: list[_Plan]) -> tuple[dict[str, Any], Path]:
    """Run the gate's checkpoint; returns {suite: ExpectationSuiteValidationResult} and the Data Docs index."""
    context = _context(ctx)
    docs_index = ctx.settings.paths.reports / "data_docs" / "index.html"
    try:
        datasource = context.data_sources.add_or_update_sql(
            name=DATASOURCE, connection_string=compat.connection_string(ctx.settings),
            kwargs=compat.datasource_kwargs(ctx.settings),
        )
        definitions = []
        for plan in plans:
            asset = datasource.add_query_asset(name=plan.suite, query=plan.target.query)
            batch = asset.add_batch_definition_whole_table("batch")
            suite = context.suites.add_or_update(plan.expectations)
            definitions.append(context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=plan.suite, data=batch, suite=suite)))
        if not definitions:
            context.build_data_docs(site_names=[DOCS_SITE])
            return {}, docs_index
        result_format: dict[str, Any] = {"result_format": "SUMMARY",
                                         "partial_unexpected_count": ctx.policy.sample_size}
        if ctx.index_columns:
            result_format["unexpected_index_column_names"] = list(ctx.index_columns)
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"gate__{ctx.gate}",
            validation_definitions=definitions,
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])],
            result_format=result_format,
        ))
        run = checkpoint.run(run_id=RunIdentifier(run_name=f"{ctx.gate}__{ctx.as_of_date.isoformat()}"))
        validations = {vr.suite_name: vr for vr in run.run_results.values()}
    finally:
        compat.release(context)
    return validations, docs_index


def _missing_rows(ctx: GateContext, plans: list[_Plan]) -> list[ExpectationRow]:
    return [
        ExpectationRow(
            suite=p.suite, expectation="expect_table_to_exist", key=f"{relation}.table_exists", column=None,
            severity=ctx.policy.severity(p.suite, "table_exists", f"{relation}.table_exists"), success=False,
            observed_value=f"{relation} does not exist", unexpected_count=None,
            error=f"{relation} does not exist in {ctx.settings.paths.warehouse}: has the stage before this gate run?",
        )
        for p in plans if not p.target.skip for relation in p.missing
    ]


def _rows(ctx: GateContext, plans: list[_Plan], validations: dict[str, Any]) -> list[ExpectationRow]:
    rows = []
    for plan in plans:
        for r in validations[plan.suite].results:
            config = r.expectation_config
            meta = config.meta or {}
            result = r.result or {}
            error = _exception_message(r.exception_info)
            column = meta.get("column") or config.kwargs.get("column")
            if column is None and config.kwargs.get("column_list"):
                column = ",".join(config.kwargs["column_list"])
            rows.append(ExpectationRow(
                suite=plan.suite,
                expectation=meta.get("expectation_type") or config.type,
                key=meta.get("key") or config.type,
                column=column,
                severity=meta.get("severity") or ctx.policy.severity(plan.suite, config.type, config.type),
                success=bool(r.success),
                observed_value=_observed(config.type, result, error),
                unexpected_count=_unexpected_count(config.type, result),
                sample_values=_samples(result, ctx.policy.sample_size),
                error=error,
            ))
    return rows


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():  # {metric id: {raised_exception, exception_message, ...}}
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _observed(expectation_type: str, result: dict[str, Any], error: str | None) -> str | None:
    if error:
        return f"error: {error}"
    if expectation_type == SQL_EXPECTATION and isinstance(result.get("observed_value"), int):
        return f"{result['observed_value']} unexpected rows"
    if "observed_value" in result:
        return _to_text(result["observed_value"])
    if "unexpected_count" in result:
        total = result.get("element_count")
        if not total:
            return "no rows"
        return f"{result['unexpected_count'] or 0} of {total} rows unexpected"
    return None


def _unexpected_count(expectation_type: str, result: dict[str, Any]) -> int | None:
    if "unexpected_count" in result:
        return int(result["unexpected_count"] or 0)  # None on an empty batch
    if expectation_type == SQL_EXPECTATION and isinstance(result.get("observed_value"), int):
        return result["observed_value"]  # an UnexpectedRowsExpectation observes its unexpected row count
    return None


def _samples(result: dict[str, Any], size: int) -> list[Any]:
    rows = result.get("partial_unexpected_index_list") or result.get("partial_unexpected_list") or []
    return list(rows)[:size]


def _add_sql_samples(ctx: GateContext, plans: list[_Plan], rows: list[ExpectationRow]) -> None:
    """A few rows of each failed SQL expectation (GX returns them only with result_format COMPLETE, see W7)."""
    queries = {}
    for plan in plans:
        for expectation in plan.expectations.expectations:
            query = getattr(expectation, "unexpected_rows_query", None)
            if query:
                queries[(plan.suite, expectation.meta["key"])] = compat.substitute_batch(query, plan.target.query)
    failed = [r for r in rows if (r.suite, r.key) in queries and not r.success and r.error is None]
    if not failed:
        return
    with warehouse.connect(ctx.settings, read_only=True) as con:
        compat.configure(con)
        for row in failed:
            cursor = con.execute(f"select * from ({queries[(row.suite, row.key)]}) limit {ctx.policy.sample_size}")
            names = [d[0] for d in cursor.description]
            row.sample_values = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _record(con: duckdb.DuckDBPyConnection, result: GateResult) -> None:
    """Replace this (as_of_date, gate)'s rows in monitoring.gate_results."""
    con.execute("create schema if not exists monitoring")
    con.execute(f"""
        create table if not exists {RESULTS_TABLE} (
            as_of_date date not null,
            gate varchar not null,
            suite varchar not null,
            expectation varchar not null,
            expectation_key varchar not null,
            column_name varchar,
            severity varchar not null,
            success boolean not null,
            observed_value varchar,
            unexpected_count bigint,
            sample_values varchar,
            checked_at timestamp not null
        )""")
    rows = [
        (result.as_of_date, result.gate, r.suite, r.expectation, r.key, r.column, r.severity, r.success,
         r.observed_value, r.unexpected_count, _to_text(r.sample_values) if r.sample_values else None,
         result.checked_at)
        for r in result.expectations
    ]
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {RESULTS_TABLE} where as_of_date = ? and gate = ?", [result.as_of_date, result.gate])
        if rows:
            con.executemany(f"insert into {RESULTS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def _write_json(result: GateResult, validations: dict[str, Any]) -> None:
    document = {
        "gate": result.gate,
        "as_of_date": result.as_of_date.isoformat(),
        "success": result.success,
        "critical_failures": result.critical_failures,
        "warnings": result.warnings,
        "checked_at": result.checked_at.isoformat(),
        "seconds": round(result.seconds, 3),
        "notes": result.notes,
        "data_docs_index": str(result.data_docs_index),
        "expectations": [asdict(r) for r in result.expectations],
        "validation_results": {suite: vr.to_json_dict() for suite, vr in validations.items()},
    }
    result.result_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.result_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, default=str))
    tmp.replace(result.result_path)


def _log_summary(result: GateResult) -> None:
    verdict = "passed" if result.success else "FAILED"
    log.info("gate %s %s for %s: %d expectations, %d critical failure(s), %d warning(s) in %.1fs; Data Docs %s",
             result.gate, verdict, result.as_of_date, len(result.expectations), result.critical_failures,
             result.warnings, result.seconds, result.data_docs_index)
    for note in result.notes:
        log.info("gate %s: %s", result.gate, note)
    for row in result.failures():
        (log.error if row.severity == "critical" else log.warning)("gate %s %s: %s", result.gate, row.severity,
                                                                     row.describe())


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=False)
