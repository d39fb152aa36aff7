"""`seg triggers run`: one micro-batch of the segmentation_triggers DAG through Airflow (`dag.test()`), in-process.

Mirrors seg.orchestrate.run (same per-data-directory AIRFLOW_HOME and metadata database); the second module of
the package that imports Airflow. The warehouse pool is created when missing (one slot).
"""

from __future__ import annotations

import datetime as dt
import os
import time

from seg.config import Settings
from seg.orchestrate import DAGS_FOLDER, StageResult, airflow_env

DAG_ID = "segmentation_triggers"


def run_dag(settings: Settings, at: dt.datetime) -> tuple[str, list[StageResult]]:
    settings.paths.airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(airflow_env(settings))

    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.pool import Pool
    from airflow.utils import db

    from seg.triggers.definitions import load

    db.initdb()
    pool = load().warehouse_pool
    if pool and Pool.get_pool(pool) is None:
        Pool.create_or_update_pool(pool, slots=1, description="one DuckDB writer", include_deferred=False)
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags[DAG_ID]
    logical = pendulum.instance(at.replace(tzinfo=dt.UTC))
    dag_run = dag.test(logical_date=logical)
    stages = []
    for ti in sorted(dag_run.get_task_instances(), key=lambda t: (t.start_date or logical, t.task_id)):
        seconds = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else None
        stages.append(StageResult(ti.task_id, str(ti.state.value if hasattr(ti.state, "value") else ti.state), seconds))
    state = str(dag_run.state.value if hasattr(dag_run.state, "value") else dag_run.state)
    return state, stages


def run(settings: Settings, at: dt.datetime) -> int:
    start = time.monotonic()
    state, stages = run_dag(settings, at)
    wall = time.monotonic() - start
    print(f"\n{DAG_ID} {at.isoformat()}: {state.upper()} in {wall:.1f} s")
    for s in stages:
        secs = f"{s.seconds:8.1f}" if s.seconds is not None else "       -"
        print(f"  {s.task_id:<24}{s.state:<18}{secs}")
    return 0 if state == "success" else 1
