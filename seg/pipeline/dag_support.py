"""What the DAG files share at parse time: their start date and the evaluation time of a run.

Light on purpose (no Airflow, duckdb or pandas import): the DAG processor imports it with every DAG file.
"""

from __future__ import annotations

import datetime as dt

import pendulum

from seg.core.config import Settings


def start_date(settings: Settings) -> pendulum.DateTime:
    """Every DAG's start_date: airflow.earliest_date, far in the past. dag.test() runs no task for a logical date
    before start_date, and users back-fill history from years ago (the CDNOW example is 1997-1998); catchup=False
    keeps the scheduler from creating those runs by itself."""
    day = settings.airflow.earliest_date
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def evaluation_time(data_interval_end) -> dt.datetime:
    """A micro-batch's evaluation time: the run's data_interval_end as naive UTC (the warehouse's timestamps)."""
    if data_interval_end is None:
        raise RuntimeError("the run has no data interval end")
    return dt.datetime.fromtimestamp(data_interval_end.timestamp(), dt.UTC).replace(tzinfo=None)
