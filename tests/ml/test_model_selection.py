"""The candidate selection rule, the promotion rule and the served centroid model."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.entities.model_registry import ModelVersion

from ml.evaluate import PLACEHOLDER_COORDINATE, Candidate, candidate_ks, centroid_model, select
from ml.train import promotion_decision

CFG = {"min_segment_share": 0.02, "selection": {"min_stability": 0.8, "stability_top_n": 3}}


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


def test_mean_rank_combines_silhouette_davies_bouldin_and_calinski_harabasz():
    # k=7 has the best silhouette only; k=6 is best on Davies-Bouldin and Calinski-Harabasz
    pool = [_candidate(6, 0.39, 0.1, dbi=1.0, chi=3400), _candidate(7, 0.41, 0.1, dbi=1.1, chi=3000)]
    assert select(pool, CFG)[0].k == 6


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
    assert candidate_ks({"k_min": 3, "k_max": 10}, n_rows=6) == [3, 4, 5]
    with pytest.raises(ValueError):
        candidate_ks({"k_min": 3, "k_max": 10}, n_rows=3)


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
