"""
### segmentation_triggers

Behavioural trigger segments in micro-batches (default every 15 minutes; `schedule` in config/triggers.yml).
The run's **evaluation time** is its `data_interval_end`: only data up to that moment is read.

| task | what it does | output |
|---|---|---|
| `land_recent` | lands new or changed incoming files of the evaluation day and the day before (events, orders, order_items, store visits, survey answers; unchanged files are skipped by content hash) | `lake/raw`, `lake/_manifests` |
| `evaluate_triggers` | cart abandonment, repeated product views, browse abandonment, lapsing, win-back in DuckDB SQL; memberships with entry, expiry, exit and evidence | `marts.trigger_membership_history`, `marts.trigger_memberships`, `marts.trigger_membership_changes`, view `marts.customer_active_segments` |
| `publish_redis` | current memberships to Redis under a new version, switched atomically; changes to a stream (skipped without SEG_REDIS_URL) | Redis `seg:triggers:*` |

Definitions: config/triggers.yml. Tasks are thin calls into `seg.triggers`; re-running an interval changes nothing.
DuckDB has one writer: one active run, and the warehouse tasks take a slot of the one-slot pool the daily DAG's
writing tasks take too (`airflow.warehouse_pool` in config/settings.yml); a task that still meets a lock waits for
it (`lock_timeout_s`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

from seg.triggers.definitions import load as load_definitions

TRIGGERS_ASSET = Asset("seg://marts/trigger_memberships")
_CFG = load_definitions()  # a small YAML file: the schedule


def _load_settings():
    # imported here: keeps DAG parsing cheap (no duckdb/pandas at import time)
    from seg import config

    return config.load()


# the one-slot pool of every warehouse-writing task in every DAG (settings airflow.warehouse_pool, as the daily DAG)
_AIRFLOW = _load_settings()["airflow"]  # a small YAML read; nothing heavy at parse time
_POOL = _AIRFLOW["warehouse_pool"]
_START = pendulum.parse(str(_AIRFLOW["earliest_date"]), tz="UTC")  # as the daily DAG: history of any age


def _evaluation_time(data_interval_end):
    import datetime as dt

    if data_interval_end is None:
        raise RuntimeError("the run has no data interval end")
    return dt.datetime.fromtimestamp(data_interval_end.timestamp(), dt.UTC).replace(tzinfo=None)


@dag(
    dag_id="segmentation_triggers",
    schedule=_CFG.schedule,
    start_date=_START,
    catchup=False,
    max_active_runs=1,
    tags=["segmentation", "triggers"],
    doc_md=__doc__,
    default_args={"owner": "data-platform", "retries": 0},
)
def segmentation_triggers():
    @task
    def land_recent(data_interval_end=None) -> dict:
        from seg import config
        from seg.triggers import microbatch

        return microbatch.land(config.load(), _evaluation_time(data_interval_end))

    @task(pool=_POOL)
    def evaluate_triggers(data_interval_end=None) -> dict:
        from seg import config
        from seg.triggers import microbatch

        return microbatch.run_tables(config.load(), _evaluation_time(data_interval_end))

    @task(outlets=[TRIGGERS_ASSET], pool=_POOL)
    def publish_redis(data_interval_end=None) -> dict:
        from seg import config
        from seg.triggers.publish import publish_redis as publish

        return publish(config.load(), _evaluation_time(data_interval_end))

    land_recent() >> evaluate_triggers() >> publish_redis()


segmentation_triggers()
