"""`seg triggers run`: one micro-batch of the segmentation_triggers DAG through Airflow (`dag.test()`), in-process.

A thin face over seg.orchestrate.run (same per-data-directory AIRFLOW_HOME and metadata database, and the
one-slot warehouse pool it creates when missing).
"""

from __future__ import annotations

import datetime as dt

from seg import orchestrate
from seg.config import Settings

DAG_ID = "segmentation_triggers"


def run(settings: Settings, at: dt.datetime, log_level: str | None = None) -> int:
    return orchestrate.run(settings, at, dag_id=DAG_ID, log_level=log_level)
