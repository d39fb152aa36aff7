"""Timings of the ML stages for the benchmark: `train_assign(settings, as_of) -> dict`.

`synthetic_features(settings, rows, as_of)` writes a synthetic `marts.customer_features` (six planted groups on
the configured features, realistic scales and NULL patterns) for measuring at scale without building the lake;
use it only in a scratch data directory: it replaces the table.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml import assign, features, train
from seg.core.config import Settings
from seg.core.warehouse import connect


def train_assign(settings: Settings, as_of: date) -> dict[str, Any]:
    """Train (selection included, forced) then assign everyone; wall seconds of each plus the stages' own
    breakdowns. Returns {rows, train_seconds, assign_seconds, k, family, train_timings, model_version}."""
    t = time.perf_counter()
    trained = train.run(settings, as_of, lineage={"bench": "seg.bench.training.train_assign"})
    train_seconds = time.perf_counter() - t
    t = time.perf_counter()
    assigned = assign.run(settings, as_of)
    assign_seconds = time.perf_counter() - t
    return {
        "rows": assigned["rows"],
        "train_seconds": round(train_seconds, 3),
        "assign_seconds": round(assign_seconds, 3),
        "k": trained["k"],
        "family": trained["family"],
        "model_version": trained["model_version"],
        "train_timings": trained["timings"],
    }


def synthetic_features(settings: Settings, rows: int, as_of: date, seed: int = 0, groups: int = 6) -> None:
    """Replace marts.customer_features with `rows` synthetic people drawn from `groups` planted groups."""
    rng = np.random.default_rng(seed)
    cols = features.configured_features(settings)
    log_set = set(settings.ml.log_features)
    group = rng.integers(0, groups, size=rows)
    centers = rng.normal(0.0, 1.5, size=(groups, len(cols)))
    data: dict[str, Any] = {
        "person_id": pd.array([f"P{i:09d}" for i in range(rows)], dtype="string"),
        "customer_id": pd.array([f"C{i:08d}" for i in range(rows)], dtype="string"),
        "as_of_date": as_of,
    }
    for j, col in enumerate(cols):
        latent = centers[group, j] + rng.normal(0.0, 1.0, size=rows)
        if col in log_set:
            values = np.round(np.expm1(np.clip(1.5 + 0.8 * latent, 0, None)), 2)
        elif col.endswith("_share") or col.endswith("_rate"):
            values = 1.0 / (1.0 + np.exp(-latent))
        else:
            values = 30.0 + 10.0 * latent
        if col in {"recency_days", "avg_order_value", "discount_share", "cart_abandonment_rate"} or col.endswith(
            "order_share"
        ):
            values = np.where(rng.random(rows) < 0.14, np.nan, values)
        if col in {"price_sensitivity", "brand_loyalty"}:
            values = np.where(rng.random(rows) < 0.28, np.nan, np.clip(np.round(3 + latent), 1, 5))
        data[col] = values
    frame = pd.DataFrame(data)
    with connect(settings) as con:
        con.execute("create schema if not exists marts")
        con.register("synthetic_features", frame)
        con.execute("create or replace table marts.customer_features as select * from synthetic_features")
        con.unregister("synthetic_features")
