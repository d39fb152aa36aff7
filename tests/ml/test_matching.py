"""Stable segment ids: Hungarian matching of a refit's clusters onto the champion's segments."""

from __future__ import annotations

import numpy as np

from ml.matching import ids_by_size, match


def test_first_model_numbers_segments_by_size():
    labels = np.array([2, 2, 2, 0, 1, 1])
    assert ids_by_size(labels, 3) == {2: 0, 1: 1, 0: 2}


def test_permuted_refit_gets_the_champions_ids_back_and_nobody_switches():
    old = np.repeat([0, 1, 2], 100)
    new = np.repeat([2, 0, 1], 100)  # same groups, other cluster indices
    m = match(old, new, 3, min_overlap=0.5)
    assert m.ids == {2: 0, 0: 1, 1: 2}
    assert m.new_segments == [] and m.vanished_segments == []
    assert m.switched_share == 0.0
    assert np.diag(m.transitions.to_numpy()).tolist() == [100, 100, 100]


def test_split_segment_gives_one_match_and_one_new_id_and_a_merge_vanishes_one():
    old = np.repeat([0, 1, 2], 100)
    # old 0 splits into new 0 (60) and new 3 (40); old 1 and 2 merge into new 1
    new = np.concatenate([np.zeros(60), np.full(40, 3), np.ones(200)]).astype(int)
    m = match(old, new, 4, min_overlap=0.5)
    assert m.ids[0] == 0
    assert m.ids[1] in (1, 2)
    assert m.new_segments == [3, 4]  # new 3 and the empty cluster 2 get fresh ids after the champion's max
    assert len(m.vanished_segments) == 1
    assert m.switched_share == 0.4 * 100 / 300 + 100 / 300


def test_shift_shows_in_the_transition_matrix():
    old = np.repeat([0, 1], 100)
    new = old.copy()
    new[:30] = 1  # 30 of segment 0 moved to segment 1
    m = match(old, new, 2, min_overlap=0.5)
    assert m.transitions.loc[0, 1] == 30 and m.transitions.loc[0, 0] == 70
    assert m.switched_share == 30 / 200
