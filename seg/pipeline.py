"""The daily pipeline's stages as plain functions of (settings, as_of_date).

DAG tasks, `seg` commands and tests are thin faces over these. Nothing here imports Airflow; heavy libraries
(dbt, Great Expectations, scikit-learn, MLflow) are imported inside the stage that needs them.
"""

from __future__ import annotations

import datetime as dt

from seg.config import Settings

# dbt models tagged `features` are built after the marts gate, as their own stage.
FEATURES_SELECTOR = "tag:features"


def land(settings: Settings, source: str, as_of_date: dt.date) -> dict:
    from seg.lake.landing import land_source

    return land_source(settings, source, as_of_date)


def gate(settings: Settings, name: str, as_of_date: dt.date) -> dict:
    """Run one quality gate; raises expectations.GateFailed when a critical expectation fails."""
    from expectations.gates import run_gate

    result = run_gate(settings, name, as_of_date)
    return result.summary()


def dbt_build(settings: Settings, as_of_date: dt.date) -> dict:
    from seg import dbt

    return dbt.build(settings, as_of_date.isoformat(), exclude=FEATURES_SELECTOR)


def build_features(settings: Settings, as_of_date: dt.date) -> dict:
    from seg import dbt

    return dbt.build(settings, as_of_date.isoformat(), select=FEATURES_SELECTOR)


def should_train(settings: Settings, as_of_date: dt.date) -> tuple[bool, str]:
    from ml.train import should_train as decide

    return decide(settings, as_of_date)


def train(settings: Settings, as_of_date: dt.date) -> dict:
    from ml.train import run

    return run(settings, as_of_date)


def load_champion(settings: Settings, as_of_date: dt.date) -> dict:
    from ml.tracking import champion_version

    version = champion_version(settings)
    if version is None:
        raise RuntimeError("no champion model is registered yet: the train stage must run first")
    return {"model_version": str(version.version), "run_id": version.run_id}


def assign(settings: Settings, as_of_date: dt.date) -> dict:
    from ml.assign import run

    return run(settings, as_of_date)


def drift_report(settings: Settings, as_of_date: dt.date) -> dict:
    from ml.drift import run

    return run(settings, as_of_date)


def publish(settings: Settings, as_of_date: dt.date) -> dict:
    from seg.publish import run

    return run(settings, as_of_date)
