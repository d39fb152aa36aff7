"""Judging the fitted candidates (`ml.candidates`): their metrics, bootstrap stability, ranking, the selection rule
and the quality bars a chosen one may miss.

Metrics (`score_candidates`, from `score`) are computed on the nearest-mean labels of the whole fit sample, so they
describe exactly what would be served:
- silhouette on a seeded subsample of `ml.silhouette_sample_size` rows (higher is better);
- davies_bouldin (lower is better), calinski_harabasz (higher is better), inertia (elbow plot);
- min_segment_share / max_segment_share / n_segments;
- stability (`stability`): mean adjusted Rand index between `selection.stability_bootstraps` refits of the same
  family and k on bootstrap resamples (plus the original fit), all labelling one common evaluation subsample.
  Costly, so it is computed only for the best `selection.stability_top_n` eligible candidates (and then for the
  chosen one).

Selection rule (`select`): eligible = every segment holds >= `min_segment_share` of the fit sample and there are
at least 2 segments. The plain baseline (`plain_baseline`) is MiniBatchKMeans with k chosen by silhouette alone:
the eligible `kmeans` candidate with the best silhouette. It sets the floor on the number of segments: only
eligible candidates with at least as many segments as the baseline compete (the baseline among them). A coarser
partition's indices are not comparable with a finer one's (silhouette and Davies-Bouldin tend to favour few
segments), and ranking across k let over-coarse solutions win (issue #15: a 3-segment mixture, ARI 0.61, over the
baseline's 6 segments, ARI 0.93, on a world with five planted groups; tests/ml/test_selection_generalises.py judges
the rule on two generated worlds). Without an eligible `kmeans` candidate every eligible candidate competes.

The competitors are ranked by the mean of their ranks in silhouette, Davies-Bouldin and Calinski-Harabasz (tied
values share their average rank; ties in the mean go to the smaller k, then family order). Walking down that
ranking, the first of the top `selection.stability_top_n` whose stability is >= `selection.min_stability` wins. If
none of them is stable enough, the best-ranked competing baseline of BASELINE_FAMILIES (`rfm`) that is stable
enough wins; failing that, the most stable of those tried. If no candidate is eligible at all, the best mean rank
overall wins. The reason says which case, and names the plain baseline and the floor it set.

`weaknesses(metrics, cfg)` lists, as sentences, where the chosen candidate misses a bar (stability below
`selection.min_stability`, silhouette below `selection.min_silhouette`, a segment smaller than
`min_segment_share`): the first model of a deployment is promoted anyway and carries them (ml/train.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn import config_context
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score

from ml.candidates import FAMILIES, Candidate, cluster_means, nearest, subsample
from seg.core.config import MlSettings

# Deterministic, explainable families tried when no top-ranked candidate is stable enough (see `select`).
BASELINE_FAMILIES = ("rfm",)
# The family of the plain baseline that anchors the choice: MiniBatchKMeans, its k chosen by silhouette alone.
PLAIN_BASELINE_FAMILY = "kmeans"


# ------------------------------------------------------------------------------------------------ metrics


def score(x: np.ndarray, labels: np.ndarray, k: int, cfg: MlSettings, inertia: float | None = None) -> dict:
    """The metrics above for one labelling (0..k-1) of the preprocessed matrix x."""
    counts = np.bincount(labels, minlength=k)
    shares = counts / counts.sum()
    n_found = int((counts > 0).sum())
    if inertia is None:
        inertia = float(((x - cluster_means(x, labels)[labels]) ** 2).sum()) if n_found == k else float("nan")
    if n_found < 2:
        silhouette, davies_bouldin, calinski_harabasz = -1.0, float("inf"), 0.0
    else:
        with config_context(working_memory=int(cfg.silhouette_working_memory_mb)):
            silhouette = float(
                silhouette_score(
                    x,
                    labels,
                    sample_size=min(int(cfg.silhouette_sample_size), x.shape[0]),
                    random_state=int(cfg.random_state),
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

def score_candidates(candidates: list[Candidate], x: np.ndarray, cfg: MlSettings) -> list[Candidate]:
    """Fill in every candidate's metrics (in place; returns the same list): `score` of its labels, with the inertia
    and the family-specific metrics it was fitted with."""
    for c in candidates:
        c.metrics = {**score(x, c.labels, c.k, cfg, inertia=c.metrics.get("inertia")), **c.metrics}
    return candidates


# ------------------------------------------------------------------------------------------------ stability


def stability(candidate: Candidate, x: np.ndarray, cfg: MlSettings) -> float:
    """Mean pairwise adjusted Rand index between the candidate and its refits on bootstrap resamples.

    Each refit sees `selection.stability_sample_size` rows drawn with replacement (seed random_state + b) and is
    fitted with the seed random_state + b; every labelling is of one common evaluation subsample (nearest mean).
    """
    sel = cfg.selection
    seed = int(cfg.random_state)
    n_boot = int(sel.stability_bootstraps)
    if candidate.refit is None or candidate.centers is None or n_boot < 1:
        return float("nan")
    eval_idx = subsample(x.shape[0], int(sel.stability_sample_size), seed + 10_000)
    x_eval = x[eval_idx]
    labelings = [nearest(x_eval, candidate.centers)[0]]
    for b in range(1, n_boot + 1):
        rng = np.random.default_rng(seed + b)
        rows = x[rng.integers(0, x.shape[0], size=min(int(sel.stability_sample_size), x.shape[0]))]
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


def plain_baseline(eligible: Sequence[Candidate]) -> Candidate | None:
    """MiniBatchKMeans with k by silhouette: the eligible PLAIN_BASELINE_FAMILY candidate with the best silhouette
    (ties: the smaller k); None when that family has no eligible candidate."""
    own = [c for c in eligible if c.family == PLAIN_BASELINE_FAMILY]
    if not own:
        return None
    return min(own, key=lambda c: (-np.nan_to_num(c.metrics["silhouette"], nan=-np.inf), c.k))


def _floor(baseline: Candidate | None, eligible: Sequence[Candidate], competing: Sequence[Candidate]) -> str:
    """The reason's closing clause: who competed, and the floor on k the plain baseline set."""
    if baseline is None:
        return f"; no eligible {PLAIN_BASELINE_FAMILY} candidate, so no plain baseline: every k competed"
    coarser = len(eligible) - len(competing)
    return (
        f"; competing: the {len(competing)} eligible candidates with at least the {baseline.k} segments of the plain "
        f"baseline {baseline.name} (MiniBatchKMeans, k by silhouette: {baseline.metrics['silhouette']:.3f})"
        + (f", {coarser} coarser ones not" if coarser else "")
    )


def select(
    candidates: Iterable[Candidate],
    cfg: MlSettings,
    stability_of: Callable[[Candidate], float] | None = None,
) -> tuple[Candidate, str]:
    """The selection rule of the module docstring. `stability_of(candidate)` computes a candidate's stability
    (stored in its metrics); without it, metrics["stability"] must already be there (tests)."""
    pool = list(candidates)
    if not pool:
        raise ValueError("no candidates to select from")
    min_share = float(cfg.min_segment_share)
    min_stability = float(cfg.selection.min_stability)
    top_n = max(1, int(cfg.selection.stability_top_n))

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
    baseline = plain_baseline(eligible)
    competing = eligible if baseline is None else [c for c in eligible if c.k >= baseline.k]
    floor = _floor(baseline, eligible, competing)
    ranked = _order(competing)
    shortlist = ranked[:top_n]
    for c in shortlist:
        if stab(c) >= min_stability:
            return c, (
                f"{c.name}: {'the plain baseline itself: ' if c is baseline else ''}best mean rank "
                f"({c.metrics['mean_rank']:.2f}) of silhouette/Davies-Bouldin/Calinski-Harabasz among "
                f"{len(competing)}/{len(pool)} candidates with every segment >= {min_share} and stability "
                f"(bootstrap ARI) {c.metrics['stability']:.3f} >= {min_stability}{floor}"
            )
    shortlisted = {id(c) for c in shortlist}
    baselines = [c for c in ranked if c.family in BASELINE_FAMILIES and id(c) not in shortlisted]
    for c in baselines:
        if stab(c) >= min_stability:
            return c, (
                f"{c.name}: none of the top {len(shortlist)} eligible candidates reached stability {min_stability}; "
                f"took the best-ranked stable baseline (mean rank {c.metrics['mean_rank']:.2f}, stability "
                f"{c.metrics['stability']:.3f}){floor}"
            )
    tried = [*shortlist, *baselines]
    best = max(tried, key=lambda c: np.nan_to_num(c.metrics["stability"], nan=-1.0))
    return best, (
        f"{best.name}: none of the top {len(shortlist)} eligible candidates"
        + (f" nor the {len(baselines)} baselines" if baselines else "")
        + f" reached stability {min_stability}; took the most stable of them ({best.metrics['stability']:.3f})"
        + floor
    )


def weaknesses(metrics: Mapping[str, float], cfg: MlSettings) -> list[str]:
    """Where a chosen candidate misses a quality bar, one short sentence each (empty: none)."""
    out = []
    stability_value = metrics.get("stability")
    min_stability = float(cfg.selection.min_stability)
    if stability_value is None or not np.isfinite(stability_value):
        out.append("stability not measured")
    elif stability_value < min_stability:
        out.append(f"stability {stability_value:.3f} < {min_stability} (ml.selection.min_stability)")
    min_silhouette = float(cfg.selection.min_silhouette)
    silhouette_value = metrics.get("silhouette")
    if silhouette_value is not None and silhouette_value < min_silhouette:
        out.append(f"silhouette {silhouette_value:.3f} < {min_silhouette} (ml.selection.min_silhouette)")
    min_share = float(cfg.min_segment_share)
    smallest = metrics.get("min_segment_share")
    if smallest is not None and smallest < min_share:
        out.append(f"smallest segment {smallest:.1%} < {min_share:.0%} of customers (ml.min_segment_share)")
    return out
