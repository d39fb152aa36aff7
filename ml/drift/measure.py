"""Today's drift statistics against the training reference, computed with numpy on what the monitor read.

No I/O: `ml.drift.monitor` reads today's columns, orders and sample from DuckDB and hands them here; the formulas
are in `ml.drift.stats`, the statuses in `ml.drift.rules`.

- `feature_row`, per feature on every row of today's table: PSI over the reference bins (NULL is a bin of its own,
  so a source that stops delivering shows up), KS on the quantile sketches, Wasserstein-1 in units of the reference
  standard deviation;
- `segments`, on a seeded hash sample of `segment_sample_size` rows labelled by the champion:
  - segment mix (champion's labels today vs the fit sample): PSI, chi-square p-value, Jensen-Shannon;
  - assignment confidence: mean distance to the nearest centroid today / on the reference sample;
  - centroid shift: distance between today's and the reference sample's per-segment means (in the model's scaled
    space, in units of the reference mean distance), and per-segment feature shifts (standard units);
  - switch share: people of the sample whose label today differs from their last published segment
    (`marts.customer_segment_history`, same model version only);
- `flows`, today's activity: the orders dated today vs the same weekday of the reference window: amount over the
  reference amount bins (PSI with the noise floor, like a feature) and the channel mix (two-sample chi-square
  p < `flow_alpha` and PSI >= `flow_psi_min`). Lifetime features take weeks to show a change of behaviour; the
  day's orders show it on its first day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml import tracking
from ml.drift import stats
from ml.drift.reference import amount_counts, bin_labels
from ml.drift.rules import STABLE, flow_status, status
from ml.drift.stats import psi
from seg.core.config import DriftSettings


def feature_row(name: str, values: np.ndarray, ref: Mapping[str, Any], ref_rows: int, cfg: DriftSettings) -> dict:
    """One feature's statistics today (`values`: every row, NULL as NaN) against its reference entry."""
    edges = np.asarray(ref["edges"], dtype="float64")
    n = values.size
    nulls = np.isnan(values)
    v = values[~nulls]
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
    denom = n if n else 1
    cur = [*(counts / denom).tolist(), float(nulls.sum()) / denom]
    refp = [*ref["proportions"], ref["null_proportion"]]
    value = psi(refp, cur, float(cfg.psi_eps))
    cells = int(sum(1 for a, b in zip(refp, cur, strict=True) if a > 0 or b > 0))
    critical = stats.psi_critical(cells, ref_rows, n, float(cfg.psi_alpha))
    ks = wasserstein = None
    ref_q = ref.get("quantiles") or []
    cur_q: list[float] = []
    if ref_q and v.size:
        probs = stats.quantile_probs(len(ref_q))
        cur_q = np.quantile(v, probs).tolist()
        grid = np.union1d(ref_q, cur_q)
        ks = stats.ks_statistic(
            np.searchsorted(ref_q, grid, side="right") / len(ref_q), np.searchsorted(cur_q, grid, side="right") / len(cur_q)
        )
        wasserstein = stats.normalised_wasserstein(stats.wasserstein_from_quantiles(ref_q, cur_q), ref.get("std"), ref_q)
    watch, act = float(cfg.psi_watch), float(cfg.psi_act)
    return {
        "feature": name,
        "psi": value,
        "psi_critical": critical,
        "status": status(value, watch, act, critical),
        "ks": ks,
        "wasserstein": wasserstein,
        "mean": float(v.mean()) if v.size else None,
        "reference_mean": ref.get("mean"),
        "bins": bin_labels(ref["edges"]),
        "reference": refp,
        "current": cur,
        "reference_quantiles": ref_q,
        "current_quantiles": cur_q,
    }


def flows(
    orders: Mapping[str, np.ndarray] | None, as_of_date: date, ref: Mapping[str, Any] | None, cfg: DriftSettings
) -> list[dict]:
    """Today's `orders` (amount, channel mix; `ml.drift.reference.read_orders`) against the same weekday of the
    reference window. No reference or no orders table: no flow."""
    if not ref or orders is None:
        return []
    n = len(orders["amount"])
    wd = str(as_of_date.weekday())
    base = ref["by_weekday"].get(wd) or {}
    pooled = False
    if base.get("orders", 0) < int(cfg.min_flow_orders):
        pooled = True
        days = ref["by_weekday"].values()
        base = {
            "orders": sum(d["orders"] for d in days),
            "amount_counts": np.sum([d["amount_counts"] for d in days], axis=0).tolist(),
            "channel_counts": np.sum([d["channel_counts"] for d in days], axis=0).tolist(),
        }
    note = f"weekday {wd} of {ref['first_date']}..{ref['last_date']}" + (" (all weekdays pooled)" if pooled else "")
    if n < int(cfg.min_flow_orders) or base.get("orders", 0) == 0:
        return [{"flow": "orders", "status": STABLE, "orders": n, "note": f"too few orders today ({n}) to judge"}]
    watch, act = float(cfg.psi_watch), float(cfg.psi_act)
    eps, alpha = float(cfg.psi_eps), float(cfg.psi_alpha)
    flow_alpha, flow_psi = float(cfg.flow_alpha), float(cfg.flow_psi_min)
    out = []
    # amount of today's orders over the reference amount bins (+ NULL)
    edges = np.asarray(ref["amount_edges"], dtype="float64")
    cur_counts = amount_counts(np.asarray(orders["amount"], dtype="float64"), edges)
    ref_counts = base["amount_counts"]
    ref_sh, cur_sh = np.asarray(ref_counts) / max(1, sum(ref_counts)), np.asarray(cur_counts) / max(1, n)
    value = psi(ref_sh, cur_sh, eps)
    cells = int(((np.asarray(ref_counts) + np.asarray(cur_counts)) > 0).sum())
    critical = stats.psi_critical(cells, sum(ref_counts), n, alpha)
    out.append({
        "flow": "orders.amount", "kind": "numeric", "psi": value, "psi_critical": critical,
        "status": status(value, watch, act, critical), "orders": n, "reference_orders": int(sum(ref_counts)),
        "bins": bin_labels(ref["amount_edges"]), "reference": ref_sh.tolist(), "current": cur_sh.tolist(),
        "js": stats.jensen_shannon(ref_sh, cur_sh), "p_value": stats.chi_square_two_sample(ref_counts, cur_counts)["p_value"],
        "note": note,
    })
    # channel mix: a categorical flow, judged by a two-sample chi-square (significance) and PSI (size)
    channels = list(ref["channels"])
    today = np.asarray(orders["channel"]).astype(str)
    channels += sorted(set(today) - set(channels))
    ref_c = [*base["channel_counts"], *([0] * (len(channels) - len(base["channel_counts"])))]
    cur_c = [int((today == c).sum()) for c in channels]
    ref_sh, cur_sh = np.asarray(ref_c) / max(1, sum(ref_c)), np.asarray(cur_c) / max(1, n)
    value = psi(ref_sh, cur_sh, eps)
    test = stats.chi_square_two_sample(ref_c, cur_c)
    out.append({
        "flow": "orders.channel", "kind": "categorical", "psi": value, "psi_critical": None,
        "status": flow_status(test["p_value"], value, flow_alpha, alpha, flow_psi),
        "orders": n, "reference_orders": int(sum(ref_c)), "bins": channels, "reference": ref_sh.tolist(),
        "current": cur_sh.tolist(), "js": stats.jensen_shannon(ref_sh, cur_sh), "p_value": test["p_value"],
        "chi_square": test["statistic"], "note": note,
    })
    return out


def model_space(model: tracking.LoadedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scaled features, label, distance to the nearest centroid) of each row under the champion."""
    xt = np.asarray(model.pipeline[:-1].transform(frame[model.features]), dtype="float64")
    dist = np.asarray(model.pipeline[-1].transform(xt), dtype="float64")
    return xt, dist.argmin(axis=1), dist.min(axis=1)


def segments(
    model: tracking.LoadedModel, frame: pd.DataFrame, previous: pd.DataFrame | None, cfg: DriftSettings
) -> dict[str, Any]:
    """Segment mix, confidence, centroid shift, per-segment feature shifts and switch share of a sample.

    `previous` holds (person_id, previous_segment) of the last published day under the same model version."""
    xt, labels, mindist = model_space(model, frame)
    k = int(np.asarray(model.pipeline[-1].cluster_centers_).shape[0])
    counts = np.bincount(labels, minlength=k)
    ref_mix = model.reference.get("segment_proportions") or {}
    segs = [str(s) for s in range(k)]
    ref_shares = [float(ref_mix.get(s, 0.0)) for s in segs]
    cur_shares = (counts / max(1, counts.sum())).tolist()
    out: dict[str, Any] = {
        "segments": segs,
        "names": {s: model.segment_names.get(s, {}).get("name", "") for s in segs},
        "reference": ref_shares,
        "current": cur_shares,
        "sample_rows": int(labels.size),
    }
    if ref_mix:
        eps = float(cfg.psi_eps)
        out["psi"] = psi(ref_shares, cur_shares, eps)
        source = re.search(r"\d+", str(model.reference.get("segment_proportions_source", "")))
        n_ref = int(source.group()) if source else int(labels.size)
        out["psi_critical"] = stats.psi_critical(k, n_ref, labels.size, float(cfg.psi_alpha))
        out["status"] = status(out["psi"], float(cfg.psi_watch), float(cfg.psi_act), out["psi_critical"])
        out["chi_square"] = stats.chi_square(ref_shares, counts.tolist())
        out["js"] = stats.jensen_shannon(ref_shares, cur_shares)
    sample = model.reference.get("sample") or {}
    if sample.get("rows"):
        ref_frame = pd.DataFrame(sample["rows"], columns=sample["columns"], dtype="float64")
        ref_xt, ref_labels, ref_dist = model_space(model, ref_frame)
        ref_mean = float(ref_dist.mean()) or 1.0
        out["mean_distance"] = float(mindist.mean())
        out["reference_mean_distance"] = ref_mean
        out["distance_ratio"] = float(mindist.mean()) / ref_mean
        try:
            names = [str(n) for n in model.pipeline[:-1].get_feature_names_out()]
        except (AttributeError, ValueError):
            names = [f"x{i}" for i in range(xt.shape[1])]
        shifts, per_segment = {}, {}
        for i, s in enumerate(segs):
            today, ref = xt[labels == i], ref_xt[ref_labels == i]
            if len(today) < 20 or len(ref) < 20:
                continue
            delta = today.mean(axis=0) - ref.mean(axis=0)
            shifts[s] = float(np.linalg.norm(delta)) / ref_mean
            top = np.argsort(-np.abs(delta))[:3]
            per_segment[s] = {names[j]: float(delta[j]) for j in top}
        out["centroid_shift"] = shifts
        out["segment_feature_shift"] = per_segment
    if previous is not None and len(previous):
        merged = pd.DataFrame({"person_id": frame["person_id"].to_numpy(), "label": labels.astype(str)}).merge(
            previous, on="person_id"
        )
        if len(merged):
            out["switch_share"] = float((merged["label"] != merged["previous_segment"]).mean())
            out["switch_compared"] = int(len(merged))
    return out
