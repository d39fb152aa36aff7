"""`seg run`: execute the daily DAG for one date through Airflow itself (`dag.test()`), in this process.

This is the one module of the package that imports Airflow. Airflow reads its configuration when it is first
imported, so `airflow_env()` must be applied to os.environ before that: every data directory gets its own
AIRFLOW_HOME and metadata database (SQLite by default; AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, e.g. PostgreSQL,
wins when set), so two data directories never share state.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass

from seg.core.config import REPO_ROOT, Settings

DAGS_FOLDER = REPO_ROOT / "dags"


def airflow_env(settings: Settings, log_level: str | None = None) -> dict[str, str]:
    home = settings.paths.airflow_home
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(settings.airflow.parallelism),
        "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "False",
        "AIRFLOW__API__PORT": str(settings.airflow.api_port),
        "SEG_DATA_DIR": str(settings.paths.root),
        # MLflow's download progress bars would fill the task logs
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    if log_level:
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = log_level
    # an explicit metadata database (e.g. PostgreSQL, as in docker-compose) wins over the embedded SQLite
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = os.environ.get(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}"
    )
    return env


@dataclass
class StageResult:
    task_id: str
    state: str
    seconds: float | None


def ensure_pool(name: str) -> None:
    """The one-slot pool every warehouse-writing task of every DAG takes: DuckDB allows one writer per file."""
    from airflow.models.pool import Pool

    if Pool.get_pool(name) is None:
        Pool.create_or_update_pool(name, slots=1, description="one DuckDB writer", include_deferred=False)


def run_dag(settings: Settings, logical: dt.date | dt.datetime, dag_id: str | None = None,
            log_level: str | None = None) -> tuple[str, list[StageResult]]:
    """Run a DAG (default: segmentation_daily) for one logical date/time with dag.test(); returns the run state
    and per-task results."""
    settings.paths.airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(settings, log_level))

    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.initdb()
    ensure_pool(settings.airflow.warehouse_pool)
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[dag_id or settings.airflow.dag_id]
    if isinstance(logical, dt.datetime):
        logical_date = pendulum.instance(logical if logical.tzinfo else logical.replace(tzinfo=dt.UTC))
    else:
        logical_date = pendulum.datetime(logical.year, logical.month, logical.day, tz="UTC")
    dag_run = dag.test(logical_date=logical_date)
    stages = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.start_date or logical_date, t.task_id)):
        seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
        stages.append(StageResult(ti.task_id, str(ti.state.value if hasattr(ti.state, "value") else ti.state), seconds))
    state = str(dag_run.state.value if hasattr(dag_run.state, "value") else dag_run.state)
    return state, stages


def print_stages(dag_id: str, state: str, stages: list[StageResult], logical, wall: float, out=sys.stdout) -> None:
    print(f"\n{dag_id} {logical}: {state.upper()} in {wall:.1f} s", file=out)
    print(f"  {'stage':<28}{'state':<18}{'seconds':>8}", file=out)
    for s in stages:
        secs = f"{s.seconds:8.1f}" if s.seconds is not None else "       -"
        print(f"  {s.task_id:<28}{s.state:<18}{secs}", file=out)


class RunRefused(ValueError):
    """The run cannot be made as asked (e.g. a date before `airflow.earliest_date`); the message says why."""


def earliest_date(settings: Settings) -> dt.date:
    return settings.airflow.earliest_date


def check_date(settings: Settings, logical: dt.date | dt.datetime) -> None:
    day = logical.date() if isinstance(logical, dt.datetime) else logical
    first = earliest_date(settings)
    if day < first:
        raise RunRefused(f"{day} is before airflow.earliest_date ({first}), the DAGs' start_date: Airflow would run "
                         f"no task for it. Lower airflow.earliest_date in the settings to run dates that old.")


def run(settings: Settings, logical: dt.date | dt.datetime, dag_id: str | None = None, log_level: str | None = None) -> int:
    """Run the DAG for one date; 0 only when the run succeeded AND at least one task ran (a run in which nothing
    ran is a failure: it would otherwise print SUCCESS having done nothing)."""
    check_date(settings, logical)
    start = time.monotonic()
    dag_id = dag_id or settings.airflow.dag_id
    state, stages = run_dag(settings, logical, dag_id, log_level)
    state, code = outcome(state, stages)
    print_stages(dag_id, state, stages, logical.isoformat(), time.monotonic() - start)
    if state == NOTHING_RAN:
        print(f"{dag_id} {logical.isoformat()}: Airflow ran no task for this date (is it before the DAG's start_date, "
              f"{earliest_date(settings)}?); nothing was landed or built.", file=sys.stderr)
    return code


NOTHING_RAN = "failed: no task ran"


def outcome(state: str, stages: list[StageResult]) -> tuple[str, int]:
    """The run's state as printed and the exit code: success needs the DAG run's success AND a task that ran."""
    ran = [s for s in stages if s.state in ("success", "failed", "upstream_failed")]
    if not ran:
        return NOTHING_RAN, 1
    return state, 0 if state == "success" else 1
