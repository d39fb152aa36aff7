"""Small synthetic worlds for the ml/ tests: planted gaussian blobs in a temp data directory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from seg.core.config import DEFAULT_SETTINGS, Settings, load
from seg.core.warehouse import connect

# Features the synthetic table carries (a subset of config/settings.yml's list) plus one column no source fills.
BLOB_FEATURES = ["recency_days", "frequency", "monetary", "discount_share", "store_order_share"]
EMPTY_FEATURE = "brand_loyalty"
AS_OF = date(2024, 3, 4)  # a Monday


def planted_blobs(n_rows: int, n_blobs: int, seed: int = 7, as_of: date = AS_OF) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers drawn from `n_blobs` well separated gaussian blobs (known labels), on realistic scales.

    Blob b sits 3 standard units along axis b of a latent space; latent values map to the features through
    monotone transforms (exp for the log features), so the model's preprocessing recovers the blobs.
    """
    if not 2 <= n_blobs <= len(BLOB_FEATURES):
        raise ValueError("n_blobs must be between 2 and the number of blob features")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_rows) % n_blobs)
    centers = np.zeros((n_blobs, len(BLOB_FEATURES)))
    for b in range(n_blobs):
        centers[b, b] = 3.0
    latent = centers[labels] + rng.normal(0.0, 0.3, size=(n_rows, len(BLOB_FEATURES)))
    frame = pd.DataFrame(
        {
            "person_id": [f"p{i:06d}" for i in range(n_rows)],
            "customer_id": [None if i % 10 == 0 else f"c{i:06d}" for i in range(n_rows)],
            "as_of_date": as_of,
            "recency_days": np.round(60 + 20 * latent[:, 0]),
            "frequency": np.round(np.exp(1.0 + 0.5 * latent[:, 1]), 2),
            "monetary": np.round(np.exp(4.0 + 0.5 * latent[:, 2]), 2),
            "discount_share": 0.2 + 0.05 * latent[:, 3],
            "store_order_share": 0.3 + 0.08 * latent[:, 4],
            EMPTY_FEATURE: np.nan,
        }
    )
    return frame, labels


def write_features(settings: Settings, frame: pd.DataFrame) -> None:
    """(Re)create marts.customer_features from `frame` (all-NaN float columns become an all-NULL DOUBLE)."""
    with connect(settings) as con:
        con.execute("create schema if not exists marts")
        con.register("features_frame", frame)
        con.execute("create or replace table marts.customer_features as select * from features_frame")
        con.unregister("features_frame")


# What `small_settings` changes in config/settings.yml.
SMALL = {
    "ml": {
        "features": [*BLOB_FEATURES, EMPTY_FEATURE],
        "k_min": 2,
        "k_max": 6,
        "fit_sample_size": 3000,
        "silhouette_sample_size": 1500,
        "assign_chunk_size": 1000,
        "batch_size": 1024,
        "plot_sample_size": 1000,
        "lifecycle_features": [],
        "selection": {"stability_sample_size": 1500, "stability_bootstraps": 2},
        "candidates": {"ward": {"sample_size": 1500}, "gmm": {"sample_size": 3000}, "hdbscan": {"sample_size": 1500}},
    },
    "drift": {"segment_sample_size": 2000},
}


def small_settings(root) -> Settings:
    """Settings for a temp data directory, scaled down so a training takes seconds."""
    return load(root).with_overrides(SMALL)


# A directory without a deployment.yml: `default_settings` reads config/settings.yml alone.
NO_DATA_DIR = Path(__file__).parent / "no-data-dir"


def default_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """config/settings.yml alone (not SEG_CONFIG's file, no deployment.yml) with `overrides` applied: typed
    sections for the tests of pure functions, e.g. `default_settings({"ml": {"k_min": 2}}).ml`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEG_CONFIG", str(DEFAULT_SETTINGS))
        settings = load(NO_DATA_DIR)
    return settings.with_overrides(overrides) if overrides else settings


@pytest.fixture(autouse=True, scope="module")
def _isolated_environment():
    """Tests never touch a real MLflow server, artifact store, config file or data directory."""
    with pytest.MonkeyPatch.context() as mp:
        for var in (
            "MLFLOW_TRACKING_URI",
            "MLFLOW_REGISTRY_URI",
            "SEG_MLFLOW_ARTIFACT_ROOT",
            "SEG_CONFIG",
            "SEG_DATA_DIR",
        ):
            mp.delenv(var, raising=False)
        yield
