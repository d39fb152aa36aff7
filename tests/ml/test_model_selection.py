"""The candidate selection rule, the promotion rule and the served centroid model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from mlflow.entities.model_registry import ModelVersion

from ml.candidates import PLACEHOLDER_COORDINATE, Candidate, candidate_ks, centroid_model
from ml.promotion import promotion_decision
from ml.selection import select, weaknesses

from .conftest import default_settings

CFG = default_settings(
    {"ml": {"min_segment_share": 0.02, "selection": {"min_stability": 0.8, "stability_top_n": 3}}}
).ml


def _candidate(k, silhouette, min_share, stability=0.9, family="kmeans", dbi=None, chi=None):
    return Candidate(
        family=family,
        k=k,
        centers=None,
        labels=np.zeros(1, dtype=int),
        metrics={
            "silhouette": silhouette,
            "davies_bouldin": 1.0 / silhouette if dbi is None else dbi,
            "calinski_harabasz": 1000 * silhouette if chi is None else chi,
            "min_segment_share": min_share,
            "n_segments": float(k),
            "stability": stability,
        },
    )


def test_best_mean_rank_among_candidates_with_large_enough_segments_wins():
    pool = [_candidate(3, 0.40, 0.10), _candidate(4, 0.55, 0.01), _candidate(5, 0.45, 0.05)]
    chosen, reason = select(pool, CFG)
    assert chosen.k == 5  # k=4 is better on every metric but has a 1% segment
    assert "kmeans_k5" in reason


def test_the_plain_baseline_sets_the_floor_and_mean_rank_decides_above_it():
    # k=7 has the best silhouette (the plain baseline); k=6 is better on Davies-Bouldin and Calinski-Harabasz but
    # coarser than the baseline, so it does not compete (rank averaging made over-coarse solutions win, #15)
    pool = [_candidate(6, 0.39, 0.1, dbi=1.0, chi=3400), _candidate(7, 0.41, 0.1, dbi=1.1, chi=3000)]
    assert select(pool, CFG)[0].k == 7
    # a finer candidate of another family competes, and mean rank of the three indices decides among them
    pool.append(_candidate(8, 0.42, 0.1, dbi=1.05, chi=3100, family="ward"))
    assert select(pool, CFG)[0].name == "ward_k8"


def test_an_unstable_candidate_is_passed_over_for_the_next_stable_one():
    pool = [_candidate(4, 0.6, 0.1, stability=0.5), _candidate(5, 0.5, 0.1, stability=0.95)]
    chosen, reason = select(pool, CFG)
    assert chosen.k == 5 and "stability" in reason


def test_stability_is_computed_lazily_for_the_shortlist_only():
    pool = [_candidate(k, 0.9 - 0.1 * k, 0.1) for k in range(2, 8)]
    for c in pool:
        del c.metrics["stability"]
    asked = []
    chosen, _ = select(pool, CFG, lambda c: asked.append(c.k) or 0.5)
    assert asked == [2, 3, 4]  # top 3 by mean rank, none stable enough
    assert "none of the top 3" in select(pool, CFG)[1]
    assert chosen.k == 2


def test_ties_go_to_the_smaller_k():
    chosen, _ = select([_candidate(6, 0.5, 0.1), _candidate(3, 0.5, 0.1)], CFG)
    assert chosen.k == 3


def test_without_eligible_candidates_the_best_mean_rank_is_taken_and_said():
    chosen, reason = select([_candidate(3, 0.3, 0.01), _candidate(4, 0.6, 0.001)], CFG)
    assert chosen.k == 4
    assert "fell back" in reason


def test_candidate_ks_are_capped_by_the_number_of_rows():
    cfg = replace(CFG, k_min=3, k_max=10)
    assert candidate_ks(cfg, n_rows=6) == [3, 4, 5]
    with pytest.raises(ValueError):
        candidate_ks(cfg, n_rows=3)


def test_centroid_model_predicts_segment_ids_and_never_a_missing_id():
    centers = {0: np.array([0.0, 0.0]), 3: np.array([5.0, 5.0]), 4: np.array([-5.0, 5.0])}
    model = centroid_model(centers, 2)
    assert model.cluster_centers_.shape == (5, 2)
    np.testing.assert_array_equal(model.cluster_centers_[3], [5.0, 5.0])
    assert (model.cluster_centers_[[1, 2]] >= PLACEHOLDER_COORDINATE).all()
    pts = np.array([[0.1, -0.2], [4.0, 6.0], [-6.0, 4.0], [100.0, 100.0]])
    assert model.predict(pts).tolist() == [0, 3, 4, 3]


def _version(v: str) -> ModelVersion:
    return ModelVersion(name="m", version=v, creation_timestamp=0)


def test_first_model_is_promoted():
    assert promotion_decision(0.1, None, None, 0.02) == (True, "no champion yet")


def test_model_within_tolerance_of_the_champion_is_promoted():
    promoted, reason = promotion_decision(0.49, _version("1"), 0.50, 0.02, stability=0.9, min_stability=0.8)
    assert promoted and "v1" in reason


def test_model_worse_than_the_champion_beyond_tolerance_is_a_challenger():
    promoted, reason = promotion_decision(0.40, _version("1"), 0.50, 0.02)
    assert not promoted
    assert "worse" in reason


def test_the_promotion_reason_names_the_basis_of_the_champion_silhouette():
    promoted, reason = promotion_decision(0.30, _version("1"), 0.31, 0.02, basis="on today's fit sample")
    assert promoted and "v1's 0.3100 (on today's fit sample)" in reason


def test_unstable_model_is_a_challenger_even_if_better():
    promoted, reason = promotion_decision(0.60, _version("1"), 0.50, 0.02, stability=0.6, min_stability=0.8)
    assert not promoted and "stability" in reason


def test_first_model_is_promoted_even_when_unstable():
    promoted, reason = promotion_decision(0.12, None, None, 0.02, stability=0.55, min_stability=0.8)
    assert promoted and reason == "no champion yet"


def test_when_the_top_is_unstable_the_best_ranked_stable_baseline_wins():
    pool = [
        _candidate(3, 0.60, 0.1, stability=0.55),
        _candidate(4, 0.58, 0.1, stability=0.60),
        _candidate(5, 0.56, 0.1, stability=0.50),
        _candidate(6, 0.54, 0.1, stability=0.70),
        _candidate(4, 0.30, 0.1, stability=0.97, family="rfm"),
        _candidate(3, 0.25, 0.1, stability=0.99, family="rfm"),
    ]
    chosen, reason = select(pool, CFG)
    assert (chosen.family, chosen.k) == ("rfm", 4)
    assert "stable baseline" in reason


def test_without_a_stable_baseline_the_most_stable_of_the_tried_wins():
    pool = [_candidate(3, 0.6, 0.1, stability=0.55), _candidate(4, 0.3, 0.1, stability=0.7, family="rfm")]
    cfg = replace(CFG, selection=replace(CFG.selection, stability_top_n=1))
    chosen, reason = select(pool, cfg)
    assert chosen.family == "rfm" and "none of the top 1 eligible candidates nor the 1 baselines" in reason


def test_weaknesses_name_the_missed_bar_and_the_setting():
    cfg = default_settings(
        {"ml": {"min_segment_share": 0.02, "selection": {"min_stability": 0.8, "min_silhouette": 0.25}}}
    ).ml
    assert weaknesses({"stability": 0.9, "silhouette": 0.4, "min_segment_share": 0.1}, cfg) == []
    got = weaknesses({"stability": 0.55, "silhouette": 0.12, "min_segment_share": 0.01}, cfg)
    assert got == [
        "stability 0.550 < 0.8 (ml.selection.min_stability)",
        "silhouette 0.120 < 0.25 (ml.selection.min_silhouette)",
        "smallest segment 1.0% < 2% of customers (ml.min_segment_share)",
    ]
    assert weaknesses({"silhouette": 0.4, "min_segment_share": 0.1}, cfg) == ["stability not measured"]


def _heavy_tailed(n=3000, seed=3):
    """Standardised log-RFM-like columns: recency uniform, frequency with a mass at one order, monetary lognormal."""
    rng = np.random.default_rng(seed)
    recency = rng.uniform(0, 500, n)
    frequency = np.where(rng.random(n) < 0.5, 1.0, 1 + rng.geometric(0.3, n))
    monetary = frequency * rng.lognormal(3.0, 0.8, n)
    x = np.column_stack([recency, np.log1p(frequency), np.log1p(monetary)])
    return (x - x.mean(axis=0)) / x.std(axis=0)


RFM_CFG = default_settings(
    {
        "ml": {
            "random_state": 42,
            "silhouette_sample_size": 1000,
            "candidates": {"rfm": {"recency": "recency_days", "frequency": "frequency", "monetary": "monetary"}},
            "selection": {"stability_bootstraps": 3, "stability_sample_size": 2000},
        }
    }
).ml
RFM_COLUMNS = {"recency_days": 0, "frequency": 1, "monetary": 2}


def test_rfm_baseline_is_deterministic_stable_and_serves_exactly_its_bands():
    from ml.candidates import fit_rfm, nearest, rfm_cuts, rfm_direction
    from ml.selection import stability

    x = _heavy_tailed()
    first = fit_rfm(x, [3, 5], RFM_CFG, RFM_COLUMNS)
    again = fit_rfm(x, [3, 5], RFM_CFG, RFM_COLUMNS)
    assert [c.k for c in first] == [3, 5]
    direction = rfm_direction(3, [(0, False), (1, True), (2, True)])
    score = (x - x.mean(axis=0)) @ direction
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        bands = np.searchsorted(rfm_cuts(score, a.k), score)
        np.testing.assert_array_equal(nearest(x, a.centers)[0], bands)  # served segment == RFM band
        assert np.bincount(bands).min() >= 0.95 * len(x) / a.k  # equal-frequency bands
    three = first[0]
    assert stability(three, x, RFM_CFG) >= 0.9
    # band 2 holds the best customers: recent, frequent, high spend
    assert x[three.labels == 2, 0].mean() < x[three.labels == 0, 0].mean()
    assert x[three.labels == 2, 1].mean() > x[three.labels == 0, 1].mean()
    assert x[three.labels == 2, 2].mean() > x[three.labels == 0, 2].mean()


def test_rfm_baseline_needs_an_rfm_column_and_skips_k_it_cannot_band():
    from ml.candidates import fit_rfm

    x = _heavy_tailed()
    assert fit_rfm(x, [3], RFM_CFG, {"discount_share": 0}) == []
    two_values = np.column_stack([np.repeat([0.0, 1.0], 500), np.zeros(1000)])
    assert [c.k for c in fit_rfm(two_values, [2, 3], RFM_CFG, {"frequency": 0})] == [2]
