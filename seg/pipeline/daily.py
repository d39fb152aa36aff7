"""The daily pipeline's stages as plain functions of (settings, as_of_date).

DAG tasks, `seg` commands and tests are thin faces over these. Nothing here imports Airflow; heavy libraries
(dbt, Great Expectations, scikit-learn, MLflow) are imported inside the stage that needs them.

A rerun of an older as-of date than the published one (a backfill or a repaired day) must not roll current
state back: publish_marts and publish write that date's history only (current tables move forward only), the
model steps read the date's own audited build (seg.transform.wap.schema_of), the drift report compares with the
model that was live before that date, and the date is assigned with the model live on it; it never trains and
never moves `champion`. A new version takes `champion` only after its segments passed their gate (`promote`).

The model steps (drift_report .. publish) run once per segmentation ("lens", config `lenses:`): they receive the
lens's settings (`settings.for_lens(name)`), whose `ml` / `drift` sections, feature mart, registered model and
experiments are the lens's, and every table they write carries the lens (`segmentation`). "Past" is judged per
lens, on that lens's published history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from seg.core.config import Settings

# dbt models tagged `features` are built after the marts gate, as their own stage.
FEATURES_SELECTOR = "tag:features"
# Gates that audit what dbt built read the write-audit-publish audit schema (seg/transform/wap.py), not the
# published marts: gate -> the build step whose output it audits (publish_marts requires both audits).
AUDITED_GATES = {"marts": "dbt_build", "features": "build_features"}


def land(settings: Settings, source: str, as_of_date: dt.date) -> dict:
    from seg.lake.landing import land_source

    return land_source(settings, source, as_of_date)


def gate(settings: Settings, name: str, as_of_date: dt.date) -> dict:
    """Run one quality gate; raises expectations.GateFailed when a critical expectation fails."""
    from expectations.gates import run_gate
    from seg.transform import wap

    if name == "segments":  # the lens's assignments of the date's people: the published marts, or an older date's
        # audited build
        schema = wap.schema_of(settings, as_of_date)
        mapping = {} if schema == wap.PUBLISHED_SCHEMA else wap.AUDIT_SCHEMAS
        return run_gate(settings, name, as_of_date, schemas=mapping or None).summary()
    if name not in AUDITED_GATES:
        return run_gate(settings, name, as_of_date).summary()
    step = AUDITED_GATES[name]
    build_id = wap.current_build(settings, step)  # read before the gate: the audit is tied to this build
    result = run_gate(settings, name, as_of_date, schemas=wap.AUDIT_SCHEMAS)
    wap.record_audit(settings, name, step, build_id)
    return result.summary()


def _dbt_vars(settings: Settings) -> dict:
    """The marts layer goes to the audit schema (published after the gates); money is reported in the currency
    the deployment configures or, unconfigured, the one its landed orders carry."""
    from seg.lake.money import reporting_currency
    from seg.transform import wap

    return {**wap.AUDIT_VARS, "reporting_currency": reporting_currency(settings)}


def _audited_build(settings: Settings, step: str, as_of_date: dt.date, **selection: str) -> dict:
    from seg.transform import dbt, wap

    wap.start_build(settings, step)
    summary = dbt.build(settings, as_of_date.isoformat(), extra_vars=_dbt_vars(settings), **selection)
    summary["build_id"] = wap.finish_build(settings, step, as_of_date)
    return summary


def dbt_build(settings: Settings, as_of_date: dt.date) -> dict:
    """dbt staging -> intermediate -> marts (into the audit schema)."""
    return _audited_build(settings, "dbt_build", as_of_date, exclude=FEATURES_SELECTOR)


def build_features(settings: Settings, as_of_date: dt.date) -> dict:
    """dbt models tagged `features` (into the audit schema)."""
    return _audited_build(settings, "build_features", as_of_date, select=FEATURES_SELECTOR)


def publish_marts(settings: Settings, as_of_date: dt.date) -> dict:
    """Swap the audited marts (features included) into schema `marts` in one transaction (seg/transform/wap.py)."""
    from seg.transform import wap

    return wap.publish(settings, as_of_date, audited=AUDITED_GATES)


def _feature_table(settings: Settings, as_of_date: dt.date) -> str:
    """The lens's feature mart as of the date: published, or an older date's audited build."""
    from ml.features import lens_table
    from seg.transform import wap

    return lens_table(settings, wap.schema_of(settings, as_of_date))


def _published_segments_as_of(settings: Settings) -> dt.date | None:
    from seg.core.warehouse import connect
    from seg.transform import segments

    if not settings.paths.warehouse.exists():
        return None
    with connect(settings, read_only=True) as con:
        return segments.published_as_of(con, settings.lens)


def is_past(settings: Settings, as_of_date: dt.date) -> bool:
    """Whether `as_of_date` is older than the lens's published segments (a rerun of a past date: see the
    docstring)."""
    current = _published_segments_as_of(settings)
    return current is not None and as_of_date < current


def _live_model(settings: Settings, as_of_date: dt.date, *, before: bool) -> str | None:
    from seg.core.warehouse import connect
    from seg.transform import segments

    with connect(settings, read_only=True) as con:
        return (segments.model_live_before if before else segments.model_live_on)(con, as_of_date, settings.lens)


def should_train(settings: Settings, drift_decision: str | None, as_of_date: dt.date) -> tuple[bool, str]:
    """Train on schedule, without a champion, or early when today's drift report decided `retrain`; but never
    twice for one as-of date while a champion exists (a rerun reuses that day's model, so it changes nothing),
    and never for a date older than the published segments (it would move the champion back in time).

    Without a champion the date trains again even if it already has a version (a training that failed after
    registering, or a store from before first models were always promoted): an unpromoted version must never
    leave a deployment without segments, and the next training is promoted (ml/train.py)."""
    from ml.tracking import champion_version, version_trained_on
    from ml.train import should_train as decide

    if is_past(settings, as_of_date):
        live = _live_model(settings, as_of_date, before=False)
        return False, (f"{as_of_date} is older than the published segments ({_published_segments_as_of(settings)}): "
                       f"it is assigned with v{live}, the model live on that date; no training")
    earlier = version_trained_on(settings, as_of_date)
    champion = champion_version(settings) if earlier is not None else None
    if earlier is not None and champion is not None:
        return False, (
            f"version {earlier.version} was already trained for {as_of_date}; reusing champion v{champion.version}"
        )

    train_now, reason = decide(settings, as_of_date, force=drift_decision == "retrain")
    if earlier is not None:
        reason = f"version {earlier.version} of {as_of_date} is not a champion and there is none; {reason}"
    if drift_decision == "retrain":
        reason = f"drift report decided retrain; {reason}"
    return train_now, reason


def train(settings: Settings, as_of_date: dt.date) -> dict:
    """Train and register a version; the day assigns with it when it wins promotion (which then waits for the
    segments gate), else with the champion."""
    from ml import model_choice
    from ml.tracking import champion_version
    from ml.train import run

    summary = run(settings, as_of_date, defer_champion=True)
    if summary["promoted"]:
        version, promote, reason = summary["model_version"], True, summary["promotion_reason"]
    else:
        champion = champion_version(settings)
        version, promote = str(champion.version), False
        reason = f"v{summary['model_version']} is a challenger ({summary['promotion_reason']}); champion v{version}"
    model_choice.record(settings, model_choice.ModelChoice(as_of_date, version, promote, reason))
    return summary


def load_champion(settings: Settings, as_of_date: dt.date) -> dict:
    """Reuse a model: the champion, or for an older date than the published segments the model live on it."""
    from ml import model_choice
    from ml.tracking import champion_version

    if is_past(settings, as_of_date):
        live = _live_model(settings, as_of_date, before=False)
        choice = model_choice.record(settings, model_choice.ModelChoice(
            as_of_date, str(live), False, f"v{live} was live on {as_of_date} (an older date than the published "
                                          "segments: the champion is not moved)"))
        return {"model_version": choice.model_version, "reason": choice.reason}
    version = champion_version(settings)
    if version is None:
        # should_train sends every run without a champion to `train`, so this means the registry was changed
        # between the two tasks (alias deleted by hand, another data directory's store...).
        raise RuntimeError(
            f"no 'champion' alias on model {settings.ml.registered_model_name} in "
            f"{settings.mlflow_tracking_uri}: rerun the date (it trains and promotes a model when no champion exists)"
        )
    model_choice.record(settings, model_choice.ModelChoice(as_of_date, str(version.version), False, "champion"))
    return {"model_version": str(version.version), "run_id": version.run_id}


def assign(settings: Settings, as_of_date: dt.date) -> dict:
    """Assign with the model chosen for the date (ml.model_choice), reading the date's features. A lens with online
    updates moves the reused model's centres with the day's data first, but never those of a version trained for
    the date (it was just fitted on that data; on a rerun of the date it is reused and must assign as it did)."""
    from ml import model_choice
    from ml.assign import run
    from ml.tracking import version_trained_on

    choice = model_choice.read(settings, as_of_date)
    online = settings.ml.online_update.enabled
    if online:
        trained = version_trained_on(settings, as_of_date)
        online = trained is None or str(trained.version) != choice.model_version
    return run(settings, as_of_date, model_version=choice.model_version,
               table=_feature_table(settings, as_of_date), online=online)


def promote(settings: Settings, as_of_date: dt.date) -> dict:
    """After the segments gate: a version trained today that won promotion becomes `champion`."""
    from ml import model_choice
    from ml.promotion import make_champion

    choice = model_choice.read(settings, as_of_date)
    if choice.promote:
        make_champion(settings, choice.model_version)
    return {"model_version": choice.model_version, "champion_moved": choice.promote, "reason": choice.reason}


def drift_report(settings: Settings, as_of_date: dt.date) -> dict:
    """The date's features against the model live before it: the champion on a new day, and on a rerun the
    model the first run compared with, so a rerun decides what the first run decided."""
    from ml.drift.monitor import CHAMPION, run

    # before any publication (a new warehouse, maybe beside an existing MLflow store) the champion, else the model
    # of the last date published before this one (None: this is the first date, as on its first run)
    version = CHAMPION if _published_segments_as_of(settings) is None else _live_model(settings, as_of_date, before=True)
    return run(settings, as_of_date, model_version=version, table=_feature_table(settings, as_of_date))


def publish(settings: Settings, as_of_date: dt.date) -> dict:
    from seg.transform.segments import run

    return run(settings, as_of_date)


def is_verdict(exc: BaseException) -> bool:
    """A failed quality gate is a verdict on the data: retrying the task cannot help (the DAG fails it at once)."""
    from expectations.gates import GateFailed  # imported only when a stage failed: GX is slow to import

    return isinstance(exc, GateFailed)


# The stages run once per lens (on the lens's settings); the rest once per day.
LENS_STAGES = ("drift_report", "should_train", "train", "load_champion", "assign", "gate_segments", "promote",
               "publish")


def stage_name(stage: Callable[..., Any], settings: Settings, *args: Any) -> str:
    """The name a stage execution is recorded under, as the DAG's task ids: the function and, for `land` and
    `gate`, its first argument (land_orders, gate_raw); a lens's stage is prefixed with the lens
    (profile.assign, behaviour.gate_segments), as its task group prefixes the task."""
    name = stage.__name__ + (f"_{args[0]}" if stage in (land, gate) else "")
    return f"{settings.lens}.{name}" if name in LENS_STAGES else name


def run_stage(stage: Callable[..., Any], settings: Settings, *args: Any, as_of_date: dt.date) -> Any:
    """Run one stage function of this module, `stage(settings, *args, as_of_date)`, and record its wall time and
    peak RSS in reports/stage_metrics/<date>.jsonl (read by `seg bench`) under `stage_name`."""
    from seg.pipeline import metrics

    name = stage_name(stage, settings, *args)
    with metrics.recorded(settings, name, as_of_date):
        return stage(settings, *args, as_of_date)
