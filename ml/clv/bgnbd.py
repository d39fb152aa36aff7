"""BG/NBD: how often customers buy and whether they are still "alive" (Fader, Hardie & Lee 2005).

The model (Fader, Hardie & Lee, "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD Model",
Marketing Science 24(2), 2005): while alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha);
after each purchase they drop out with probability p ~ Beta(a, b). A customer is summarised over the calibration
period by x (repeat purchases: purchases after the first), t_x (time of the last purchase, from the first) and T (age:
time from the first purchase to the end of calibration), all in one time unit (`unit`, days or weeks).

Per customer (their eq. 6), with B the beta function,

    L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
        + [x > 0] * B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

computed in logs: the common factor with gammaln, the two terms with logaddexp (the second is log 0 when x = 0).
The four parameters are fitted on their logs (positive by construction) by L-BFGS-B with the analytic gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from ml.clv._common import ClvFitError, as_column, compress, days_per_unit, maximise

PARAMS = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}


def check_summary(x, t_x, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) as float vectors, or a ValueError saying which row breaks the model's definitions."""
    x, t_x, T = as_column("x (repeat purchases)", x), as_column("t_x (recency)", t_x), as_column("T (age)", T)
    if not (len(x) == len(t_x) == len(T)):
        raise ValueError(f"x, t_x and T must have one value per customer; got {len(x)}, {len(t_x)}, {len(T)}")
    if np.any(x != np.round(x)):
        raise ValueError("x must count repeat purchases (whole numbers)")
    if np.any(t_x > T + 1e-9):
        raise ValueError(
            "t_x (time of the last purchase) exceeds T (age) for some customers; both are measured "
            "from the customer's first purchase, T to the calibration end"
        )
    if np.any((x == 0) & (t_x != 0)):
        raise ValueError("customers with x = 0 repeat purchases must have t_x = 0")
    return x, t_x, T


def _terms(params: BgNbdParams, x, t_x, T):
    """log of the common factor, of the two terms (A3: alive through T, A4: dropped out after t_x)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    common = (
        gammaln(r + x)
        - gammaln(r)
        + r * np.log(alpha)
        + gammaln(a + b)
        + gammaln(b + x)
        - gammaln(b)
        - gammaln(a + b + x)
    )
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.full_like(a3, -np.inf)
    xr = x[repeat]
    a4[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + t_x[repeat])
    return common, a3, a4


def log_likelihood(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (a vector; its sum is the model's log-likelihood)."""
    x, t_x, T = check_summary(x, t_x, T)
    common, a3, a4 = _terms(params, x, t_x, T)
    return common + np.logaddexp(a3, a4)


def _neg_ll_and_grad(theta: np.ndarray, x, t_x, T, w, total: float) -> tuple[float, np.ndarray]:
    """Weighted mean negative log-likelihood and its gradient with respect to the log-parameters."""
    r, alpha, a, b = np.exp(theta)
    common, a3, a4 = _terms(BgNbdParams(r, alpha, a, b), x, t_x, T)
    l34 = np.logaddexp(a3, a4)
    ll = common + l34
    w3, w4 = np.exp(a3 - l34), np.exp(a4 - l34)  # shares of the two terms; w4 = 0 when x = 0
    repeat = x > 0
    inv_bx1 = np.zeros_like(x)
    inv_bx1[repeat] = 1.0 / (b + x[repeat] - 1)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x)
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 * inv_bx1
    grad = np.array([w @ d_r * r, w @ d_alpha * alpha, w @ d_a * a, w @ d_b * b])
    return -float(w @ ll) / total, -grad / total


class BgNbd:
    """BG/NBD purchase-frequency model, fitted by maximum likelihood (estimator style: learned state ends in `_`).

    `unit` is the time unit x, t_x and T are measured in ("days" or "weeks"); predictions take horizons in days.
    `min_customers` is the fewest customers a fit accepts (four parameters need a population to describe)."""

    def __init__(self, unit: str = "days", *, min_customers: int = 50) -> None:
        self.unit = unit
        self.min_customers = min_customers

    def fit(self, x, t_x, T, sample_weight=None) -> BgNbd:
        """Fit on one row per customer; `sample_weight` (customers per row, e.g. bootstrap counts) defaults to 1."""
        days_per_unit(self.unit)
        x, t_x, T = check_summary(x, t_x, T)
        w_in = np.ones(len(x)) if sample_weight is None else as_column("sample_weight", sample_weight)
        n = float(w_in.sum())
        if n < self.min_customers:
            raise ClvFitError(
                f"BG/NBD needs at least {self.min_customers} customers, got {n:g}; use a longer order history or a "
                "larger population (or lower min_customers knowingly)"
            )
        if float(w_in[x > 0].sum()) == 0:
            raise ClvFitError(
                "BG/NBD cannot be fitted: no customer bought more than once in the calibration period; use a longer "
                "calibration period, or check that repeat orders reach the order table under the same person id"
            )
        (ux, ut, uT), w, _ = compress(x, t_x, T, weights=w_in)
        keep = w > 0
        ux, ut, uT, w = ux[keep], ut[keep], uT[keep], w[keep]
        start = np.log([1.0, max(float(np.average(uT, weights=w)), 1e-3), 1.0, 1.0])
        theta = maximise(
            lambda th: _neg_ll_and_grad(th, ux, ut, uT, w, n),
            start,
            model="BG/NBD",
            names=PARAMS,
            hint="check the order history (enough repeat buyers, a calibration period several times the typical gap "
            "between purchases) and the time unit",
        )
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        self.params_ = BgNbdParams(r, alpha, a, b)
        self.log_likelihood_ = float(w @ log_likelihood(self.params_, ux, ut, uT))
        self.n_customers_ = n
        return self

    # --- predictions -------------------------------------------------------------------------------------------

    def _t(self, horizon_days) -> np.ndarray:
        return np.asarray(horizon_days, dtype=np.float64) / days_per_unit(self.unit)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        """P(still alive at T | x, t_x, T) (their eq. 11); 1 for customers without a repeat purchase."""
        x, t_x, T = check_summary(x, t_x, T)
        return p_alive(self.params_, x, t_x, T)

    def expected_purchases(self, horizon_days, x, t_x, T) -> np.ndarray:
        """E[purchases in (T, T + horizon] | x, t_x, T] (their eq. 10), horizon in days."""
        x, t_x, T = check_summary(x, t_x, T)
        return expected_purchases(self.params_, self._t(horizon_days), x, t_x, T)

    def expected_purchases_new(self, horizon_days) -> np.ndarray:
        """E[X(t)]: purchases in a new customer's first `horizon_days` after their first purchase (their eq. 7)."""
        t = self._t(horizon_days)
        zero = np.zeros_like(t)
        return expected_purchases(self.params_, t, zero, zero, zero)


def p_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), computed as a logistic."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    out = np.ones(x.shape)
    repeat = x > 0
    xr = x[repeat]
    log_odds_dead = (
        np.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + T[repeat]) - np.log(alpha + t_x[repeat]))
    )
    out[repeat] = expit(-log_odds_dead)
    return out


def expected_purchases(params: BgNbdParams, t, x, t_x, T) -> np.ndarray:
    """E[Y(t) | x, t_x, T] in the model's unit:

        (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)] * P(alive),
        z = t / (alpha+T+t).

    The hypergeometric term is evaluated after Euler's transformation, (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z),
    whose first two parameters do not grow with x (the direct form loses accuracy for frequent buyers)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t, x, t_x, T = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (t, x, t_x, T)))
    if abs(a - 1.0) < 1e-10:
        raise ClvFitError("BG/NBD expected purchases are undefined at a = 1 exactly; refit (e.g. on more data)")
    z = t / (alpha + T + t)
    c = a + b + x - 1
    tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, c, z)
    return c / (a - 1) * (1 - tail) * p_alive(params, x, t_x, T)
