"""
### segmentation_daily

The whole segmentation pipeline for one day (the run's logical date is the **as-of date**).

| stage | what it does | output |
|---|---|---|
| `land_<source>` | lands every incoming file of that source dated on or before the as-of date (late files too) | `lake/raw`, `lake/quarantine`, `lake/_manifests` |
| `gate_raw` | contract checks on the rows landed for the day; volume and amount median vs the trailing days, freshness, quarantine share, rejected/duplicate files (from the manifests) | `monitoring.gate_results`, `monitoring.ingest_profile`, Data Docs |
| `dbt_build` | dbt staging -> intermediate -> marts (identity, orders, RFM) with dbt tests; marts into the audit schema | schema `marts_audit` |
| `gate_marts` | every mart built, customers not empty (on `marts_audit`); keys, ranges and the reconciliation with the lake are dbt tests in `dbt_build` | |
| `build_features` | dbt models tagged `features`: lifetime (`customer_features`) and trailing-window (`customer_behaviour_features`) features, with their histories | schema `marts_audit` |
| `gate_features` | one row per customer, features before any model reads them (on `marts_audit`) | |
| `publish_marts` | write-audit-publish: swaps the audited marts into `marts` in one transaction (`seg/transform/wap.py`) | schema `marts` |
| *per lens* | the steps below run in one task group per segmentation (`profile.…`, `behaviour.…`, config `lenses:`), on the lens's features, model and drift policy; one lens's failure leaves the others' results | |
| `drift_report` | PSI of today's features and segment mix vs the reference of the model live before today; decides none / warn / retrain | `reports/drift/<date>/<lens>/`, `monitoring.drift_metrics` |
| `choose_model` | trains on the configured weekdays, when no champion exists, or when drift asks for it; else reuses the champion | |
| `train` / `load_champion` | scikit-learn model selection tracked in MLflow (a winner is marked to become champion), or the model to reuse | MLflow run + registry, `ml_stage.model_choice` |
| `assign` | every person gets a segment from the chosen model | `ml_stage.customer_assignments` |
| `gate_segments` | every person assigned exactly once, segment sizes | |
| `promote` | a new version that won promotion takes the alias `champion` (only now: its segments passed the gate) | MLflow registry |
| `publish` | swaps the lens's audited assignments into the marts | `marts.customer_segments`, `marts.customer_segment_history` |

Tasks are thin calls into `seg.pipeline.daily`; a failed gate fails its task (no retry) and nothing downstream runs,
so the previously published marts and segments stay in place: dbt writes the marts only into `marts_audit`,
and the models (drift, train, assign) read the published `marts` after `publish_marts`. DuckDB has one writer:
one active run, the day's tasks are chained, and the lenses' groups take turns through the one-slot warehouse pool.

A run for an older date than the published one (a backfill or a repaired day) writes that date's history and
leaves the current marts, segments and champion alone; it assigns with the model that was live on the date
(`seg.pipeline.daily`).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, TaskGroup, dag, task

# both light at import (a YAML read, no duckdb/pandas): DAG parsing stays cheap
from seg.core import config
from seg.core.contract import SOURCES
from seg.pipeline import dag_support

SEGMENTS_ASSET = Asset("seg://marts/customer_segments")
MARTS_ASSET = Asset("seg://marts/customer_features")


_SETTINGS = config.load()  # a small YAML read; nothing heavy at parse time
_POOL = _SETTINGS.airflow.warehouse_pool
_START = dag_support.start_date(_SETTINGS)


def _run(stage, *args, ds: str, lens: str | None = None):
    """Run one stage function of seg.pipeline.daily for the run's date (on lens `lens`'s settings for the model
    steps); a failed quality gate fails the task without retry (a verdict on the data). Tasks import
    seg.pipeline.daily in their body: parsing stays cheap."""
    from airflow.sdk.exceptions import AirflowFailException

    from seg.pipeline import daily

    settings, as_of = config.load(), dt.date.fromisoformat(ds)
    if lens is not None:
        settings = settings.for_lens(lens)
    try:
        return daily.run_stage(stage, settings, *args, as_of_date=as_of)
    except Exception as exc:
        if daily.is_verdict(exc):
            raise AirflowFailException(str(exc)) from exc
        raise


@dag(
    dag_id="segmentation_daily",
    schedule="@daily",
    start_date=_START,
    catchup=False,
    max_active_runs=1,
    tags=["segmentation", "daily"],
    doc_md=__doc__,
    # every task takes the one-slot warehouse pool: the trigger micro-batches write the same DuckDB file
    default_args={"owner": "data-platform", "retries": 0, "pool": _POOL},
)
def segmentation_daily():
    @task
    def land(source: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        summary = _run(daily.land, source, ds=ds)
        summary.pop("entries", None)  # the manifest holds the per-file detail; keep XCom small
        return summary

    @task
    def gate_raw(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.gate, "raw", ds=ds)

    @task
    def dbt_build(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.dbt_build, ds=ds)

    @task
    def gate_marts(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.gate, "marts", ds=ds)

    @task
    def build_features(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.build_features, ds=ds)

    @task
    def gate_features(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.gate, "features", ds=ds)

    @task(outlets=[MARTS_ASSET])
    def publish_marts(ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.publish_marts, ds=ds)

    @task
    def drift_report(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.drift_report, ds=ds, lens=lens)

    @task.branch
    def choose_model(lens: str, drift: dict, ds: str | None = None) -> str:
        from seg.pipeline import daily

        train_now, reason = _run(daily.should_train, drift.get("decision"), ds=ds, lens=lens)
        print(f"{lens}: train={train_now}: {reason}")
        return f"{lens}.train" if train_now else f"{lens}.load_champion"

    @task
    def train(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.train, ds=ds, lens=lens)

    @task
    def load_champion(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.load_champion, ds=ds, lens=lens)

    @task(trigger_rule="none_failed_min_one_success")
    def assign(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.assign, ds=ds, lens=lens)

    @task
    def gate_segments(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.gate, "segments", ds=ds, lens=lens)

    @task
    def promote(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.promote, ds=ds, lens=lens)

    @task(outlets=[SEGMENTS_ASSET])
    def publish(lens: str, ds: str | None = None) -> dict:
        from seg.pipeline import daily

        return _run(daily.publish, ds=ds, lens=lens)

    # Landing tasks write separate files (no shared DuckDB), but run one after another: two cores.
    landed = [land.override(task_id=f"land_{source}")(source) for source in SOURCES]
    for upstream, downstream in zip(landed, landed[1:], strict=False):
        upstream >> downstream
    raw_ok = gate_raw()
    landed[-1] >> raw_ok
    features = build_features()
    raw_ok >> dbt_build() >> gate_marts() >> features
    marts = publish_marts()
    features >> gate_features() >> marts
    # one group per lens after the marts; the groups do not wait for each other (the pool serialises the writers)
    for lens in _SETTINGS.lenses:
        with TaskGroup(group_id=lens, tooltip=_SETTINGS.for_lens(lens).lens_settings.description):
            drift = drift_report(lens)
            marts >> drift
            branch = choose_model(lens, drift)
            assigned = assign(lens)
            branch >> [train(lens), load_champion(lens)] >> assigned
            assigned >> gate_segments(lens) >> promote(lens) >> publish(lens)


segmentation_daily()
