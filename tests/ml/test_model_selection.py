"""The candidate selection rule and the promotion rule."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.entities.model_registry import ModelVersion

from ml.evaluate import Candidate, candidate_ks, select
from ml.train import promotion_decision


def _candidate(k: int, silhouette: float, min_share: float) -> Candidate:
    return Candidate(
        k=k,
        model=None,
        labels=np.zeros(1, dtype=int),
        metrics={"silhouette": silhouette, "min_segment_share": min_share},
    )


def test_best_silhouette_among_candidates_with_large_enough_segments_wins():
    pool = [_candidate(3, 0.40, 0.10), _candidate(4, 0.55, 0.01), _candidate(5, 0.45, 0.05)]
    chosen, reason = select(pool, min_segment_share=0.02)
    assert chosen.k == 5  # k=4 has the best silhouette but a 1% segment
    assert "k=5" in reason


def test_ties_go_to_the_smaller_k():
    chosen, _ = select([_candidate(6, 0.5, 0.1), _candidate(3, 0.5, 0.1)], min_segment_share=0.02)
    assert chosen.k == 3


def test_without_eligible_candidates_the_best_silhouette_is_taken_and_said():
    chosen, reason = select([_candidate(3, 0.3, 0.01), _candidate(4, 0.6, 0.001)], min_segment_share=0.02)
    assert chosen.k == 4
    assert "fell back" in reason


def test_candidate_ks_are_capped_by_the_number_of_rows():
    assert candidate_ks({"k_min": 3, "k_max": 10}, n_rows=6) == [3, 4, 5]
    with pytest.raises(ValueError):
        candidate_ks({"k_min": 3, "k_max": 10}, n_rows=3)


def _version(v: str) -> ModelVersion:
    return ModelVersion(name="m", version=v, creation_timestamp=0)


def test_first_model_is_promoted():
    assert promotion_decision(0.1, None, None, 0.02) == (True, "no champion yet")


def test_model_within_tolerance_of_the_champion_is_promoted():
    promoted, reason = promotion_decision(0.49, _version("1"), 0.50, 0.02)
    assert promoted and "v1" in reason


def test_model_worse_than_the_champion_beyond_tolerance_is_a_challenger():
    promoted, reason = promotion_decision(0.40, _version("1"), 0.50, 0.02)
    assert not promoted
    assert "worse" in reason
