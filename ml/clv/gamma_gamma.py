"""Gamma-Gamma: how much customers spend per purchase (Fader, Hardie & Lee 2005; Fader & Hardie's note).

The model ("RFM and CLV: Using Iso-Value Curves for Customer Base Analysis", Journal of Marketing Research 42(4),
2005; Fader & Hardie, "The Gamma-Gamma Model of Monetary Value", 2013): a customer's transaction values are
Gamma(p, nu) around their own mean p/nu, with nu ~ Gamma(q, v) across customers. It is fitted on repeat buyers only,
on m_x, the mean value of their x repeat transactions (the first purchase is left out, as in the papers):

    f(m_x | x) = G(px+q) / (G(px) G(q)) * v^q m_x^(px-1) x^(px) / (v + x m_x)^(px+q)

It assumes spend is independent of purchase frequency: check that before trusting CLV from it (the correlation
of x and m_x over repeat buyers should be near 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from ml.clv._common import ClvFitError, as_column, compress, maximise

PARAMS = ("p", "q", "v")


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def as_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}

    @property
    def population_mean_spend(self) -> float:
        """E[M] = p v / (q - 1): the expected mean spend of a customer without repeat purchases (needs q > 1)."""
        return self.p * self.v / (self.q - 1)


def _repeat_buyers(x, mean_spend) -> tuple[np.ndarray, np.ndarray]:
    """(x, m_x) of the customers with x > 0, or a ValueError for spend the model cannot describe."""
    x = as_column("x (repeat purchases)", x)
    m = np.asarray(mean_spend, dtype=np.float64).reshape(-1)
    if len(m) != len(x):
        raise ValueError(f"x and mean_spend must have one value per customer; got {len(x)} and {len(m)}")
    repeat = x > 0
    m = m[repeat]
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(
            "mean_spend must be a positive amount for every customer with x > 0 (the Gamma-Gamma model has no "
            f"zero or negative spend); {int(np.sum(~(np.isfinite(m) & (m > 0))))} repeat buyers have none: drop "
            "free or refunded orders before summarising, or drop those customers"
        )
    return x[repeat], m


def log_likelihood(params: GammaGammaParams, x, mean_spend) -> np.ndarray:
    """Per repeat buyer Gamma-Gamma log-likelihood (customers with x = 0 are left out)."""
    x, m = _repeat_buyers(x, mean_spend)
    return _ll(params.p, params.q, params.v, x, m)


def _ll(p, q, v, x, m):
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + x * m)
    )


def _neg_ll_and_grad(theta, x, m, w, total):
    p, q, v = np.exp(theta)
    px = p * x
    log_xm_v = np.log(v + x * m)
    ll = _ll(p, q, v, x, m)
    d_p = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - log_xm_v)
    d_q = digamma(px + q) - digamma(q) + np.log(v) - log_xm_v
    d_v = q / v - (px + q) / (v + x * m)
    grad = np.array([w @ d_p * p, w @ d_q * q, w @ d_v * v])
    return -float(w @ ll) / total, -grad / total


class GammaGamma:
    """Gamma-Gamma spend model, fitted by maximum likelihood on repeat buyers' mean repeat-transaction value.

    `min_repeat_buyers` is the fewest repeat buyers a fit accepts."""

    def __init__(self, *, min_repeat_buyers: int = 30) -> None:
        self.min_repeat_buyers = min_repeat_buyers

    def fit(self, x, mean_spend, sample_weight=None) -> GammaGamma:
        """Fit on one row per customer (x = 0 rows are ignored); `sample_weight` defaults to 1 per row."""
        x_all = as_column("x (repeat purchases)", x)
        w_all = np.ones(len(x_all)) if sample_weight is None else as_column("sample_weight", sample_weight)
        if len(w_all) != len(x_all):
            raise ValueError(f"sample_weight must have one value per customer; got {len(w_all)}, {len(x_all)}")
        xr, m = _repeat_buyers(x_all, mean_spend)
        wr = w_all[x_all > 0]
        n = float(wr.sum())
        if n < self.min_repeat_buyers:
            raise ClvFitError(
                f"Gamma-Gamma needs at least {self.min_repeat_buyers} repeat buyers, got {n:g}; use a longer "
                "calibration period or a larger population (or lower min_repeat_buyers knowingly)"
            )
        if np.ptp(m[wr > 0]) == 0:
            raise ClvFitError(
                "Gamma-Gamma cannot be fitted: every repeat buyer has the same mean spend; the model "
                "needs spend that varies between customers"
            )
        (ux, um), w, _ = compress(xr, m, weights=wr)
        keep = w > 0
        ux, um, w = ux[keep], um[keep], w[keep]
        # Start from a moment match of the mean spend: p = 1, q = 2 puts E[M] = v.
        start = np.log([1.0, 2.0, float(np.average(um, weights=w))])
        theta = maximise(
            lambda th: _neg_ll_and_grad(th, ux, um, w, n),
            start,
            model="Gamma-Gamma",
            names=PARAMS,
            hint="check the spend amounts (one currency, no placeholder values) and that there are enough repeat buyers",
        )
        p, q, v = (float(t) for t in np.exp(theta))
        if q <= 1:
            raise ClvFitError(
                f"Gamma-Gamma fit has q = {q:.3g} <= 1: the population's mean spend is infinite under the model "
                "(a heavy tail of big spenders); cap or remove outlier amounts, or model spend another way"
            )
        self.params_ = GammaGammaParams(p, q, v)
        self.log_likelihood_ = float(w @ _ll(p, q, v, ux, um))
        self.n_customers_ = n
        return self

    def expected_spend(self, x, mean_spend) -> np.ndarray:
        """E[M | x, m_x] = p (v + x m_x) / (p x + q - 1): a weighted mean of the population mean and the customer's
        own mean; customers with x = 0 (mean_spend ignored, may be NaN) get the population mean."""
        return expected_spend(self.params_, x, mean_spend)


def expected_spend(params: GammaGammaParams, x, mean_spend) -> np.ndarray:
    x = as_column("x (repeat purchases)", x)
    m = np.asarray(mean_spend, dtype=np.float64).reshape(-1)
    m = np.where(x > 0, m, 0.0)
    if not np.all(np.isfinite(m)):
        raise ValueError("mean_spend is missing for some customers with x > 0")
    p, q, v = params.p, params.q, params.v
    return p * (v + x * m) / (p * x + q - 1)
