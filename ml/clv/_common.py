"""What the CLV models share: the error they raise, time units, input checks and row compression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

# Days per time unit. The models are fitted and queried in one unit; horizons are given in days and converted.
UNITS: dict[str, float] = {"days": 1.0, "weeks": 7.0}

# Log-parameters are bounded to keep exp() finite; a fit that ends on a bound has not found an interior optimum.
LOG_BOUND = 18.0


class ClvFitError(ValueError):
    """The data cannot be fitted by a CLV model; the message says what to change."""


def days_per_unit(unit: str) -> float:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, got {unit!r}")
    return UNITS[unit]


def as_column(name: str, values: Any) -> np.ndarray:
    """A finite, non-negative float64 vector, or a ValueError naming the column."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has missing or infinite values; drop or fill those customers first")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative values; frequency, recency and age are counts and durations >= 0")
    return arr


def compress(
    *columns: np.ndarray, weights: np.ndarray | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of `columns`, their summed weights, and the index of each input row among them.

    The likelihoods are sums over customers of a function of their row, so customers with the same row are fitted
    once with a weight: order histories in days or weeks repeat rows heavily, and a bootstrap resample is just a
    new set of weights on the same distinct rows."""
    stacked = np.column_stack(columns)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=np.float64)
    counts = np.bincount(inverse, weights=w, minlength=len(unique))
    return [unique[:, i] for i in range(unique.shape[1])], counts, inverse


def maximise(
    neg_ll_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    *,
    model: str,
    names: tuple[str, ...],
    hint: str,
) -> np.ndarray:
    """Minimise a negative log-likelihood over log-parameters with L-BFGS-B and an analytic gradient.

    Raises ClvFitError when the optimiser reports failure or stops on a bound (a parameter running off to 0 or
    infinity: the data do not identify the model), with `hint` saying what to change."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    result = minimize(
        neg_ll_and_grad,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    values = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, np.exp(theta), strict=True))
    # L-BFGS-B can stop on a line search a hair from the optimum; a vanishing gradient there is convergence.
    converged = result.success or float(np.max(np.abs(result.jac))) < 1e-6
    if not converged or not np.all(np.isfinite(theta)):
        raise ClvFitError(f"{model} fit did not converge ({result.message}; last {values}); {hint}")
    on_bound = [n for n, t in zip(names, theta, strict=True) if abs(t) > LOG_BOUND - 1e-3]
    if on_bound:
        raise ClvFitError(
            f"{model} fit ran to the edge of the parameter space ({', '.join(on_bound)} -> 0 or infinity; {values}): "
            f"the data do not identify the model; {hint}"
        )
    return theta
