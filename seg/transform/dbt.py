"""Run the dbt project (dbt_project/) in-process for one data directory and one as-of date.

    from seg.core import config
    from seg.transform import dbt
    summary = dbt.build(config.load(), "2025-03-31", exclude="tag:features")   # staging -> marts + tests
    summary = dbt.build(config.load(), "2025-03-31", select="tag:features")    # marts.customer_features

Everything dbt needs comes from the Settings handed in: SEG_DATA_DIR (the profile's DuckDB file and the lake
globs), the DuckDB limits (warehouse.memory_limit / threads), the key for hashing personal identifiers
(Settings.pii_key, in DBT_ENV_SECRET_SEG_PII_KEY: not a var, see PII_KEY_ENV), the vars (as_of_date,
dbt.lookback_days), and the target/log paths under `<data dir>/dbt/`, so two data directories never share state
(partial parse, run results). The environment is set for the duration of the call and restored afterwards.

dbt's console is quiet: warnings, errors and the closing "Done. PASS=.. WARN=.. ERROR=.." line only, while
`<data dir>/dbt/logs/dbt.log` keeps the full debug log. SEG_DBT_VERBOSE=1 (`seg run --verbose`) restores dbt's
normal per-node console output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seg.core import environment
from seg.core.config import REPO_ROOT, Settings

PROJECT_DIR = REPO_ROOT / "dbt_project"

# Node statuses that fail a build (dbt's RunStatus / TestStatus values).
FAILED_STATUSES = {"error", "fail", "runtime error"}

# Set to 1 for dbt's normal per-node console output (default: warnings and errors only). An environment variable
# rather than an argument: dbt runs inside the DAG's tasks (dags/ -> seg/pipeline/daily.py -> build()), several layers
# below `seg run --verbose`, and those tasks run in the `seg run` process (Airflow's dag.test()), so they see its
# environment; the variable also works for a scheduler's or a container's tasks and for tests, with no plumbing.
VERBOSE_ENV = "SEG_DBT_VERBOSE"
# The deployment's PII key (Settings.pii_key) reaches the profile's plugin (seg/transform/dbt_pii.py) in this
# variable, never as a --vars value: dbt logs its vars and writes them to run_results.json, and scrubs the values of
# DBT_ENV_SECRET_* variables from everything it prints or writes.
PII_KEY_ENV = "DBT_ENV_SECRET_SEG_PII_KEY"


class DbtError(RuntimeError):
    """A dbt invocation failed. `failures` lists {node, status, message} for every failed node."""

    def __init__(self, command: str, failures: list[dict[str, str]], detail: str | None = None):
        self.command = command
        self.failures = failures
        lines = [f"dbt {command} failed"]
        if detail:
            lines[0] += f": {detail}"
        for failure in failures:
            lines.append(f"  - {failure['node']} [{failure['status']}]: {failure['message']}")
        super().__init__("\n".join(lines))


def dbt_paths(settings: Settings) -> dict[str, Path]:
    root = settings.paths.root / "dbt"
    return {"target": root / "target", "logs": root / "logs"}


def _environment(settings: Settings) -> dict[str, str]:
    warehouse = settings.warehouse
    return {
        "SEG_DATA_DIR": str(settings.paths.root),
        "SEG_DUCKDB_MEMORY_LIMIT": warehouse.memory_limit,
        "SEG_DUCKDB_THREADS": str(warehouse.threads),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
        PII_KEY_ENV: settings.pii_key,
    }


def _vars(settings: Settings, as_of_date: str | dt.date | None,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """dbt vars: settings dbt.vars (optional overrides of dbt_project.yml vars), dbt.lookback_days, the money vars,
    as_of_date, then `extra` from the caller (the pipeline passes the audit schema and the lake's reporting currency:
    this module reads no stage's data)."""
    values: dict[str, Any] = dict(settings.dbt.vars)
    values["lookback_days"] = settings.dbt.lookback_days
    values["session_gap_minutes"] = settings.sessions.gap_minutes  # shared with seg.triggers
    # money: the configured reporting currency unless the caller passes the one the landed orders carry
    values["reporting_currency"] = settings.reporting_currency or "EUR"
    values["fx_max_rate_age_days"] = settings.fx.max_rate_age_days
    values.update({k: v for k, v in (extra or {}).items() if v is not None})
    if as_of_date is not None:
        as_of = as_of_date if isinstance(as_of_date, dt.date) else dt.date.fromisoformat(str(as_of_date))
        values["as_of_date"] = as_of.isoformat()
    return values


def verbose_from_env() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _log_args(verbose: bool) -> list[str]:
    """Console at info (dbt's per-node lines) when verbose, else at warn; the log file always at debug.

    --log-level-file must be explicit: dbt copies an explicit --log-level to the file level as well.
    """
    return ["--log-level", "info" if verbose else "warn", "--log-level-file", "debug"]


def _common_args(settings: Settings, verbose: bool = False) -> list[str]:
    paths = dbt_paths(settings)
    return [
        *_log_args(verbose),
        "--no-use-colors",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(paths["target"]),
        "--log-path",
        str(paths["logs"]),
    ]


def _stats_line_printer(command: str) -> Callable[[Any], None]:
    """A dbtRunner callback printing dbt's closing "Done. PASS=.. ERROR=.. TOTAL=.." line, which is an info
    event and so hidden from a quiet console."""

    def callback(event: Any) -> None:
        if event.info.name == "StatsLine":
            print(f"dbt {command}: {event.info.msg}", flush=True)

    return callback


def invoke(
    settings: Settings,
    command: list[str],
    as_of_date: str | dt.date | None = None,
    verbose: bool | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> Any:
    """Run one dbt command in-process (e.g. ["build", "--select", "x"]); returns dbt's result object.

    verbose: dbt's normal per-node console output; None (default) reads SEG_DBT_VERBOSE. Quiet or not, dbt
    prints warnings and errors, and the log file under <data dir>/dbt/logs keeps everything.
    Raises DbtError naming the failed nodes and their messages when the command does not succeed.
    """
    from dbt.cli.main import dbtRunner  # imported here: dbt is slow to import and not needed by every caller

    paths = dbt_paths(settings)
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    (settings.paths.root / "tmp" / "duckdb").mkdir(parents=True, exist_ok=True)
    if verbose is None:
        verbose = verbose_from_env()
    args = [*command, *_common_args(settings, verbose), "--vars",
            json.dumps(_vars(settings, as_of_date, extra_vars))]
    callbacks = [] if verbose else [_stats_line_printer(command[0])]
    with environment.setting(_environment(settings)):
        try:
            outcome = dbtRunner(callbacks=callbacks).invoke(args)
        finally:
            _release_warehouse()
    name = command[0]
    if not outcome.success:
        failures = _failures(outcome.result)
        detail = str(outcome.exception) if outcome.exception else None
        if not failures and not detail:
            detail = "see " + str(paths["logs"] / "dbt.log")
        raise DbtError(name, failures, detail)
    return outcome.result


def _release_warehouse() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after a command.

    Otherwise the warehouse file stays attached with dbt's configuration, and the next stage running in the same
    process (a gate, an Airflow `dag.test()`) gets "Can't open a connection to same database file with a
    different configuration", e.g. when it opens the file read-only.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a pinned dependency
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            environment.close()


def _failures(result: Any) -> list[dict[str, str]]:
    failures = []
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result.status, "value", node_result.status))
        if status in FAILED_STATUSES:
            message = (node_result.message or "").strip().replace("\n", " ")
            failures.append({"node": node_result.node.unique_id, "status": status, "message": message[:500]})
    return failures


def _summary(result: Any, started: float, command: str, as_of_date: str | None) -> dict[str, Any]:
    statuses: dict[str, Counter] = defaultdict(Counter)
    timings, warnings = [], []
    for node_result in getattr(result, "results", None) or []:
        node = node_result.node
        status = str(getattr(node_result.status, "value", node_result.status))
        statuses[str(node.resource_type)][status] += 1
        if status == "warn":
            warnings.append({"node": node.unique_id, "message": (node_result.message or "").strip()[:500]})
        timings.append((node.unique_id, round(float(node_result.execution_time or 0.0), 3)))
    timings.sort(key=lambda item: item[1], reverse=True)
    total = Counter()
    for counter in statuses.values():
        total.update(counter)
    return {
        "command": command,
        "as_of_date": as_of_date,
        "success": True,
        "nodes": sum(total.values()),
        "status_counts": dict(total),
        "by_resource_type": {kind: dict(counter) for kind, counter in sorted(statuses.items())},
        "elapsed_s": round(time.perf_counter() - started, 3),
        "dbt_elapsed_s": round(float(getattr(result, "elapsed_time", 0.0) or 0.0), 3),
        "slowest_nodes": timings[:10],
        "warnings": warnings,
    }


def build(
    settings: Settings,
    as_of_date: str | dt.date,
    select: str | None = None,
    exclude: str | None = None,
    full_refresh: bool = False,
    extra_vars: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`dbt build` (seeds, models, unit and data tests) for the as-of date.

    Incremental models (int_events_sessionized) update in place; full_refresh=True rebuilds them from the lake.

    Returns {"status_counts": {"success": n, "pass": n, "warn": n, ...}, "by_resource_type": {...},
    "elapsed_s": ..., "slowest_nodes": [(unique_id, seconds), ...], "warnings": [{node, message}, ...]};
    raises DbtError on any failed (error/fail) node. Tests with severity warn never fail the build.
    """
    started = time.perf_counter()
    command = ["build"]
    if select:
        command += ["--select", select]
    if exclude:
        command += ["--exclude", exclude]
    if full_refresh:
        command.append("--full-refresh")
    as_of = _vars(settings, as_of_date)["as_of_date"]
    result = invoke(settings, command, as_of, extra_vars=extra_vars)
    summary = _summary(result, started, "build", as_of)
    if summary["nodes"] == 0:
        raise DbtError("build", [], f"the selection (select={select!r}, exclude={exclude!r}) matched no node")
    summary["select"], summary["exclude"] = select, exclude
    return summary


def docs_generate(settings: Settings, as_of_date: str | dt.date | None = None) -> Path:
    """`dbt docs generate --static` into <data dir>/dbt/target; returns the path of index.html.

    index.html needs a web server (it fetches manifest.json and catalog.json): `dbt docs serve` or any static
    server on that directory. static_index.html beside it has both embedded and opens straight from disk.
    Without an as-of date the models are not compiled again (`--no-compile`): the catalog is read from the
    warehouse and the lineage from the project.
    """
    command = ["docs", "generate", "--static"]
    if as_of_date is None:
        command.append("--no-compile")
    invoke(settings, command, as_of_date)
    return dbt_paths(settings)["target"] / "index.html"
