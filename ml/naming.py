"""Readable segment names from cluster profiles.

A cluster's profile is, per feature, the standardised difference between the cluster's mean and the population
mean, on the scale the model sees (log features clipped at 0 and log1p'd): z = (mean_cluster - mean_all) / std_all.
A segment is named after its `top_n` features with the largest |z| (at least `min_abs_z`), worded with
ml/segment_vocabulary.yml, e.g. "High monetary · frequent · store-first". Names are made unique by adding the next
strongest feature to clashing names, then the segment id as a last resort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

VOCABULARY_FILE = Path(__file__).with_name("segment_vocabulary.yml")
SEPARATOR = " · "
AVERAGE = "Average profile"


@cache
def vocabulary() -> dict[str, dict[str, str]]:
    return yaml.safe_load(VOCABULARY_FILE.read_text()) or {}


def _masked_mean(data: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN; `fallback` where a column has no value (no warning, nothing silenced)."""
    mask = np.isfinite(data)
    counts = mask.sum(axis=0)
    sums = np.where(mask, data, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


def standardized_profile(values: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
    """One row per segment id, one column per feature: (segment mean - population mean) / population std.

    NaNs are ignored (a segment without any value for a feature profiles as 0 there); a constant feature
    profiles as 0 everywhere.
    """
    data = values.to_numpy(dtype="float64")
    zeros = np.zeros(data.shape[1])
    mean = _masked_mean(data, zeros)
    std = np.sqrt(_masked_mean((data - mean) ** 2, zeros))
    std = np.where(std > 0, std, 1.0)
    labels = np.asarray(labels)
    rows = {int(seg): (_masked_mean(data[labels == seg], mean) - mean) / std for seg in np.unique(labels)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(values.columns)).sort_index()


def _phrase(feature: str, z: float, words: Mapping[str, Mapping[str, str]]) -> str:
    side = "high" if z > 0 else "low"
    return words.get(feature, {}).get(side) or f"{side} {feature.replace('_', ' ')}"


def _drivers(row: pd.Series, min_abs_z: float) -> list[tuple[str, float]]:
    """(feature, z) with |z| >= min_abs_z, strongest first (ties in column order)."""
    order = sorted(range(len(row)), key=lambda i: (-abs(float(row.iloc[i])), i))
    return [(str(row.index[i]), float(row.iloc[i])) for i in order if abs(float(row.iloc[i])) >= min_abs_z]


def _format(phrases: Sequence[str]) -> str:
    if not phrases:
        return AVERAGE
    text = SEPARATOR.join(phrases)
    return text[0].upper() + text[1:]


def name_segments(
    profile: pd.DataFrame,
    top_n: int,
    min_abs_z: float,
    shares: Mapping[int, float] | None = None,
    words: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """{segment_id (str): {"name", "share", "drivers": [{"feature", "z"}]}} for every row of `profile`."""
    words = vocabulary() if words is None else words
    drivers = {int(seg): _drivers(profile.loc[seg], min_abs_z) for seg in profile.index}
    used = {seg: min(top_n, len(d)) for seg, d in drivers.items()}

    def render(seg: int) -> str:
        return _format([_phrase(f, z, words) for f, z in drivers[seg][: used[seg]]])

    # Lengthen clashing names with their next driver while that helps.
    while True:
        names = {seg: render(seg) for seg in drivers}
        clashes = [seg for seg, name in names.items() if list(names.values()).count(name) > 1]
        growable = [seg for seg in clashes if used[seg] < len(drivers[seg])]
        if not growable:
            break
        for seg in growable:
            used[seg] += 1
    for seg in clashes:
        names[seg] = f"{names[seg]} (segment {seg})"

    out: dict[str, dict[str, Any]] = {}
    for seg in sorted(drivers):
        out[str(seg)] = {
            "name": names[seg],
            "share": None if shares is None else float(shares.get(seg, 0.0)),
            "drivers": [{"feature": f, "z": round(z, 4)} for f, z in drivers[seg][: max(used[seg], top_n)]],
        }
    return out
