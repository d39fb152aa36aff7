"""Candidate clusterers: the families of `ml.candidates` in config/settings.yml, fitted on the preprocessed fit
sample (`fit_candidates`), and the served nearest-centroid model (`centroid_model`).

Families (each can be switched off with `enabled: false`):
- `kmeans`: MiniBatchKMeans for every k in k_min..k_max on the whole fit sample. Its k with the best silhouette is
  the plain baseline (MiniBatchKMeans, k by silhouette) whose number of segments is the floor of the selection
  (`ml.selection.plain_baseline`, PLAIN_BASELINE_FAMILY).
- `ward`: agglomerative Ward linkage on a seeded sub-sample of `ward.sample_size` rows (one linkage, cut at
  every k), the other rows go to the nearest cluster mean.
- `gmm`: GaussianMixture (`gmm.covariance_type`) for every k on a sub-sample of `gmm.sample_size` rows.
- `hdbscan`: sklearn.cluster.HDBSCAN on a sub-sample of `hdbscan.sample_size` rows; k is what it finds. Noise rule:
  a noise point (label -1) is not a segment of its own: like every row outside the sub-sample it goes to the
  nearest cluster mean (the candidate's `noise_share` metric says how many were noise).
- `rfm`: the classic RFM-score baseline. The RFM score is the sum of the preprocessed (log-scaled, standardised,
  winsorised) frequency and monetary value minus the recency (`rfm.recency` / `rfm.frequency` / `rfm.monetary`
  name the feature columns; those present are used), cut at its quantiles into k equal-frequency bands for every
  k (a mass of tied scores, e.g. the one-order customers, stays in one band). Served like every candidate as
  nearest centres: k centres on the score axis whose midpoints are the cuts, so the served segment is exactly the
  band. No random step and one dimension: the same rows give the same segments, a resample moves only the cuts,
  so a stable, explainable candidate exists on any data with an order history. Its bootstrap stability is
  computed like any other family's.

Whatever the family, a candidate is served as its cluster means: every row's segment is the nearest mean in the
preprocessed space (`centroid_model`). A fitted `Candidate` therefore holds its centres, the nearest-mean labels of
the whole fit sample, the inertia of that labelling, and a `refit` (rows, seed) -> centres for the bootstrap
stability. Judging candidates (the other metrics, stability, the selection rule) is `ml.selection`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, ward
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin_min
from sklearn.mixture import GaussianMixture

from seg.core.config import MlSettings

FAMILIES = ("kmeans", "ward", "gmm", "hdbscan", "rfm")
# The RFM score's roles: (config key under ml.candidates.rfm, True if a higher value is better).
RFM_ROLES = (("recency", False), ("frequency", True), ("monetary", True))
# Coordinate of the unreachable centre that stands in for a segment id the model does not have (see
# centroid_model); preprocessed features are standardised, so real rows sit within a few units of 0.
PLACEHOLDER_COORDINATE = 1.0e6


@dataclass
class Candidate:
    """One fitted candidate: its centres, the nearest-centre `labels` of the fit sample, `metrics` (the inertia and
    family-specific ones such as `noise_share` when fitted; ml.selection.score_candidates adds the rest), the
    family's `params` as logged to MLflow and `refit`."""

    family: str
    k: int
    centers: np.ndarray | None
    labels: np.ndarray
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    refit: Callable[[np.ndarray, int], np.ndarray] | None = None  # (rows, seed) -> centres, for stability

    @property
    def name(self) -> str:
        return f"{self.family}_k{self.k}"


# ------------------------------------------------------------------------------------------------ helpers


def nearest(x: np.ndarray, centers: np.ndarray, chunk: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centre, Euclidean distance to it) per row, in chunks."""
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], chunk):
        lab, d = pairwise_distances_argmin_min(x[start : start + chunk], centers)
        labels[start : start + chunk] = lab
        dist[start : start + chunk] = d
    return labels, dist


def cluster_means(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean of x per label 0..max(label) (labels < 0 ignored); every label must occur."""
    keep = labels >= 0
    k = int(labels[keep].max()) + 1
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels[keep], x[keep])
    counts = np.bincount(labels[keep], minlength=k).astype(float)
    return sums / counts[:, None]


def subsample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of min(size, n) of n rows, without replacement."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(int(size), n), replace=False))


def centroid_model(centers_by_id: Mapping[int, np.ndarray], n_features: int) -> KMeans:
    """A fitted KMeans whose `cluster_centers_[i]` is the mean of segment id i, so `predict` returns segment ids.

    Ids the model does not have (a segment that vanished, or ids below a newly numbered one) get an unreachable
    placeholder centre, so no row is ever assigned to them. The KMeans is fitted on the centres themselves with
    those centres as init and one iteration: each centre is its own cluster, so the centres are kept exactly.
    Stock scikit-learn type: serialises with skops and loads without this package.
    """
    size = max(centers_by_id) + 1
    centers = np.full((size, n_features), PLACEHOLDER_COORDINATE)
    for seg, c in centers_by_id.items():
        centers[int(seg)] = c
    for seg in range(size):  # distinct placeholders so that KMeans sees `size` distinct points
        if seg not in centers_by_id:
            centers[seg] = PLACEHOLDER_COORDINATE * (1 + seg)
    model = KMeans(n_clusters=size, init=centers, n_init=1, max_iter=1).fit(centers)
    model.cluster_centers_ = centers.copy()  # guard against float round-off in the one Lloyd step
    return model


def _finish(
    family: str,
    x: np.ndarray,
    centers: np.ndarray,
    params: dict,
    refit: Callable[[np.ndarray, int], np.ndarray],
    extra: dict | None = None,
) -> Candidate:
    """Label the whole fit sample by nearest centre; the distances give the inertia (ml.selection adds the rest)."""
    labels, dist = nearest(x, centers)
    metrics = {"inertia": float((dist**2).sum()), **(extra or {})}
    return Candidate(
        family=family, k=centers.shape[0], centers=centers, labels=labels, metrics=metrics, params=params, refit=refit
    )


# ------------------------------------------------------------------------------------------------ families


def _kmeans_centers(x: np.ndarray, k: int, cfg: MlSettings, seed: int) -> np.ndarray:
    model = MiniBatchKMeans(
        n_clusters=int(k),
        batch_size=int(cfg.batch_size),
        n_init=int(cfg.n_init),
        max_iter=int(cfg.max_iter),
        random_state=int(seed),
    ).fit(x)
    return model.cluster_centers_


def fit_kmeans(x: np.ndarray, ks: Sequence[int], cfg: MlSettings) -> list[Candidate]:
    seed = int(cfg.random_state)
    out = []
    for k in ks:
        centers = _kmeans_centers(x, k, cfg, seed)
        params = {"batch_size": cfg.batch_size, "n_init": cfg.n_init, "max_iter": cfg.max_iter}
        out.append(_finish("kmeans", x, centers, params, lambda rows, s, k=k: _kmeans_centers(rows, k, cfg, s)))
    return out


def _ward_centers(rows: np.ndarray, k: int) -> np.ndarray:
    labels = fcluster(ward(rows), t=k, criterion="maxclust") - 1
    return cluster_means(rows, labels)


def fit_ward(x: np.ndarray, ks: Sequence[int], cfg: MlSettings) -> list[Candidate]:
    fam = cfg.candidates["ward"]
    idx = subsample(x.shape[0], int(fam["sample_size"]), int(cfg.random_state))
    sub = x[idx]
    tree = ward(sub)  # one linkage, cut at every k
    out = []
    for k in ks:
        labels = fcluster(tree, t=k, criterion="maxclust") - 1
        if labels.max() + 1 != k:  # fewer distinct merges than k (ties): skip rather than mislabel
            continue
        centers = cluster_means(sub, labels)

        def refit(rows, seed, k=k):
            pick = subsample(rows.shape[0], int(fam["sample_size"]), seed)
            return _ward_centers(rows[pick], k)

        out.append(_finish("ward", x, centers, {"sample_size": len(idx)}, refit))
    return out


def _gmm_centers(rows: np.ndarray, k: int, fam: Mapping[str, Any], seed: int) -> np.ndarray:
    model = GaussianMixture(
        n_components=int(k),
        covariance_type=str(fam["covariance_type"]),
        n_init=int(fam["n_init"]),
        max_iter=int(fam["max_iter"]),
        reg_covar=float(fam["reg_covar"]),
        random_state=int(seed),
    ).fit(rows)
    return model.means_


def fit_gmm(x: np.ndarray, ks: Sequence[int], cfg: MlSettings) -> list[Candidate]:
    fam = cfg.candidates["gmm"]
    seed = int(cfg.random_state)
    idx = subsample(x.shape[0], int(fam["sample_size"]), seed)
    out = []
    for k in ks:
        centers = _gmm_centers(x[idx], k, fam, seed)

        def refit(rows, s, k=k):
            pick = subsample(rows.shape[0], int(fam["sample_size"]), s)
            return _gmm_centers(rows[pick], k, fam, s)

        params = {"sample_size": len(idx), "covariance_type": fam["covariance_type"]}
        out.append(_finish("gmm", x, centers, params, refit))
    return out


def _hdbscan_labels(rows: np.ndarray, fam: Mapping[str, Any]) -> np.ndarray:
    """HDBSCAN labels (-1 = noise); `rows` is always a fresh sub-sample copy, so HDBSCAN may work in place."""
    min_size = max(5, int(round(float(fam["min_cluster_size_share"]) * rows.shape[0])))
    return HDBSCAN(min_cluster_size=min_size, min_samples=int(fam["min_samples"]), copy=False).fit(rows).labels_


def fit_hdbscan(x: np.ndarray, cfg: MlSettings) -> list[Candidate]:
    fam = cfg.candidates["hdbscan"]
    idx = subsample(x.shape[0], int(fam["sample_size"]), int(cfg.random_state))
    labels = _hdbscan_labels(x[idx], fam)
    if int((np.unique(labels) >= 0).sum()) < 2:
        return []  # nothing but noise and one cluster: no candidate
    centers = cluster_means(x[idx], labels)

    def refit(rows, seed):
        pick = subsample(rows.shape[0], int(fam["sample_size"]), seed)
        lab = _hdbscan_labels(rows[pick], fam)
        return cluster_means(rows[pick], lab) if (lab >= 0).any() else rows[pick][:1]

    noise = {"noise_share": float((labels < 0).mean())}
    params = {
        "sample_size": len(idx),
        "min_cluster_size_share": fam["min_cluster_size_share"],
        "min_samples": fam["min_samples"],
        "noise_rule": "nearest cluster mean",
    }
    return [_finish("hdbscan", x, centers, params, refit, noise)]


def rfm_columns(fam: Mapping[str, Any], columns: Mapping[str, int]) -> list[tuple[int, bool]]:
    """(column index in x, higher is better) for each configured RFM role whose feature is in `columns`."""
    out = []
    for role, higher_is_better in RFM_ROLES:
        feature = fam.get(role)
        if feature and feature in columns:
            out.append((int(columns[feature]), higher_is_better))
    return out


def rfm_direction(n_features: int, roles: Sequence[tuple[int, bool]]) -> np.ndarray:
    """Unit vector of the RFM score in x: +1 on frequency and monetary, -1 on recency (higher = better)."""
    w = np.zeros(n_features)
    for col, higher_is_better in roles:
        w[col] = 1.0 if higher_is_better else -1.0
    return w / np.linalg.norm(w)


def rfm_cuts(score: np.ndarray, k: int) -> np.ndarray | None:
    """The k-1 cut points of k equal-frequency bands of `score`: its j/k quantiles, each moved to the middle of the
    gap between two distinct scores so that no customer lies on a cut (a mass of tied scores stays in one band).
    None when the score has too few distinct values for k non-empty bands."""
    values = np.unique(score)
    if values.size < k:
        return None
    q = np.quantile(score, np.arange(1, k) / k)
    pos = np.clip(np.searchsorted(values, q, side="right"), 1, values.size - 1)
    cuts = (values[pos - 1] + values[pos]) / 2.0
    if np.unique(cuts).size != k - 1:
        return None
    return cuts


def rfm_positions(cuts: np.ndarray, natural: float) -> np.ndarray | None:
    """Positions a_0 < ... < a_(k-1) on the score axis whose consecutive midpoints are exactly `cuts`, so that the
    nearest of the centres mean + a_i * direction is the customer's band. a_0 = cuts[0] - d and every next one is
    the mirror image of the previous one in the cut between them; d is taken as close to `natural` (the gap from
    the first cut to band 0's mean score) as the order allows. None when no d keeps them in order."""
    k = cuts.size + 1
    offset = np.empty(k)  # a_i = offset_i + sign_i * d
    sign = np.empty(k)
    offset[0], sign[0] = cuts[0], -1.0
    for i in range(k - 1):
        offset[i + 1], sign[i + 1] = 2.0 * cuts[i] - offset[i], -sign[i]
    # a_i < cuts[i] for i < k-1 (the mirror images then lie above their cuts)
    lo = max([0.0] + [offset[i] - cuts[i] for i in range(k - 1) if sign[i] < 0])
    hi = min([np.inf] + [cuts[i] - offset[i] for i in range(k - 1) if sign[i] > 0])
    if not lo < hi:
        return None
    margin = 0.05 * (hi - lo) if np.isfinite(hi) else 0.05 * max(natural - lo, 1e-6)
    d = float(np.clip(natural, lo + margin, hi - margin if np.isfinite(hi) else np.inf))
    return offset + sign * d


def rfm_centers(rows: np.ndarray, k: int, direction: np.ndarray) -> np.ndarray | None:
    """Centres whose nearest-centre labelling is the k RFM bands of `rows` (None: no such k bands)."""
    base = rows.mean(axis=0)
    score = (rows - base) @ direction
    cuts = rfm_cuts(score, k)
    if cuts is None:
        return None
    natural = float(cuts[0] - score[score < cuts[0]].mean())
    positions = rfm_positions(cuts, natural)
    if positions is None:
        return None
    return base[None, :] + positions[:, None] * direction[None, :]


def fit_rfm(x: np.ndarray, ks: Sequence[int], cfg: MlSettings, columns: Mapping[str, int]) -> list[Candidate]:
    fam = cfg.candidates["rfm"]
    roles = rfm_columns(fam, columns)
    if not roles:
        return []  # no recency / frequency / monetary column among the features: no baseline
    direction = rfm_direction(x.shape[1], roles)
    used = ",".join(str(fam[role]) for role, _ in RFM_ROLES if fam.get(role) in columns)
    out = []
    for k in ks:
        centers = rfm_centers(x, k, direction)
        if centers is None:  # too few distinct scores for k bands, or bands too uneven to serve: skip
            continue

        def refit(rows, seed, k=k, fallback=centers):
            got = rfm_centers(rows, k, direction)
            return fallback if got is None else got

        params = {"scores": used, "bands": "equal-frequency bands of the RFM score"}
        out.append(_finish("rfm", x, centers, params, refit))
    return out


def fit_candidates(
    x: np.ndarray, ks: Sequence[int], cfg: MlSettings, columns: Mapping[str, int] | None = None
) -> list[Candidate]:
    """Every enabled family's candidates, in FAMILIES order then k. `columns` ({feature: column of x}, see
    ml.features.value_columns) tells the `rfm` family where recency, frequency and monetary are."""
    fams = cfg.candidates
    out: list[Candidate] = []
    if fams["kmeans"].get("enabled", True):
        out += fit_kmeans(x, ks, cfg)
    if fams["ward"].get("enabled", True):
        out += fit_ward(x, ks, cfg)
    if fams["gmm"].get("enabled", True):
        out += fit_gmm(x, ks, cfg)
    if fams["hdbscan"].get("enabled", True):
        out += fit_hdbscan(x, cfg)
    if fams.get("rfm", {}).get("enabled", False) and columns:
        out += fit_rfm(x, ks, cfg, columns)
    if not out:
        raise ValueError("no candidate could be fitted: enable at least one family in ml.candidates")
    return out


def candidate_ks(cfg: MlSettings, n_rows: int) -> list[int]:
    """k_min..k_max, capped so every candidate has fewer clusters than rows."""
    k_min, k_max = int(cfg.k_min), int(cfg.k_max)
    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= ml.k_min <= ml.k_max, got {k_min}..{k_max}")
    ks = [k for k in range(k_min, k_max + 1) if k < n_rows]
    if not ks:
        raise ValueError(f"only {n_rows} rows to fit: cannot form {k_min} or more clusters")
    return ks


