"""
### segmentation_triggers

Behavioural trigger segments in micro-batches (default every 15 minutes; `schedule` in config/triggers.yml).
The run's **evaluation time** is its `data_interval_end`: only data up to that moment is read.

| task | what it does | output |
|---|---|---|
| `land_recent` | lands new or changed incoming files of the evaluation day and the day before (events, orders, order_items, store visits, survey answers; unchanged files are skipped by content hash) | `lake/raw`, `lake/_manifests` |
| `evaluate_triggers` | cart abandonment, repeated product views, browse abandonment, lapsing, win-back in DuckDB SQL; memberships with entry, expiry, exit and evidence | `marts.trigger_membership_history`, `marts.trigger_memberships`, `marts.trigger_membership_changes`, view `marts.customer_active_segments` |
| `publish_redis` | current memberships to Redis under a new version, switched atomically; changes to a stream (skipped without SEG_REDIS_URL) | Redis `seg:triggers:*` |

Definitions: config/triggers.yml. Tasks are thin calls into `seg.pipeline.microbatch` (one stage each); re-running
an interval changes nothing.
DuckDB has one writer: one active run, and the warehouse tasks take a slot of the one-slot pool the daily DAG's
writing tasks take too (`airflow.warehouse_pool` in config/settings.yml); a task that still meets a lock waits for
it (`warehouse.lock_timeout_s`).
"""

from __future__ import annotations

from airflow.sdk import Asset, dag, task

# both light at import (settings and the definitions' YAML; no duckdb/pandas): DAG parsing stays cheap
from seg.core import config
from seg.pipeline import dag_support, microbatch

TRIGGERS_ASSET = Asset("seg://marts/trigger_memberships")

# the one-slot pool of every warehouse-writing task in every DAG (settings airflow.warehouse_pool, as the daily DAG)
_SETTINGS = config.load()  # a small YAML read; nothing heavy at parse time
_POOL = _SETTINGS.airflow.warehouse_pool
_START = dag_support.start_date(_SETTINGS)  # as the daily DAG: history of any age
_evaluation_time = dag_support.evaluation_time


@dag(
    dag_id="segmentation_triggers",
    schedule=microbatch.schedule(),  # a small YAML file
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
        return microbatch.land(config.load(), _evaluation_time(data_interval_end))

    @task(pool=_POOL)
    def evaluate_triggers(data_interval_end=None) -> dict:
        return microbatch.evaluate(config.load(), _evaluation_time(data_interval_end))

    @task(outlets=[TRIGGERS_ASSET], pool=_POOL)
    def publish_redis(data_interval_end=None) -> dict:
        return microbatch.publish_redis(config.load(), _evaluation_time(data_interval_end))

    land_recent() >> evaluate_triggers() >> publish_redis()


segmentation_triggers()
