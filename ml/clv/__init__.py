"""Customer lifetime value: BG/NBD purchase frequency x Gamma-Gamma spend, on numpy/scipy (no `lifetimes`).

- `summary`      `summary_from_orders(con, relation, ...)`: per person x, t_x, T, mean_spend (and a holdout count)
                 computed in DuckDB SQL from an order table (defaults fit `marts.orders`).
- `bgnbd`        `BgNbd(unit).fit(x, t_x, T)`: r, alpha, a, b, log-likelihood; `p_alive`, `expected_purchases`.
- `gamma_gamma`  `GammaGamma().fit(x, mean_spend)`: p, q, v; `expected_spend`.
- `value`        `fit`, `customer_values` (p_alive, expected purchases in 90 / 365 days, expected spend, CLV over
                 365 days discounted monthly), `bootstrap` (seeded resamples of customers, refits),
                 `customer_lifetime_value` (with percentile intervals) and `segment_totals`.

Every fit raises `ClvFitError` (a ValueError) saying what to change when the data cannot be fitted.
Not yet a pipeline stage: nothing here reads settings or writes tables.
"""

from ml.clv._common import UNITS, ClvFitError
from ml.clv.bgnbd import BgNbd, BgNbdParams
from ml.clv.gamma_gamma import GammaGamma, GammaGammaParams
from ml.clv.summary import summary_from_orders
from ml.clv.value import (
    ClvBootstrap,
    ClvFit,
    bootstrap,
    customer_lifetime_value,
    customer_values,
    discounted_purchases,
    fit,
    segment_totals,
)

__all__ = [
    "UNITS",
    "BgNbd",
    "BgNbdParams",
    "ClvBootstrap",
    "ClvFit",
    "ClvFitError",
    "GammaGamma",
    "GammaGammaParams",
    "bootstrap",
    "customer_lifetime_value",
    "customer_values",
    "discounted_purchases",
    "fit",
    "segment_totals",
    "summary_from_orders",
]
