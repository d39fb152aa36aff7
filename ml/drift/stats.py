"""Drift statistics as plain numpy/scipy functions of small summaries (bin shares, CDF values, quantiles).

The heavy lifting (counting a day's rows into bins, reading quantiles) happens in DuckDB and numpy
(`ml.drift.reference`, `ml.drift.measure`); these functions turn the resulting vectors into numbers and are tested
against hand-computed values (`tests/ml/test_drift_stats.py`).

- `psi`: Population Stability Index over fixed reference bins, sum (c - r) ln(c / r), shares floored at eps.
- `psi_critical`: the PSI that sampling noise alone exceeds with probability `alpha`. Under "no drift",
  PSI ~ (1/n_ref + 1/n_cur) * chi2(bins - 1) (PSI is a symmetrised KL divergence; 2 n KL is asymptotically
  chi-square). Small samples therefore cannot reach the act threshold by chance: a feature drifts only when its
  PSI is >= both the configured act threshold and this critical value.
- `ks_statistic`: Kolmogorov-Smirnov distance, max |F_ref - F_cur| over a common grid of points (the reference
  quantiles), i.e. the exact KS statistic restricted to that grid (a lower bound of the full-sample one, within
  one grid step).
- `wasserstein_from_quantiles`: 1-Wasserstein (earth mover's) distance = integral over p of |Q_ref(p) - Q_cur(p)|,
  midpoint rule on equally spaced probabilities; `normalised_wasserstein` divides by the reference's scale
  (standard deviation, falling back to the quantile range) so one threshold fits every feature.
- `chi_square`: goodness of fit of today's category counts to the reference shares (statistic, dof, p-value);
  categories with an expected count below `min_expected` are pooled into one (the usual small-cell rule).
- `jensen_shannon`: Jensen-Shannon divergence in bits (0 = same, 1 = disjoint), symmetric and bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    out = np.asarray(values, dtype="float64")
    if out.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector")
    return out


def psi(ref_props: Sequence[float], cur_props: Sequence[float], eps: float = 1e-4) -> float:
    """Population Stability Index: sum over bins of (cur - ref) * ln(cur / ref).

    Both vectors are shares over the same bins; each share is floored at `eps` so an empty bin contributes a large
    but finite term. The shares are not renormalised after flooring.
    """
    ref = _vector(ref_props, "ref_props")
    cur = _vector(cur_props, "cur_props")
    if ref.shape != cur.shape:
        raise ValueError(f"psi needs two 1-D vectors over the same bins, got {ref.shape} and {cur.shape}")
    if eps <= 0:
        raise ValueError("eps must be positive")
    ref = np.maximum(ref, eps)
    cur = np.maximum(cur, eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def psi_critical(bins: int, n_ref: float, n_cur: float, alpha: float = 0.001) -> float:
    """PSI exceeded by pure sampling noise with probability `alpha` (bins = number of non-empty bins compared)."""
    if bins < 2:
        return 0.0
    if n_cur <= 0:
        return float("inf")
    inv_ref = 1.0 / n_ref if n_ref and n_ref > 0 else 0.0
    return float((inv_ref + 1.0 / n_cur) * stats.chi2.isf(alpha, bins - 1))


def ks_statistic(ref_cdf: Sequence[float], cur_cdf: Sequence[float]) -> float:
    """max |F_ref(x) - F_cur(x)| over the grid points both CDFs are evaluated at."""
    ref = _vector(ref_cdf, "ref_cdf")
    cur = _vector(cur_cdf, "cur_cdf")
    if ref.shape != cur.shape:
        raise ValueError("ks_statistic needs both CDFs on the same grid")
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(ref - cur)))


def ks_sample(ref: Sequence[float], cur: Sequence[float]) -> float:
    """Exact two-sample KS statistic of two samples (for checks; the daily job uses `ks_statistic` on a grid)."""
    a = np.sort(_vector(ref, "ref"))
    b = np.sort(_vector(cur, "cur"))
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / a.size
    fb = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def quantile_probs(points: int) -> list[float]:
    """Midpoints (i + 0.5) / points, i = 0..points-1: the probabilities the quantile sketch is read at."""
    if points < 1:
        raise ValueError("points must be >= 1")
    return [(i + 0.5) / points for i in range(points)]


def wasserstein_from_quantiles(ref_q: Sequence[float], cur_q: Sequence[float]) -> float:
    """W1 = integral_0^1 |Q_ref(p) - Q_cur(p)| dp, midpoint rule over quantiles read at `quantile_probs(n)`."""
    ref = _vector(ref_q, "ref_q")
    cur = _vector(cur_q, "cur_q")
    if ref.shape != cur.shape:
        raise ValueError("wasserstein_from_quantiles needs quantiles at the same probabilities")
    if ref.size == 0:
        return 0.0
    return float(np.mean(np.abs(ref - cur)))


def normalised_wasserstein(w1: float, ref_std: float | None, ref_q: Sequence[float] = ()) -> float:
    """W1 in units of the reference's spread: its standard deviation, else its quantile range, else 1."""
    scale = float(ref_std) if ref_std is not None and np.isfinite(ref_std) and ref_std > 0 else 0.0
    if scale == 0.0 and len(ref_q):
        q = np.asarray(ref_q, dtype="float64")
        scale = float(q.max() - q.min())
    return float(w1 / scale) if scale > 0 else float(w1)


def chi_square(ref_props: Sequence[float], cur_counts: Sequence[float], min_expected: float = 5.0) -> dict[str, float]:
    """Goodness of fit of `cur_counts` to `ref_props`: {statistic, dof, p_value}.

    Expected counts are ref_props * n (shares renormalised to 1). Categories whose expected count is below
    `min_expected` are pooled into one category (dropped if the pool is still below it); a category the reference
    never saw but today has counts is thereby tested too, without a division by zero.
    """
    ref = _vector(ref_props, "ref_props")
    cur = _vector(cur_counts, "cur_counts")
    if ref.shape != cur.shape:
        raise ValueError("chi_square needs the reference shares and today's counts over the same categories")
    n = float(cur.sum())
    if n <= 0 or ref.sum() <= 0:
        return {"statistic": 0.0, "dof": 0, "p_value": 1.0}
    expected = ref / ref.sum() * n
    small = expected < min_expected
    obs, exp = list(cur[~small]), list(expected[~small])
    if small.any():
        pooled_exp, pooled_obs = float(expected[small].sum()), float(cur[small].sum())
        if pooled_exp >= min_expected:
            obs.append(pooled_obs)
            exp.append(pooled_exp)
        elif pooled_obs > max(min_expected, 10 * pooled_exp):
            # today fills categories the reference (almost) never had: count it with a floor expectation
            obs.append(pooled_obs)
            exp.append(min_expected)
    if len(obs) < 2:
        return {"statistic": 0.0, "dof": 0, "p_value": 1.0}
    obs_a, exp_a = np.asarray(obs), np.asarray(exp)
    statistic = float(np.sum((obs_a - exp_a) ** 2 / exp_a))
    dof = len(obs) - 1
    return {"statistic": statistic, "dof": dof, "p_value": float(stats.chi2.sf(statistic, dof))}


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits: (KL(p||m) + KL(q||m)) / 2 with m = (p + q) / 2; inputs renormalised."""
    a = _vector(p, "p")
    b = _vector(q, "q")
    if a.shape != b.shape:
        raise ValueError("jensen_shannon needs two distributions over the same categories")
    if a.sum() <= 0 or b.sum() <= 0:
        return 0.0
    a = a / a.sum()
    b = b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return max(0.0, (kl(a) + kl(b)) / 2)


def chi_square_two_sample(ref_counts: Sequence[float], cur_counts: Sequence[float]) -> dict[str, float]:
    """Chi-square test of homogeneity of two count vectors over the same categories: {statistic, dof, p_value}.

    Unlike `chi_square` it treats the reference as a sample too (its own noise counts), which matters when the
    reference is a few days of orders rather than a whole table. Categories empty on both sides are ignored.
    """
    ref = _vector(ref_counts, "ref_counts")
    cur = _vector(cur_counts, "cur_counts")
    if ref.shape != cur.shape:
        raise ValueError("chi_square_two_sample needs two count vectors over the same categories")
    keep = (ref + cur) > 0
    table = np.vstack([ref[keep], cur[keep]])
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return {"statistic": 0.0, "dof": 0, "p_value": 1.0}
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return {"statistic": statistic, "dof": dof, "p_value": float(stats.chi2.sf(statistic, dof))}
