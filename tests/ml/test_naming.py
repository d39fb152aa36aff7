"""Segment names from standardised cluster profiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.naming import AVERAGE, name_segments, standardized_profile


def test_profile_is_the_standardised_difference_from_the_population():
    values = pd.DataFrame({"monetary": [1.0, 1.0, 3.0, 3.0], "frequency": [5.0, 5.0, 5.0, 5.0]})
    profile = standardized_profile(values, np.array([0, 0, 1, 1]))
    # population mean 2, std 1: segment 0 sits at -1, segment 1 at +1; a constant feature profiles as 0
    assert profile.loc[0, "monetary"] == -1.0
    assert profile.loc[1, "monetary"] == 1.0
    assert (profile["frequency"] == 0.0).all()


def test_profile_ignores_missing_values_and_empty_segments():
    values = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.nan]})
    profile = standardized_profile(values, np.array([0, 1, 0, 1]))
    assert profile.loc[1, "x"] == 0.0  # segment 1 has no value: neutral, no warning


def test_names_use_the_strongest_features_with_their_vocabulary():
    profile = pd.DataFrame(
        {"monetary": [2.0, -1.0], "frequency": [1.0, 0.1], "store_order_share": [-0.5, 0.05]}, index=[0, 1]
    )
    names = name_segments(profile, top_n=3, min_abs_z=0.3, shares={0: 0.4, 1: 0.6})
    assert names["0"]["name"] == "High monetary · frequent · seldom in store"
    assert names["1"]["name"] == "Low monetary"
    assert names["0"]["share"] == 0.4
    assert [d["feature"] for d in names["0"]["drivers"]] == ["monetary", "frequency", "store_order_share"]


def test_unknown_features_and_flat_segments_get_readable_names():
    profile = pd.DataFrame({"widget_count": [1.5, 0.0]}, index=[0, 1])
    names = name_segments(profile, top_n=2, min_abs_z=0.3)
    assert names["0"]["name"] == "High widget count"
    assert names["1"]["name"] == AVERAGE


def test_clashing_names_are_made_unique():
    profile = pd.DataFrame(
        {"monetary": [2.0, 1.9, 2.1], "frequency": [0.8, -0.9, 0.7], "recency_days": [0.0, 0.0, 0.0]}, index=[0, 1, 2]
    )
    names = name_segments(profile, top_n=1, min_abs_z=0.3)
    labels = [v["name"] for v in names.values()]
    assert len(set(labels)) == 3
    assert names["1"]["name"] == "High monetary · infrequent"
