"""ml.drift.stats on hand-computed values (and against scipy's reference implementations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ml.drift import stats as ds


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        # 0.25*ln(0.25/0.5)*(-1) + 0.25*ln(0.75/0.5) = 0.25*0.693147 + 0.25*0.405465
        ([0.5, 0.5], [0.25, 0.75], 0.274653),
        # 0.3*ln4 + 0.1*ln1.5 + 0.1*ln1.5 + 0.3*ln4
        ([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], 0.912870),
        # empty reference bin floored at 1e-4: -0.1*ln(0.8) + (0.1-0.0001)*ln(1000)
        ([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], 0.712399),
    ],
)
def test_psi_matches_hand_computed_values(ref, cur, expected):
    assert ds.psi(ref, cur, eps=1e-4) == pytest.approx(expected, abs=1e-6)


def test_psi_critical_is_the_scaled_chi_square_quantile():
    # (1/1000 + 1/100) * chi2.isf(0.001, 9) = 0.011 * 27.8772
    assert ds.psi_critical(10, 1000, 100, alpha=0.001) == pytest.approx(0.011 * 27.877166, rel=1e-5)
    assert ds.psi_critical(10, 10**6, 10**6) < 0.0001
    assert math.isinf(ds.psi_critical(10, 1000, 0))


def test_psi_critical_bounds_the_psi_of_samples_from_one_distribution():
    rng = np.random.default_rng(0)
    edges = np.quantile(rng.normal(size=100_000), np.linspace(0.1, 0.9, 9))
    ref = np.full(10, 0.1)
    crit = ds.psi_critical(10, 10**9, 300, alpha=0.001)
    over = 0
    for _ in range(300):
        counts = np.bincount(np.searchsorted(edges, rng.normal(size=300)), minlength=10)
        over += ds.psi(ref, counts / 300) >= crit
    assert over <= 3  # ~0.1 % expected; the noise floor really is a floor


def test_ks_statistic_is_the_largest_cdf_gap():
    assert ds.ks_statistic([0.1, 0.5, 0.9], [0.2, 0.3, 0.95]) == pytest.approx(0.2)
    assert ds.ks_statistic([], []) == 0.0


def test_ks_sample_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=400), rng.normal(0.3, 1.0, size=300)
    assert ds.ks_sample(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic)
    # hand: {1,2,3} vs {2,3,4}: at x=1 F=1/3 vs 0, at 2: 2/3 vs 1/3, at 3: 1 vs 2/3 -> 1/3
    assert ds.ks_sample([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)


def test_wasserstein_of_a_shift_is_the_shift_and_matches_scipy():
    probs = ds.quantile_probs(4)
    assert probs == [0.125, 0.375, 0.625, 0.875]
    assert ds.wasserstein_from_quantiles([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(2.0)
    # |1-2| + |2-2| + |3-2| + |4-10| = 8, / 4
    assert ds.wasserstein_from_quantiles([1, 2, 3, 4], [2, 2, 2, 10]) == pytest.approx(2.0)
    rng = np.random.default_rng(2)
    a, b = rng.exponential(size=20_000), rng.exponential(2.0, size=20_000)
    p = ds.quantile_probs(200)
    approx = ds.wasserstein_from_quantiles(np.quantile(a, p), np.quantile(b, p))
    assert approx == pytest.approx(stats.wasserstein_distance(a, b), rel=0.05)


def test_normalised_wasserstein_uses_the_reference_spread():
    assert ds.normalised_wasserstein(2.0, 4.0) == pytest.approx(0.5)
    assert ds.normalised_wasserstein(2.0, 0.0, [1.0, 5.0]) == pytest.approx(0.5)
    assert ds.normalised_wasserstein(2.0, None) == pytest.approx(2.0)


def test_chi_square_matches_hand_computed_value_and_scipy():
    # n=100, expected 50/30/20, observed 40/30/30: (100/50) + 0 + (100/20) = 7, dof 2
    out = ds.chi_square([0.5, 0.3, 0.2], [40, 30, 30])
    assert out["statistic"] == pytest.approx(7.0)
    assert out["dof"] == 2
    assert out["p_value"] == pytest.approx(math.exp(-3.5))  # chi2 sf with 2 dof is exp(-x/2)
    assert out["p_value"] == pytest.approx(stats.chisquare([40, 30, 30], [50, 30, 20]).pvalue)


def test_chi_square_pools_small_cells():
    # expected 48.5, 48.5, 2, 1 -> the last two pool into one cell of expected 3 < 5, observed 3: dropped
    out = ds.chi_square([0.485, 0.485, 0.02, 0.01], [50, 47, 2, 1])
    assert out["dof"] == 1
    # a category the reference never had but that fills up today is still tested
    assert ds.chi_square([0.5, 0.5, 0.0], [30, 30, 40])["p_value"] < 1e-6


def test_jensen_shannon_in_bits():
    assert ds.jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert ds.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # p=(1,0), q=(.5,.5): m=(.75,.25); KL(p||m)=log2(4/3); KL(q||m)=.5log2(2/3)+.5log2(2); mean
    expected = (math.log2(4 / 3) + 0.5 * math.log2(2 / 3) + 0.5) / 2
    assert ds.jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(expected)
    from scipy.spatial.distance import jensenshannon

    assert ds.jensen_shannon([0.2, 0.3, 0.5], [0.4, 0.4, 0.2]) == pytest.approx(
        jensenshannon([0.2, 0.3, 0.5], [0.4, 0.4, 0.2], base=2) ** 2
    )


def test_two_sample_chi_square_matches_hand_computed_value():
    # table [[30, 10], [10, 30]]: every expected count is 20 -> 4 * 100 / 20 = 20, dof 1
    out = ds.chi_square_two_sample([30, 10], [10, 30])
    assert out["statistic"] == pytest.approx(20.0)
    assert out["dof"] == 1
    assert out["p_value"] == pytest.approx(stats.chi2.sf(20.0, 1))
    from scipy.stats import chi2_contingency

    table = [[100, 200, 50, 0], [10, 20, 30, 0]]
    assert ds.chi_square_two_sample(table[0], table[1])["p_value"] == pytest.approx(
        chi2_contingency([r[:3] for r in table])[1]
    )
    assert ds.chi_square_two_sample([5, 5], [0, 0])["p_value"] == 1.0
