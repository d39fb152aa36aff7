"""Customer lifetime value from BG/NBD x Gamma-Gamma, its bootstrap interval, and totals per segment.

CLV here is the discounted expected spend of a customer over the next `horizon_days` (default 365) after the
calibration end:

    CLV = E[spend per purchase | x, m_x] * sum_k (E[Y(t_k)] - E[Y(t_(k-1))]) / (1 + d)^(t_k / 365 days)

with the horizon cut into `periods` equal steps (default 12, monthly), the expected purchases of each step
(BG/NBD, conditional on the customer's history) discounted at the step's end with the annual rate d
(`annual_discount_rate`, default 0.10; 0 gives plain expected purchases x expected spend). Spend is the Gamma-Gamma
conditional mean, which assumes spend independent of purchase frequency. Amounts are in the summary's currency;
CLV is revenue, not margin (multiply by a margin yourself).

The interval is a percentile bootstrap over customers: resample the customers with replacement `n_resamples` times
(seeded), refit both models on each resample, and recompute every customer's CLV with the refitted parameters.
It measures how uncertain the model's expected value is given the data (parameter uncertainty); it is not a
prediction interval for what one customer will actually spend, which is far wider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.clv._common import ClvFitError, compress, days_per_unit
from ml.clv.bgnbd import BgNbd, BgNbdParams, check_summary, expected_purchases, p_alive
from ml.clv.gamma_gamma import GammaGamma, GammaGammaParams, expected_spend

HORIZON_DAYS = 365.0
ANNUAL_DISCOUNT_RATE = 0.10
PERIODS = 12
N_RESAMPLES = 200
LEVEL = 0.90
MAX_FAILED_SHARE = 0.05  # resamples that cannot be fitted; above this share the interval is refused
_CHUNK = 20_000  # customers per block when evaluating all bootstrap draws


@dataclass(frozen=True)
class ClvFit:
    """Fitted parameters of both models, in `unit`."""

    unit: str
    frequency: BgNbdParams
    spend: GammaGammaParams
    log_likelihood: float  # BG/NBD
    spend_log_likelihood: float
    n_customers: float
    n_repeat_buyers: float

    def as_dict(self) -> dict[str, float | str]:
        return {
            "unit": self.unit,
            **self.frequency.as_dict(),
            **self.spend.as_dict(),
            "log_likelihood": self.log_likelihood,
            "spend_log_likelihood": self.spend_log_likelihood,
            "n_customers": self.n_customers,
            "n_repeat_buyers": self.n_repeat_buyers,
        }


def _columns(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    missing = {"x", "t_x", "T", "mean_spend"} - set(summary.columns)
    if missing:
        raise ValueError(f"summary lacks columns {sorted(missing)}; build it with ml.clv.summary_from_orders")
    x, t_x, T = check_summary(summary["x"], summary["t_x"], summary["T"])
    return x, t_x, T, summary["mean_spend"].to_numpy(dtype=np.float64)


def fit(
    summary: pd.DataFrame,
    *,
    unit: str,
    sample_weight=None,
    min_customers: int = 50,
    min_repeat_buyers: int = 30,
) -> ClvFit:
    """Fit BG/NBD on (x, t_x, T) and Gamma-Gamma on the repeat buyers' mean_spend; ClvFitError when either cannot."""
    x, t_x, T, m = _columns(summary)
    bg = BgNbd(unit, min_customers=min_customers).fit(x, t_x, T, sample_weight=sample_weight)
    gg = GammaGamma(min_repeat_buyers=min_repeat_buyers).fit(x, m, sample_weight=sample_weight)
    return ClvFit(
        unit, bg.params_, gg.params_, bg.log_likelihood_, gg.log_likelihood_, bg.n_customers_, gg.n_customers_
    )


def _step_ends(unit: str, horizon_days: float, periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the horizon's steps in the model's unit, and the discount-time of each in years."""
    if horizon_days <= 0 or periods < 1:
        raise ValueError("horizon_days must be > 0 and periods >= 1")
    ends_days = horizon_days * np.arange(1, periods + 1) / periods
    return ends_days / days_per_unit(unit), ends_days / 365.0


def discounted_purchases(
    params: BgNbdParams,
    x,
    t_x,
    T,
    *,
    unit: str,
    horizon_days: float = HORIZON_DAYS,
    annual_discount_rate: float = ANNUAL_DISCOUNT_RATE,
    periods: int = PERIODS,
) -> np.ndarray:
    """Sum over the horizon's steps of the expected purchases in each step, discounted to the calibration end."""
    if annual_discount_rate <= -1:
        raise ValueError("annual_discount_rate must be > -1 (0.10 is 10 % a year)")
    ends, years = _step_ends(unit, horizon_days, periods)
    (ux, ut, uT), _, inverse = compress(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T)))
    cumulative = expected_purchases(params, ends[None, :], ux[:, None], ut[:, None], uT[:, None])
    per_step = np.diff(cumulative, axis=1, prepend=0.0)
    factors = (1.0 + annual_discount_rate) ** -years
    return (per_step @ factors)[inverse]


def customer_values(
    model: ClvFit,
    summary: pd.DataFrame,
    *,
    horizon_days: float = HORIZON_DAYS,
    annual_discount_rate: float = ANNUAL_DISCOUNT_RATE,
    periods: int = PERIODS,
) -> pd.DataFrame:
    """Per customer: p_alive, expected purchases in 90 and 365 days, expected spend per purchase, clv."""
    x, t_x, T, m = _columns(summary)
    per_unit = days_per_unit(model.unit)
    out = pd.DataFrame(index=summary.index)
    if "person_id" in summary:
        out["person_id"] = summary["person_id"]
    out["p_alive"] = p_alive(model.frequency, x, t_x, T)
    out["expected_purchases_90d"] = expected_purchases(model.frequency, 90 / per_unit, x, t_x, T)
    out["expected_purchases_365d"] = expected_purchases(model.frequency, 365 / per_unit, x, t_x, T)
    out["expected_spend"] = expected_spend(model.spend, x, m)
    out["clv"] = out["expected_spend"] * discounted_purchases(
        model.frequency,
        x,
        t_x,
        T,
        unit=model.unit,
        horizon_days=horizon_days,
        annual_discount_rate=annual_discount_rate,
        periods=periods,
    )
    return out


@dataclass(frozen=True)
class ClvBootstrap:
    """The point fit, the refits on the resamples that could be fitted, and how many could not."""

    point: ClvFit
    draws: list[ClvFit]
    n_failed: int
    seed: int
    horizon_days: float = HORIZON_DAYS
    annual_discount_rate: float = ANNUAL_DISCOUNT_RATE
    periods: int = PERIODS
    failures: list[str] = field(default_factory=list)

    def parameter_table(self) -> pd.DataFrame:
        """One row per refit: its parameters and log-likelihoods."""
        return pd.DataFrame([d.as_dict() for d in self.draws])


def bootstrap(
    summary: pd.DataFrame,
    *,
    unit: str,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    horizon_days: float = HORIZON_DAYS,
    annual_discount_rate: float = ANNUAL_DISCOUNT_RATE,
    periods: int = PERIODS,
    min_customers: int = 50,
    min_repeat_buyers: int = 30,
) -> ClvBootstrap:
    """Fit on `summary`, then refit on `n_resamples` resamples of its customers (with replacement, seeded).

    A resample the models cannot fit is skipped and counted; more than MAX_FAILED_SHARE of them failing raises
    ClvFitError (the interval would describe only the resamples that happened to fit)."""
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1 (200 or more for a 90 % interval)")
    kwargs = {"unit": unit, "min_customers": min_customers, "min_repeat_buyers": min_repeat_buyers}
    point = fit(summary, **kwargs)
    rng = np.random.default_rng(seed)
    n = len(summary)
    draws: list[ClvFit] = []
    failures: list[str] = []
    for _ in range(n_resamples):
        weights = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
        try:
            draws.append(fit(summary, sample_weight=weights, **kwargs))
        except ClvFitError as exc:
            failures.append(str(exc))
    if len(failures) > MAX_FAILED_SHARE * n_resamples:
        raise ClvFitError(
            f"bootstrap: {len(failures)} of {n_resamples} resamples could not be fitted (first: {failures[0]}); "
            "the data are too thin for an interval: use more customers or a longer calibration period"
        )
    return ClvBootstrap(point, draws, len(failures), seed, horizon_days, annual_discount_rate, periods, failures)


def _draw_values(boot: ClvBootstrap, x, t_x, T, m) -> np.ndarray:
    """CLV of the given customers under every refit: an array customers x draws."""
    cols = []
    for d in boot.draws:
        cols.append(
            expected_spend(d.spend, x, m)
            * discounted_purchases(
                d.frequency,
                x,
                t_x,
                T,
                unit=d.unit,
                horizon_days=boot.horizon_days,
                annual_discount_rate=boot.annual_discount_rate,
                periods=boot.periods,
            )
        )
    return np.column_stack(cols)


def _bounds(level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1, e.g. 0.90")
    return 100 * (1 - level) / 2, 100 * (1 + level) / 2


def customer_lifetime_value(summary: pd.DataFrame, boot: ClvBootstrap, *, level: float = LEVEL) -> pd.DataFrame:
    """`customer_values` under the point fit, with `clv_lower` / `clv_upper`: the bootstrap percentile interval."""
    lo, hi = _bounds(level)
    values = customer_values(
        boot.point,
        summary,
        horizon_days=boot.horizon_days,
        annual_discount_rate=boot.annual_discount_rate,
        periods=boot.periods,
    )
    x, t_x, T, m = _columns(summary)
    lower, upper = np.empty(len(x)), np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        s = slice(start, start + _CHUNK)
        block = _draw_values(boot, x[s], t_x[s], T[s], m[s])
        lower[s], upper[s] = np.percentile(block, [lo, hi], axis=1)
    values["clv_lower"] = lower
    values["clv_upper"] = upper
    return values


def segment_totals(
    summary: pd.DataFrame,
    segments: pd.Series | Mapping,
    boot: ClvBootstrap,
    *,
    level: float = LEVEL,
) -> pd.DataFrame:
    """One row per segment: customers, clv_total and clv_mean with their bootstrap percentile intervals.

    `segments` maps person_id -> segment (a Series indexed by person_id, or a dict); every customer of `summary`
    needs one. The interval of a total is the percentile of the segment's total over the refits (customers fixed),
    so it is narrower than the sum of the customers' intervals, as it should be."""
    if "person_id" not in summary:
        raise ValueError("summary needs a person_id column to match segments")
    seg_map = pd.Series(segments) if not isinstance(segments, pd.Series) else segments
    labels = summary["person_id"].map(seg_map)
    if labels.isna().any():
        missing = summary.loc[labels.isna(), "person_id"]
        raise ValueError(
            f"{len(missing)} customers have no segment (e.g. {list(missing[:3])}); pass an assignment "
            "for every person in the summary, or filter the summary first"
        )
    codes, names = pd.factorize(labels, sort=True)
    k = len(names)
    lo, hi = _bounds(level)
    point = customer_values(
        boot.point,
        summary,
        horizon_days=boot.horizon_days,
        annual_discount_rate=boot.annual_discount_rate,
        periods=boot.periods,
    )["clv"].to_numpy()
    x, t_x, T, m = _columns(summary)
    totals = np.zeros((k, len(boot.draws)))
    for start in range(0, len(x), _CHUNK):
        s = slice(start, start + _CHUNK)
        block = _draw_values(boot, x[s], t_x[s], T[s], m[s])
        np.add.at(totals, codes[s], block)
    counts = np.bincount(codes, minlength=k)
    total = np.bincount(codes, weights=point, minlength=k)
    lower, upper = np.percentile(totals, [lo, hi], axis=1)
    return pd.DataFrame(
        {
            "segment": names,
            "customers": counts,
            "clv_total": total,
            "clv_total_lower": lower,
            "clv_total_upper": upper,
            "clv_mean": total / counts,
            "clv_mean_lower": lower / counts,
            "clv_mean_upper": upper / counts,
        }
    )
