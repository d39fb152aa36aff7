"""Candidate clusterers: fit several families on the preprocessed fit sample, score them, and pick one.

Families (`ml.candidates`, each can be switched off):
- `kmeans`: MiniBatchKMeans for every k in k_min..k_max on the whole fit sample.
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
preprocessed space (`centroid_model`). The metrics are therefore computed on those nearest-mean labels of the
whole fit sample, so they describe exactly what would be served:
- silhouette on a seeded subsample of `ml.silhouette_sample_size` rows (higher is better);
- davies_bouldin (lower is better), calinski_harabasz (higher is better), inertia (elbow plot);
- min_segment_share / max_segment_share / n_segments;
- stability: mean adjusted Rand index between `selection.stability_bootstraps` refits of the same family and k
  on bootstrap resamples (plus the original fit), all labelling one common evaluation subsample. Costly, so it is
  computed only for the best `selection.stability_top_n` eligible candidates (and then for the chosen one).

Selection rule (`select`): eligible = every segment holds >= `min_segment_share` of the fit sample and there are
at least 2 segments. Eligible candidates are ranked by the mean of their ranks in silhouette, Davies-Bouldin and
Calinski-Harabasz (tied values share their average rank; ties in the mean go to the smaller k, then family order). Walking down that ranking, the first candidate
whose stability is >= `selection.min_stability` wins. If none of the top N is stable enough, the best-ranked
eligible baseline (BASELINE_FAMILIES: `rfm`) that is stable enough wins; failing that, the most stable of them
all. If no candidate is eligible at all, the best mean rank overall wins. The reason says which case.

`weaknesses(metrics, cfg)` lists, as sentences, where the chosen candidate misses a bar (stability below
`selection.min_stability`, silhouette below `selection.min_silhouette`, a segment smaller than
`min_segment_share`): the first model of a deployment is promoted anyway and carries them (ml/train.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, ward
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    pairwise_distances_argmin_min,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture

FAMILIES = ("kmeans", "ward", "gmm", "hdbscan", "rfm")
# Deterministic, explainable families tried when no top-ranked candidate is stable enough (see `select`).
BASELINE_FAMILIES = ("rfm",)
# The RFM score's roles: (config key under ml.candidates.rfm, True if a higher value is better).
RFM_ROLES = (("recency", False), ("frequency", True), ("monetary", True))
# Coordinate of the unreachable centre that stands in for a segment id the model does not have (see
# centroid_model); preprocessed features are standardised, so real rows sit within a few units of 0.
PLACEHOLDER_COORDINATE = 1.0e6


@dataclass
class Candidate:
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


def _subsample(n: int, size: int, seed: int) -> np.ndarray:
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


# ------------------------------------------------------------------------------------------------ metrics


def score(x: np.ndarray, labels: np.ndarray, k: int, cfg: Mapping[str, Any], inertia: float | None = None) -> dict:
    """The metrics above for one labelling (0..k-1) of the preprocessed matrix x."""
    counts = np.bincount(labels, minlength=k)
    shares = counts / counts.sum()
    n_found = int((counts > 0).sum())
    if inertia is None:
        inertia = float(((x - cluster_means(x, labels)[labels]) ** 2).sum()) if n_found == k else float("nan")
    if n_found < 2:
        silhouette, davies_bouldin, calinski_harabasz = -1.0, float("inf"), 0.0
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


def _finish(
    family: str,
    x: np.ndarray,
    centers: np.ndarray,
    cfg: Mapping[str, Any],
    params: dict,
    refit: Callable[[np.ndarray, int], np.ndarray],
    extra: dict | None = None,
) -> Candidate:
    """Label the whole fit sample by nearest centre and score it."""
    labels, dist = nearest(x, centers)
    k = centers.shape[0]
    metrics = score(x, labels, k, cfg, inertia=float((dist**2).sum()))
    metrics.update(extra or {})
    return Candidate(family=family, k=k, centers=centers, labels=labels, metrics=metrics, params=params, refit=refit)


# ------------------------------------------------------------------------------------------------ families


def _kmeans_centers(x: np.ndarray, k: int, cfg: Mapping[str, Any], seed: int) -> np.ndarray:
    model = MiniBatchKMeans(
        n_clusters=int(k),
        batch_size=int(cfg["batch_size"]),
        n_init=int(cfg["n_init"]),
        max_iter=int(cfg["max_iter"]),
        random_state=int(seed),
    ).fit(x)
    return model.cluster_centers_


def fit_kmeans(x: np.ndarray, ks: Sequence[int], cfg: Mapping[str, Any]) -> list[Candidate]:
    seed = int(cfg["random_state"])
    out = []
    for k in ks:
        centers = _kmeans_centers(x, k, cfg, seed)
        params = {"batch_size": cfg["batch_size"], "n_init": cfg["n_init"], "max_iter": cfg["max_iter"]}
        out.append(_finish("kmeans", x, centers, cfg, params, lambda rows, s, k=k: _kmeans_centers(rows, k, cfg, s)))
    return out


def _ward_centers(rows: np.ndarray, k: int) -> np.ndarray:
    labels = fcluster(ward(rows), t=k, criterion="maxclust") - 1
    return cluster_means(rows, labels)


def fit_ward(x: np.ndarray, ks: Sequence[int], cfg: Mapping[str, Any]) -> list[Candidate]:
    fam = cfg["candidates"]["ward"]
    idx = _subsample(x.shape[0], int(fam["sample_size"]), int(cfg["random_state"]))
    sub = x[idx]
    tree = ward(sub)  # one linkage, cut at every k
    out = []
    for k in ks:
        labels = fcluster(tree, t=k, criterion="maxclust") - 1
        if labels.max() + 1 != k:  # fewer distinct merges than k (ties): skip rather than mislabel
            continue
        centers = cluster_means(sub, labels)

        def refit(rows, seed, k=k):
            pick = _subsample(rows.shape[0], int(fam["sample_size"]), seed)
            return _ward_centers(rows[pick], k)

        out.append(_finish("ward", x, centers, cfg, {"sample_size": len(idx)}, refit))
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


def fit_gmm(x: np.ndarray, ks: Sequence[int], cfg: Mapping[str, Any]) -> list[Candidate]:
    fam = cfg["candidates"]["gmm"]
    seed = int(cfg["random_state"])
    idx = _subsample(x.shape[0], int(fam["sample_size"]), seed)
    out = []
    for k in ks:
        centers = _gmm_centers(x[idx], k, fam, seed)

        def refit(rows, s, k=k):
            pick = _subsample(rows.shape[0], int(fam["sample_size"]), s)
            return _gmm_centers(rows[pick], k, fam, s)

        params = {"sample_size": len(idx), "covariance_type": fam["covariance_type"]}
        out.append(_finish("gmm", x, centers, cfg, params, refit))
    return out


def _hdbscan_labels(rows: np.ndarray, fam: Mapping[str, Any]) -> np.ndarray:
    """HDBSCAN labels (-1 = noise); `rows` is always a fresh sub-sample copy, so HDBSCAN may work in place."""
    min_size = max(5, int(round(float(fam["min_cluster_size_share"]) * rows.shape[0])))
    return HDBSCAN(min_cluster_size=min_size, min_samples=int(fam["min_samples"]), copy=False).fit(rows).labels_


def fit_hdbscan(x: np.ndarray, cfg: Mapping[str, Any]) -> list[Candidate]:
    fam = cfg["candidates"]["hdbscan"]
    idx = _subsample(x.shape[0], int(fam["sample_size"]), int(cfg["random_state"]))
    labels = _hdbscan_labels(x[idx], fam)
    if int((np.unique(labels) >= 0).sum()) < 2:
        return []  # nothing but noise and one cluster: no candidate
    centers = cluster_means(x[idx], labels)

    def refit(rows, seed):
        pick = _subsample(rows.shape[0], int(fam["sample_size"]), seed)
        lab = _hdbscan_labels(rows[pick], fam)
        return cluster_means(rows[pick], lab) if (lab >= 0).any() else rows[pick][:1]

    noise = {"noise_share": float((labels < 0).mean())}
    params = {
        "sample_size": len(idx),
        "min_cluster_size_share": fam["min_cluster_size_share"],
        "min_samples": fam["min_samples"],
        "noise_rule": "nearest cluster mean",
    }
    return [_finish("hdbscan", x, centers, cfg, params, refit, noise)]


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


def fit_rfm(x: np.ndarray, ks: Sequence[int], cfg: Mapping[str, Any], columns: Mapping[str, int]) -> list[Candidate]:
    fam = cfg["candidates"]["rfm"]
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
        out.append(_finish("rfm", x, centers, cfg, params, refit))
    return out


def fit_candidates(
    x: np.ndarray, ks: Sequence[int], cfg: Mapping[str, Any], columns: Mapping[str, int] | None = None
) -> list[Candidate]:
    """Every enabled family's candidates, in FAMILIES order then k. `columns` ({feature: column of x}, see
    ml.features.value_columns) tells the `rfm` family where recency, frequency and monetary are."""
    fams = cfg["candidates"]
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


def candidate_ks(cfg: Mapping[str, Any], n_rows: int) -> list[int]:
    """k_min..k_max, capped so every candidate has fewer clusters than rows."""
    k_min, k_max = int(cfg["k_min"]), int(cfg["k_max"])
    if k_min < 2 or k_max < k_min:
        raise ValueError(f"need 2 <= ml.k_min <= ml.k_max, got {k_min}..{k_max}")
    ks = [k for k in range(k_min, k_max + 1) if k < n_rows]
    if not ks:
        raise ValueError(f"only {n_rows} rows to fit: cannot form {k_min} or more clusters")
    return ks


# ------------------------------------------------------------------------------------------------ stability


def stability(candidate: Candidate, x: np.ndarray, cfg: Mapping[str, Any]) -> float:
    """Mean pairwise adjusted Rand index between the candidate and its refits on bootstrap resamples.

    Each refit sees `selection.stability_sample_size` rows drawn with replacement (seed random_state + b) and is
    fitted with the seed random_state + b; every labelling is of one common evaluation subsample (nearest mean).
    """
    sel = cfg["selection"]
    seed = int(cfg["random_state"])
    n_boot = int(sel["stability_bootstraps"])
    if candidate.refit is None or candidate.centers is None or n_boot < 1:
        return float("nan")
    eval_idx = _subsample(x.shape[0], int(sel["stability_sample_size"]), seed + 10_000)
    x_eval = x[eval_idx]
    labelings = [nearest(x_eval, candidate.centers)[0]]
    for b in range(1, n_boot + 1):
        rng = np.random.default_rng(seed + b)
        rows = x[rng.integers(0, x.shape[0], size=min(int(sel["stability_sample_size"]), x.shape[0]))]
        labelings.append(nearest(x_eval, candidate.refit(rows, seed + b))[0])
    scores = [
        adjusted_rand_score(labelings[i], labelings[j])
        for i in range(len(labelings))
        for j in range(i + 1, len(labelings))
    ]
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------------ selection


def _mean_ranks(pool: Sequence[Candidate]) -> list[float]:
    """Mean of the ranks (1 = best) in silhouette (high), Davies-Bouldin (low), Calinski-Harabasz (high)."""

    def ranks(values: Sequence[float]) -> np.ndarray:
        return rankdata(np.nan_to_num(np.asarray(values, dtype=float), nan=np.inf), method="average")

    sil = ranks([-c.metrics["silhouette"] for c in pool])
    dbi = ranks([c.metrics.get("davies_bouldin", 0.0) for c in pool])
    chi = ranks([-c.metrics.get("calinski_harabasz", 0.0) for c in pool])
    return list((sil + dbi + chi) / 3.0)


def _order(pool: Sequence[Candidate]) -> list[Candidate]:
    family_order = {f: i for i, f in enumerate(FAMILIES)}
    mean_rank = _mean_ranks(pool)
    for c, r in zip(pool, mean_rank, strict=True):
        c.metrics["mean_rank"] = float(r)
    return sorted(pool, key=lambda c: (c.metrics["mean_rank"], c.k, family_order.get(c.family, 99)))


def select(
    candidates: Iterable[Candidate],
    cfg: Mapping[str, Any],
    stability_of: Callable[[Candidate], float] | None = None,
) -> tuple[Candidate, str]:
    """The selection rule of the module docstring. `stability_of(candidate)` computes a candidate's stability
    (stored in its metrics); without it, metrics["stability"] must already be there (tests)."""
    pool = list(candidates)
    if not pool:
        raise ValueError("no candidates to select from")
    min_share = float(cfg["min_segment_share"])
    sel = cfg["selection"]
    min_stability = float(sel["min_stability"])
    top_n = max(1, int(sel["stability_top_n"]))

    def stab(c: Candidate) -> float:
        if "stability" not in c.metrics and stability_of is not None:
            c.metrics["stability"] = float(stability_of(c))
        return float(c.metrics.get("stability", float("nan")))

    eligible = [c for c in pool if c.metrics["min_segment_share"] >= min_share and c.metrics["n_segments"] >= 2]
    if not eligible:
        best = _order(pool)[0]
        stab(best)
        return best, (
            f"{best.name}: no candidate has every segment >= {min_share} of customers; fell back to the best mean "
            f"rank of silhouette/Davies-Bouldin/Calinski-Harabasz overall ({best.metrics['mean_rank']:.2f})"
        )
    ranked = _order(eligible)
    shortlist = ranked[:top_n]
    for c in shortlist:
        if stab(c) >= min_stability:
            return c, (
                f"{c.name}: best mean rank ({c.metrics['mean_rank']:.2f}) of silhouette/Davies-Bouldin/"
                f"Calinski-Harabasz among {len(eligible)}/{len(pool)} candidates with every segment >= {min_share} "
                f"and stability (bootstrap ARI) {c.metrics['stability']:.3f} >= {min_stability}"
            )
    shortlisted = {id(c) for c in shortlist}
    baselines = [c for c in ranked if c.family in BASELINE_FAMILIES and id(c) not in shortlisted]
    for c in baselines:
        if stab(c) >= min_stability:
            return c, (
                f"{c.name}: none of the top {len(shortlist)} eligible candidates reached stability {min_stability}; "
                f"took the best-ranked stable baseline (mean rank {c.metrics['mean_rank']:.2f}, stability "
                f"{c.metrics['stability']:.3f})"
            )
    tried = [*shortlist, *baselines]
    best = max(tried, key=lambda c: np.nan_to_num(c.metrics["stability"], nan=-1.0))
    return best, (
        f"{best.name}: none of the top {len(shortlist)} eligible candidates"
        + (f" nor the {len(baselines)} baselines" if baselines else "")
        + f" reached stability {min_stability}; took the most stable of them ({best.metrics['stability']:.3f})"
    )


def weaknesses(metrics: Mapping[str, float], cfg: Mapping[str, Any]) -> list[str]:
    """Where a chosen candidate misses a quality bar, one short sentence each (empty: none)."""
    sel = cfg["selection"]
    out = []
    stability_value = metrics.get("stability")
    min_stability = float(sel["min_stability"])
    if stability_value is None or not np.isfinite(stability_value):
        out.append("stability not measured")
    elif stability_value < min_stability:
        out.append(f"stability {stability_value:.3f} < {min_stability} (ml.selection.min_stability)")
    min_silhouette = sel.get("min_silhouette")
    silhouette_value = metrics.get("silhouette")
    if min_silhouette is not None and silhouette_value is not None and silhouette_value < float(min_silhouette):
        out.append(f"silhouette {silhouette_value:.3f} < {float(min_silhouette)} (ml.selection.min_silhouette)")
    min_share = float(cfg["min_segment_share"])
    smallest = metrics.get("min_segment_share")
    if smallest is not None and smallest < min_share:
        out.append(f"smallest segment {smallest:.1%} < {min_share:.0%} of customers (ml.min_segment_share)")
    return out
