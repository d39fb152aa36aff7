"""Candidate clusterers: fit one MiniBatchKMeans per k, score it, and pick one.

Metrics per candidate (all on the preprocessed fit sample):
- silhouette: mean silhouette on a random subsample of `ml.silhouette_sample_size` rows (higher is better);
- davies_bouldin (lower is better) and calinski_harabasz (higher is better) on the whole fit sample;
- inertia: within-cluster sum of squares on the whole fit sample (for the elbow plot);
- min_segment_share / max_segment_share: smallest / largest cluster as a share of the fit sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn import config_context
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score


def build_clusterer(k: int, cfg: Mapping[str, Any]) -> MiniBatchKMeans:
    """Unfitted MiniBatchKMeans for k clusters with the configured batch size, n_init, max_iter and seed."""
    return MiniBatchKMeans(
        n_clusters=int(k),
        batch_size=int(cfg["batch_size"]),
        n_init=int(cfg["n_init"]),
        max_iter=int(cfg["max_iter"]),
        random_state=int(cfg["random_state"]),
    )


@dataclass
class Candidate:
    k: int
    model: MiniBatchKMeans
    labels: np.ndarray
    metrics: dict[str, float]


def score(x: np.ndarray, labels: np.ndarray, inertia: float, k: int, cfg: Mapping[str, Any]) -> dict[str, float]:
    """The metrics above for one labelling of the preprocessed matrix x."""
    counts = np.bincount(labels, minlength=k)
    shares = counts / counts.sum()
    n_found = int((counts > 0).sum())
    if n_found < 2:
        silhouette = -1.0
        davies_bouldin = float("inf")
        calinski_harabasz = 0.0
    else:
        with config_context(working_memory=int(cfg.get("silhouette_working_memory_mb", 256))):
            silhouette = float(
                silhouette_score(
                    x,
                    labels,
                    sample_size=min(int(cfg["silhouette_sample_size"]), x.shape[0]),
                    random_state=int(cfg["random_state"]),
                )
            )
        davies_bouldin = float(davies_bouldin_score(x, labels))
        calinski_harabasz = float(calinski_harabasz_score(x, labels))
    return {
        "silhouette": silhouette,
        "davies_bouldin": davies_bouldin,
        "calinski_harabasz": calinski_harabasz,
        "inertia": float(inertia),
        "min_segment_share": float(shares.min()),
        "max_segment_share": float(shares.max()),
        "n_segments": float(n_found),
    }


def fit_candidate(x: np.ndarray, k: int, cfg: Mapping[str, Any]) -> Candidate:
    model = build_clusterer(k, cfg).fit(x)
    labels = model.labels_.astype(np.int64)
    return Candidate(k=int(k), model=model, labels=labels, metrics=score(x, labels, model.inertia_, k, cfg))


def candidate_ks(cfg: Mapping[str, Any], n_rows: int) -> list[int]:
    """k_min..k_max, capped so every candidate has fewer clusters than rows."""
    k_min, k_max = int(cfg["k_min"]), int(cfg["k_max"])
    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= ml.k_min <= ml.k_max, got {k_min}..{k_max}")
    ks = [k for k in range(k_min, k_max + 1) if k < n_rows]
    if not ks:
        raise ValueError(f"only {n_rows} rows to fit: cannot form {k_min} or more clusters")
    return ks


def select(candidates: Iterable[Candidate], min_segment_share: float) -> tuple[Candidate, str]:
    """The selection rule: best silhouette among candidates whose smallest cluster holds >= min_segment_share of
    the fit sample (ties go to the smaller k). If no candidate qualifies, the best silhouette overall is taken and
    the returned reason says so.
    """
    pool = sorted(candidates, key=lambda c: c.k)
    if not pool:
        raise ValueError("no candidates to select from")
    eligible = [c for c in pool if c.metrics["min_segment_share"] >= min_segment_share]
    if eligible:
        best = max(eligible, key=lambda c: c.metrics["silhouette"])  # max keeps the first (smallest k) on ties
        reason = (
            f"k={best.k}: best silhouette {best.metrics['silhouette']:.4f} among {len(eligible)}/{len(pool)} "
            f"candidates with smallest segment share >= {min_segment_share}"
        )
        return best, reason
    best = max(pool, key=lambda c: c.metrics["silhouette"])
    reason = (
        f"k={best.k}: no candidate has every segment >= {min_segment_share} of customers; "
        f"fell back to the best silhouette overall ({best.metrics['silhouette']:.4f})"
    )
    return best, reason
