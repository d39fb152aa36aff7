"""Stable segment identities: map a refit's clusters onto the previous champion's segment ids.

Matching is on co-membership of the fit sample: the champion labels the sample (its own preprocessing and
centres), the new model labels it too, and the contingency table (rows: champion segment, columns: new cluster)
is the overlap. `scipy.optimize.linear_sum_assignment` picks the one-to-one pairing with the largest total overlap
(Hungarian). A pair is kept only if the overlap is at least `ml.matching.min_overlap` of the new cluster's rows AND
of the champion segment's rows (otherwise they are not the same customers). Then:
- a matched cluster takes the champion segment's id;
- an unmatched cluster is a **new** segment and gets the next id after the champion's largest id (ids are never
  reused, so a vanished id never silently comes back with a different meaning);
- a champion segment with no match has **vanished**.
Without a champion, clusters are numbered 0..k-1 by size (largest first).

`Matching.transitions` / `switched_share` compare the two models on the same rows (model disagreement). What
customers did is `transitions(previous, new)`: each sampled customer's last assigned segment id (yesterday's
assignment) against the new model's segment id for today's data; train.py logs that as the transition matrix
and `switched_share`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Matching:
    ids: dict[int, int]  # new cluster index -> segment id
    matched: dict[int, int]  # new cluster index -> champion segment id (the matched subset of ids)
    new_segments: list[int]  # segment ids created by this model
    vanished_segments: list[int]  # champion segment ids with no successor
    transitions: pd.DataFrame  # rows: champion segment id, columns: new segment id, values: sample rows
    switched_share: float  # share of sample rows whose segment id differs from the champion's


def ids_by_size(labels: np.ndarray, k: int) -> dict[int, int]:
    """First model: cluster index -> id, 0 for the largest cluster (ties: lower index first)."""
    counts = np.bincount(labels, minlength=k)
    order = sorted(range(k), key=lambda c: (-counts[c], c))
    return {c: i for i, c in enumerate(order)}


def match(old_labels: np.ndarray, new_labels: np.ndarray, k_new: int, min_overlap: float) -> Matching:
    """Match new clusters (0..k_new-1) to champion segment ids given both labellings of the same rows."""
    old_labels = np.asarray(old_labels, dtype=np.int64)
    new_labels = np.asarray(new_labels, dtype=np.int64)
    old_ids = sorted(int(s) for s in np.unique(old_labels))
    table = pd.crosstab(pd.Series(old_labels, name="champion"), pd.Series(new_labels, name="new"))
    table = table.reindex(index=old_ids, columns=range(k_new), fill_value=0)
    overlap = table.to_numpy(dtype=float)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    old_sizes = overlap.sum(axis=1)
    new_sizes = overlap.sum(axis=0)
    matched: dict[int, int] = {}
    for r, c in zip(rows, cols, strict=True):
        o = overlap[r, c]
        if new_sizes[c] > 0 and o >= min_overlap * new_sizes[c] and o >= min_overlap * old_sizes[r]:
            matched[int(c)] = old_ids[r]
    next_id = (max(old_ids) + 1) if old_ids else 0
    ids = dict(matched)
    new_segments = []
    for c in sorted(range(k_new), key=lambda c: (-new_sizes[c], c)):
        if c not in ids:
            ids[c] = next_id
            new_segments.append(next_id)
            next_id += 1
    vanished = [s for s in old_ids if s not in set(matched.values())]
    relabelled = np.array([ids[int(c)] for c in new_labels], dtype=np.int64)
    transitions = pd.crosstab(pd.Series(old_labels, name="champion_segment"), pd.Series(relabelled, name="new_segment"))
    switched = float((relabelled != old_labels).mean()) if len(old_labels) else 0.0
    return Matching(
        ids={int(c): int(s) for c, s in ids.items()},
        matched=matched,
        new_segments=new_segments,
        vanished_segments=vanished,
        transitions=transitions,
        switched_share=switched,
    )


def transitions(previous: np.ndarray, new: np.ndarray) -> tuple[pd.DataFrame, float]:
    """(transition matrix: rows previous segment id, columns new segment id, values customers; share of customers
    whose segment id changed)."""
    previous = np.asarray(previous, dtype=np.int64)
    new = np.asarray(new, dtype=np.int64)
    table = pd.crosstab(pd.Series(previous, name="previous_segment"), pd.Series(new, name="new_segment"))
    return table, float((previous != new).mean()) if len(previous) else 0.0
