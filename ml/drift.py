"""Data and segment drift of `marts.customer_features` against the champion's training reference.

Reference (built at training time by `build_reference`, stored as the model's `extra_files/reference.json`), for
every model feature over the whole table: interior quantile cut points (`drift.psi_bins` bins, duplicates removed)
with the share of rows per bin and of NULLs (PSI), a quantile sketch (`quantile_points` quantiles at the
probabilities (i + 0.5) / points, KS and Wasserstein), mean and standard deviation; the observation window
(`history_days`: days from the first order in `marts.orders` to the as-of date); a seeded sample of
`REFERENCE_SAMPLE_ROWS` feature rows (centroid distances and per-segment means are recomputed from it with the
champion, so they are measured exactly like today's); the day's activity of the `FLOW_WINDOW_DAYS` days up to
training per weekday (`build_flow_reference`: order-amount bin counts and channel counts from `marts.orders`); plus
the segment mix of the fit sample (added by train).

Daily statistics (formulas in `ml.drift_stats`), on every row of today's table (numpy over the columns read from
DuckDB; the segment statistics on a seeded hash sample of `segment_sample_size` rows):
- per feature: PSI over the reference bins (NULL is a bin of its own, so a source that stops delivering shows up),
  KS on the quantile sketches, Wasserstein-1 in units of the reference standard deviation;
- segment mix (champion's labels today vs the fit sample): PSI, chi-square p-value, Jensen-Shannon;
- assignment confidence: mean distance to the nearest centroid today / on the reference sample;
- centroid shift: distance between today's and the reference sample's per-segment means (in the model's scaled
  space, in units of the reference mean distance), and per-segment feature shifts (standard units);
- switch share: people of the sample whose label today differs from their last published segment
  (`marts.customer_segment_history`, same model version only);
- today's activity ("flows"): the orders dated today vs the same weekday of the reference window: amount over the
  reference amount bins (PSI with the noise floor, like a feature) and the channel mix (two-sample chi-square
  p < `flow_alpha` and PSI >= `flow_psi_min`). Lifetime features take weeks to show a change of behaviour; the
  day's orders show it on its first day.

Lifetime features grow with the observation window on a perfectly stationary population (counts and sums over all
history, recency bounded by it). Features listed in `drift.cumulative_features` / `drift.age_features` are
therefore compared as rates: today's values are multiplied by reference history_days / today's history_days
(a no-op once the history is long; it matters for young warehouses and generated data).

Status per feature: `drift` when PSI >= `psi_act`, `watch` when PSI >= `psi_watch`, but only if the PSI is also
above what sampling noise reaches with probability `psi_alpha` (`drift_stats.psi_critical`): small days and small
cells cannot raise an alarm. Decision:
- `retrain` when the share of drifted features >= `dataset_drift_share`, or the segment-mix PSI >= `psi_act`
  (above noise), or the mean distance to the nearest centroid grew by `distance_ratio_act` or more, or a flow
  listed in `flow_retrain_signals` (the channel mix: a change of behaviour) drifted;
- `warn` when any feature, flow or the segment mix is at watch or worse (a drifted amount distribution only
  warns: amounts x100 are a source problem that a retrain must not learn), the distance ratio >=
  `distance_ratio_watch`, or the switch share >= `switch_share_watch`;
- `none` otherwise; also when there is no champion yet ("no model yet") or fewer than `min_rows` rows today;
- a behaviour change (flow) is acted on once: for `flow_retrain_memory_days` after a day whose report decided
  `retrain` for it (monitoring.drift_decisions), the same signal only warns. Its reference is the weekday mix of the
  28 days before training, so after a lasting change it keeps firing until that window has moved past the change,
  and every day would otherwise ask for a new model. Feature, segment-mix and confidence drift, measured against the
  newly trained model, still retrain.

Outputs, all replaced on a rerun of the same date: `<reports>/drift/<date>/drift_report.json` and
`drift_report.html` (decision, tables, plots of every feature's reference vs today distribution and of the PSI and
segment-mix history), an MLflow run `drift-<date>` in `drift.experiment_name` (an earlier run for the date is
deleted), and that date's rows of DuckDB `monitoring.drift_metrics` (one row per feature and one for the segment
mix `__segment_mix__`: psi, status, ks, wasserstein, js, p_value, means, decision; `METRIC_COLUMNS`) and
`monitoring.drift_segment_metrics` (segment shares, centroid shifts, mean centroid distance, switch share;
`SEGMENT_METRIC_COLUMNS`). A trend is one query, e.g.
`select as_of_date, feature, psi from monitoring.drift_metrics order by all`.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd

from ml import drift_stats, features, plots, tracking
from ml.drift_stats import psi
from seg.config import Settings
from seg.warehouse import connect

log = logging.getLogger(__name__)

__all__ = ["bench", "build_reference", "compute", "decide", "psi", "render_html", "run", "status"]

STABLE, WATCH, DRIFT = "stable", "watch", "drift"
NONE, WARN, RETRAIN = "none", "warn", "retrain"
SEGMENT_MIX = "__segment_mix__"
REPORT_JSON = "drift_report.json"
REPORT_HTML = "drift_report.html"
METRICS_TABLE = "monitoring.drift_metrics"
REFERENCE_FORMAT = 2
REFERENCE_SAMPLE_ROWS = 2000
QUANTILE_POINTS = 100
FLOW_WINDOW_DAYS = 28
HISTORY_DAYS = 90  # days of monitoring history drawn in the report's trend plots
SAMPLE_SEED = 42
METRIC_COLUMNS = {
    "as_of_date": "date",
    "feature": "varchar",
    "psi": "double",
    "status": "varchar",
    "model_version": "varchar",
    "kind": "varchar",
    "ks": "double",
    "wasserstein": "double",
    "js": "double",
    "p_value": "double",
    "value": "double",
    "reference": "double",
    "decision": "varchar",
}
# One row per day: the decision and its reasons (newline-separated), so "why did we retrain?" is one query.
DECISIONS_TABLE = "monitoring.drift_decisions"
DECISION_COLUMNS = {
    "as_of_date": "date",
    "model_version": "varchar",
    "decision": "varchar",
    "reasons": "varchar",
    "share_drifted": "double",
    "rows": "bigint",
    "reference_as_of_date": "date",
}
SEGMENT_METRICS_TABLE = "monitoring.drift_segment_metrics"
SEGMENT_METRIC_COLUMNS = {
    "as_of_date": "date",
    "model_version": "varchar",
    "kind": "varchar",
    "segment": "varchar",
    "value": "double",
    "reference": "double",
}


def status(value: float, watch: float, act: float, critical: float = 0.0) -> str:
    """stable / watch / drift for a PSI; a value below the sampling-noise `critical` PSI is always stable."""
    if value < critical:
        return STABLE
    if value >= act:
        return DRIFT
    if value >= watch:
        return WATCH
    return STABLE


# --------------------------------------------------------------------------------------------------- reading


def _read_columns(
    con: duckdb.DuckDBPyConnection, names: Sequence[str], present: set[str] | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Every row of the given feature columns as float64 arrays (NULL -> NaN), and the row count."""
    present = set(features.table_columns(con)) if present is None else present
    if not names:
        return {}, features.row_count(con)
    cols = ", ".join(
        f"coalesce(cast({features.quote(f)} as double), 'NaN'::double) as {features.quote(f)}"
        if f in present
        else f"'NaN'::double as {features.quote(f)}"
        for f in names
    )
    table = con.execute(f"select {cols} from {features.FEATURE_TABLE}").fetchnumpy()
    out = {f: np.asarray(table[f], dtype="float64") for f in names}
    return out, len(next(iter(out.values())))


def _history_days(con: duckdb.DuckDBPyConnection) -> int | None:
    """Days from the first order in marts.orders to the feature table's as-of date (None when unknown)."""
    try:
        (first,) = con.execute("select min(order_date) from marts.orders").fetchone()
        (as_of,) = con.execute(f"select max(as_of_date) from {features.FEATURE_TABLE}").fetchone()
    except duckdb.Error:
        return None
    if first is None or as_of is None:
        return None
    first = first.date() if hasattr(first, "date") and not isinstance(first, date) else first
    as_of = as_of.date() if hasattr(as_of, "date") and not isinstance(as_of, date) else as_of
    return max(1, (as_of - first).days + 1)


def _sketch(values: np.ndarray, points: int) -> dict[str, Any]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return {"quantiles": [], "mean": None, "std": None, "non_null_rows": 0}
    return {
        "quantiles": [float(q) for q in np.quantile(v, drift_stats.quantile_probs(points))],
        "mean": float(v.mean()),
        "std": float(v.std()),
        "non_null_rows": int(v.size),
    }


def _json_value(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(f"{v:.7g}")


# ---------------------------------------------------------------------------------------------- daily flows


def _orders(con: duckdb.DuckDBPyConnection, first: date, last: date) -> dict[str, np.ndarray] | None:
    """Orders dated first..last from marts.orders: weekday (0 = Monday), channel, amount; None without the table."""
    try:
        return con.execute(
            "select cast(isodow(order_date) - 1 as integer) as weekday, coalesce(cast(channel as varchar), 'NULL') "
            "as channel, coalesce(cast(amount as double), 'NaN'::double) as amount from marts.orders "
            "where order_date between ? and ?",
            [first, last],
        ).fetchnumpy()
    except duckdb.Error:
        return None


def _feature_as_of(con: duckdb.DuckDBPyConnection) -> date | None:
    (as_of,) = con.execute(f"select max(as_of_date) from {features.FEATURE_TABLE}").fetchone()
    return as_of


def _amount_counts(amount: np.ndarray, edges: np.ndarray) -> list[int]:
    nulls = np.isnan(amount)
    counts = np.bincount(np.searchsorted(edges, amount[~nulls], side="left"), minlength=edges.size + 1)
    return [*counts.tolist(), int(nulls.sum())]


def build_flow_reference(con: duckdb.DuckDBPyConnection, bins: int, window_days: int = FLOW_WINDOW_DAYS) -> dict | None:
    """Per weekday, the orders of the `window_days` days up to the as-of date: amount bin counts and channel counts."""
    try:
        as_of = _feature_as_of(con)
    except duckdb.Error:
        return None
    if as_of is None:
        return None
    first = as_of - timedelta(days=window_days - 1)
    orders = _orders(con, first, as_of)
    if orders is None or len(orders["amount"]) == 0:
        return None
    amount = np.asarray(orders["amount"], dtype="float64")
    finite = amount[~np.isnan(amount)]
    edges = sorted({float(e) for e in np.quantile(finite, [i / bins for i in range(1, bins)])}) if finite.size else []
    channels = sorted({str(c) for c in orders["channel"]})
    weekday = np.asarray(orders["weekday"])
    channel = np.asarray(orders["channel"]).astype(str)
    by_weekday = {}
    for wd in range(7):
        mask = weekday == wd
        by_weekday[str(wd)] = {
            "orders": int(mask.sum()),
            "amount_counts": _amount_counts(amount[mask], np.asarray(edges)),
            "channel_counts": [int((channel[mask] == c).sum()) for c in channels],
        }
    return {
        "window_days": window_days,
        "first_date": first.isoformat(),
        "last_date": as_of.isoformat(),
        "amount_edges": edges,
        "channels": channels,
        "by_weekday": by_weekday,
    }


def _flows(con: duckdb.DuckDBPyConnection, as_of_date: date, ref: Mapping[str, Any] | None, cfg: Mapping[str, Any]) -> list[dict]:
    """Today's orders (amount, channel mix) against the same weekday of the reference window."""
    if not ref:
        return []
    orders = _orders(con, as_of_date, as_of_date)
    if orders is None:
        return []
    n = len(orders["amount"])
    wd = str(as_of_date.weekday())
    base = ref["by_weekday"].get(wd) or {}
    pooled = False
    if base.get("orders", 0) < int(cfg.get("min_flow_orders", 100)):
        pooled = True
        days = ref["by_weekday"].values()
        base = {
            "orders": sum(d["orders"] for d in days),
            "amount_counts": np.sum([d["amount_counts"] for d in days], axis=0).tolist(),
            "channel_counts": np.sum([d["channel_counts"] for d in days], axis=0).tolist(),
        }
    note = f"weekday {wd} of {ref['first_date']}..{ref['last_date']}" + (" (all weekdays pooled)" if pooled else "")
    if n < int(cfg.get("min_flow_orders", 100)) or base.get("orders", 0) == 0:
        return [{"flow": "orders", "status": STABLE, "orders": n, "note": f"too few orders today ({n}) to judge"}]
    watch, act = float(cfg["psi_watch"]), float(cfg["psi_act"])
    eps, alpha = float(cfg.get("psi_eps", 1e-4)), float(cfg.get("psi_alpha", 0.001))
    flow_alpha, flow_psi = float(cfg.get("flow_alpha", 1e-6)), float(cfg.get("flow_psi_min", 0.05))
    out = []
    # amount of today's orders over the reference amount bins (+ NULL)
    edges = np.asarray(ref["amount_edges"], dtype="float64")
    cur_counts = _amount_counts(np.asarray(orders["amount"], dtype="float64"), edges)
    ref_counts = base["amount_counts"]
    ref_sh, cur_sh = np.asarray(ref_counts) / max(1, sum(ref_counts)), np.asarray(cur_counts) / max(1, n)
    value = psi(ref_sh, cur_sh, eps)
    cells = int(((np.asarray(ref_counts) + np.asarray(cur_counts)) > 0).sum())
    critical = drift_stats.psi_critical(cells, sum(ref_counts), n, alpha)
    out.append({
        "flow": "orders.amount", "kind": "numeric", "psi": value, "psi_critical": critical,
        "status": status(value, watch, act, critical), "orders": n, "reference_orders": int(sum(ref_counts)),
        "bins": bin_labels(ref["amount_edges"]), "reference": ref_sh.tolist(), "current": cur_sh.tolist(),
        "js": drift_stats.jensen_shannon(ref_sh, cur_sh), "p_value": drift_stats.chi_square_two_sample(ref_counts, cur_counts)["p_value"],
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
    test = drift_stats.chi_square_two_sample(ref_c, cur_c)
    if test["p_value"] < flow_alpha and value >= flow_psi:
        flow_status = DRIFT
    elif test["p_value"] < alpha and value >= flow_psi:
        flow_status = WATCH
    else:
        flow_status = STABLE
    out.append({
        "flow": "orders.channel", "kind": "categorical", "psi": value, "psi_critical": None, "status": flow_status,
        "orders": n, "reference_orders": int(sum(ref_c)), "bins": channels, "reference": ref_sh.tolist(),
        "current": cur_sh.tolist(), "js": drift_stats.jensen_shannon(ref_sh, cur_sh), "p_value": test["p_value"],
        "chi_square": test["statistic"], "note": note,
    })
    return out


# ------------------------------------------------------------------------------------------------- reference


def build_reference(
    con: duckdb.DuckDBPyConnection,
    used: Sequence[str],
    bins: int,
    *,
    quantile_points: int = QUANTILE_POINTS,
    sample_rows: int = REFERENCE_SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
) -> dict[str, Any]:
    """The training-time reference of every feature over the whole table (see the module docstring)."""
    edges = features.quantile_edges(con, used, bins)
    shares = features.bin_proportions(con, edges)
    rows = next(iter(shares.values()))["rows"] if shares else features.row_count(con)
    columns, _ = _read_columns(con, used)
    sketches = {f: _sketch(columns[f], quantile_points) for f in used}
    del columns
    sample = features.sample_frame(con, used, sample_rows, seed)
    flows = build_flow_reference(con, bins)
    return {
        "format_version": REFERENCE_FORMAT,
        "psi_bins": int(bins),
        "quantile_points": int(quantile_points),
        "rows": rows,
        "history_days": _history_days(con),
        "features_used": list(used),
        "features": {
            f: {
                "edges": edges[f],
                "proportions": shares[f]["proportions"],
                "null_proportion": shares[f]["null_proportion"],
                **sketches[f],
            }
            for f in used
        },
        "flows": flows,
        "sample": {
            "columns": list(used),
            "rows": [[_json_value(x) for x in row] for row in sample[list(used)].to_numpy(dtype="float64")],
        },
    }


def bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all values", "NULL"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f"> {edges[-1]:.4g}", "NULL"]
    return labels


# ---------------------------------------------------------------------------------------------------- rules


def decide(
    feature_psi: Mapping[str, float],
    segment_mix_psi: float | None,
    cfg: Mapping[str, Any],
    *,
    critical: Mapping[str, float] | None = None,
    mix_critical: float = 0.0,
    distance_ratio: float | None = None,
    switch_share: float | None = None,
    flows: Sequence[Mapping[str, Any]] = (),
    flow_acted_on: date | None = None,
) -> tuple[str, list[str]]:
    """The decision rule of the module docstring: (decision, reasons).

    `critical` holds each feature's sampling-noise PSI (and `mix_critical` the segment mix's); a PSI below it counts
    as stable whatever the thresholds say. `flow_acted_on` is the last earlier day whose decision was a retrain for
    a behaviour change (within `flow_retrain_memory_days`): the flow signals then only warn.
    """
    watch, act, share_limit = float(cfg["psi_watch"]), float(cfg["psi_act"]), float(cfg["dataset_drift_share"])
    critical = critical or {}
    st = {f: status(v, watch, act, critical.get(f, 0.0)) for f, v in feature_psi.items()}
    drifted = sorted((f for f, s in st.items() if s == DRIFT), key=lambda f: -feature_psi[f])
    watched = sorted((f for f, s in st.items() if s == WATCH), key=lambda f: -feature_psi[f])
    noisy = sorted(f for f, v in feature_psi.items() if v >= watch and st[f] == STABLE)
    share = len(drifted) / len(feature_psi) if feature_psi else 0.0
    reasons: list[str] = []
    retrain = warn = False
    if drifted:
        listed = ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in drifted)
        head = f"{len(drifted)}/{len(feature_psi)} features drifted (PSI >= {act}): {listed}; share {share:.2f}"
        if share >= share_limit:
            retrain = True
            reasons.append(f"{head} >= dataset_drift_share {share_limit}")
        else:
            warn = True
            reasons.append(f"{head} < dataset_drift_share {share_limit}")
    if watched:
        warn = True
        reasons.append(
            f"features to watch ({watch} <= PSI < {act}): " + ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in watched)
        )
    if noisy:
        reasons.append(
            "within sampling noise (PSI >= watch but below the noise floor): "
            + ", ".join(f"{f} ({feature_psi[f]:.3f} < {critical[f]:.3f})" for f in noisy)
        )
    if segment_mix_psi is not None:
        mix_status = status(segment_mix_psi, watch, act, mix_critical)
        if mix_status == DRIFT:
            retrain = True
            reasons.append(f"segment mix moved: PSI {segment_mix_psi:.3f} >= {act}")
        elif mix_status == WATCH:
            warn = True
            reasons.append(f"segment mix to watch: PSI {segment_mix_psi:.3f} >= {watch}")
    if distance_ratio is not None:
        ratio_act, ratio_watch = float(cfg.get("distance_ratio_act", 1.5)), float(cfg.get("distance_ratio_watch", 1.15))
        if distance_ratio >= ratio_act:
            retrain = True
            reasons.append(f"assignment confidence dropped: distance to nearest centroid x{distance_ratio:.2f} >= {ratio_act}")
        elif distance_ratio >= ratio_watch:
            warn = True
            reasons.append(f"assignment confidence to watch: distance to nearest centroid x{distance_ratio:.2f}")
    retrain_flows = set(cfg.get("flow_retrain_signals") or [])
    for flow in flows:
        if flow.get("status") not in (WATCH, DRIFT):
            continue
        what = (
            f"today's {flow['flow']} ({flow['orders']} orders) vs {flow['note']}: PSI {flow['psi']:.3f}, "
            f"chi-square p {flow['p_value']:.2g}"
        )
        if flow["status"] == DRIFT and flow["flow"] in retrain_flows and flow_acted_on is not None:
            warn = True
            reasons.append(f"behaviour changed (already acted on: retrain decided on {flow_acted_on}): {what}")
        elif flow["status"] == DRIFT and flow["flow"] in retrain_flows:
            retrain = True
            reasons.append(f"behaviour changed: {what}")
        elif flow["status"] == DRIFT:
            warn = True
            reasons.append(f"drift in {what} (check the source before retraining)")
        else:
            warn = True
            reasons.append(f"to watch: {what}")
    if switch_share is not None and switch_share >= float(cfg.get("switch_share_watch", 0.2)):
        warn = True
        reasons.append(f"{switch_share:.1%} of the sample switched segment since the last published run")
    if retrain:
        return RETRAIN, reasons
    if warn:
        return WARN, reasons
    return NONE, reasons or [f"all {len(feature_psi)} features and the segment mix below PSI {watch}"]


# ------------------------------------------------------------------------------------------------- computing


def _rescale_factor(ref_history: int | None, cur_history: int | None) -> float:
    """reference history_days / today's: the factor that turns today's lifetime totals into the reference window."""
    if not ref_history or not cur_history or cur_history <= 0:
        return 1.0
    return float(ref_history) / float(cur_history)


def _feature_row(name: str, values: np.ndarray, ref: Mapping[str, Any], ref_rows: int, cfg: Mapping[str, Any]) -> dict:
    edges = np.asarray(ref["edges"], dtype="float64")
    n = values.size
    nulls = np.isnan(values)
    v = values[~nulls]
    counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=edges.size + 1)
    denom = n if n else 1
    cur = [*(counts / denom).tolist(), float(nulls.sum()) / denom]
    refp = [*ref["proportions"], ref["null_proportion"]]
    value = psi(refp, cur, float(cfg.get("psi_eps", 1e-4)))
    cells = int(sum(1 for a, b in zip(refp, cur, strict=True) if a > 0 or b > 0))
    critical = drift_stats.psi_critical(cells, ref_rows, n, float(cfg.get("psi_alpha", 0.001)))
    ks = wasserstein = None
    ref_q = ref.get("quantiles") or []
    cur_q: list[float] = []
    if ref_q and v.size:
        probs = drift_stats.quantile_probs(len(ref_q))
        cur_q = np.quantile(v, probs).tolist()
        grid = np.union1d(ref_q, cur_q)
        ks = drift_stats.ks_statistic(
            np.searchsorted(ref_q, grid, side="right") / len(ref_q), np.searchsorted(cur_q, grid, side="right") / len(cur_q)
        )
        wasserstein = drift_stats.normalised_wasserstein(
            drift_stats.wasserstein_from_quantiles(ref_q, cur_q), ref.get("std"), ref_q
        )
    watch, act = float(cfg["psi_watch"]), float(cfg["psi_act"])
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


def _model_space(model: tracking.LoadedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scaled features, label, distance to the nearest centroid) of each row under the champion."""
    xt = np.asarray(model.pipeline[:-1].transform(frame[model.features]), dtype="float64")
    dist = np.asarray(model.pipeline[-1].transform(xt), dtype="float64")
    return xt, dist.argmin(axis=1), dist.min(axis=1)


def _last_published(con: duckdb.DuckDBPyConnection, as_of_date: date, version: str) -> pd.DataFrame | None:
    try:
        return con.execute(
            "select person_id, cast(segment_id as varchar) as previous_segment from marts.customer_segment_history "
            "where as_of_date = (select max(as_of_date) from marts.customer_segment_history where as_of_date < ?) "
            "and cast(model_version as varchar) = ?",
            [as_of_date, version],
        ).df()
    except duckdb.Error:
        return None


def _segments(
    model: tracking.LoadedModel, frame: pd.DataFrame, previous: pd.DataFrame | None, cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Segment mix, confidence, centroid shift, per-segment feature shifts and switch share of a sample."""
    xt, labels, mindist = _model_space(model, frame)
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
        eps = float(cfg.get("psi_eps", 1e-4))
        out["psi"] = psi(ref_shares, cur_shares, eps)
        source = re.search(r"\d+", str(model.reference.get("segment_proportions_source", "")))
        n_ref = int(source.group()) if source else int(labels.size)
        out["psi_critical"] = drift_stats.psi_critical(k, n_ref, labels.size, float(cfg.get("psi_alpha", 0.001)))
        out["status"] = status(out["psi"], float(cfg["psi_watch"]), float(cfg["psi_act"]), out["psi_critical"])
        out["chi_square"] = drift_stats.chi_square(ref_shares, counts.tolist())
        out["js"] = drift_stats.jensen_shannon(ref_shares, cur_shares)
    sample = model.reference.get("sample") or {}
    if sample.get("rows"):
        ref_frame = pd.DataFrame(sample["rows"], columns=sample["columns"], dtype="float64")
        ref_xt, ref_labels, ref_dist = _model_space(model, ref_frame)
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


def _history(con: duckdb.DuckDBPyConnection, as_of_date: date, days: int = HISTORY_DAYS) -> list[tuple]:
    """Earlier days' feature PSI and segment shares: [(date, 'feature' | 'segment_share', name, psi, value)]."""
    out: list[tuple] = []
    window = "as_of_date < ? and as_of_date >= ?"
    for sql in (
        f"select as_of_date, 'feature', feature, psi, null from {METRICS_TABLE} where {window} and feature <> "
        f"'{SEGMENT_MIX}'",
        f"select as_of_date, 'segment_share', 'segment:' || segment, null, value from {SEGMENT_METRICS_TABLE} "
        f"where {window} and kind = 'share'",
    ):
        try:
            out += con.execute(sql + " order by as_of_date", [as_of_date, as_of_date - timedelta(days=days)]).fetchall()
        except duckdb.Error:
            continue
    return out


def _flow_acted_on(con: duckdb.DuckDBPyConnection, as_of_date: date, memory_days: int) -> date | None:
    """The last day before `as_of_date`, within `memory_days`, whose report decided a retrain for a behaviour
    change (None without one, or before the first report)."""
    if memory_days <= 0:
        return None
    try:
        row = con.execute(
            # "behaviour changed:" is the reason text of a flow that caused a retrain (decide() below)
            f"select max(as_of_date) from {DECISIONS_TABLE} where decision = ? and as_of_date < ? "
            "and as_of_date >= ? and reasons like '%behaviour changed:%'",
            [RETRAIN, as_of_date, as_of_date - timedelta(days=memory_days)],
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return row[0] if row else None


def compute(settings: Settings, as_of_date: date, model: tracking.LoadedModel | None) -> dict[str, Any]:
    """The drift report (a JSON-serialisable dict) for `as_of_date` against `model` (None: no model yet)."""
    cfg = settings["drift"]
    thresholds = {
        k: cfg.get(k)
        for k in (
            "psi_watch", "psi_act", "dataset_drift_share", "psi_bins", "psi_alpha", "min_rows",
            "distance_ratio_watch", "distance_ratio_act", "switch_share_watch", "flow_alpha", "flow_psi_min", "flow_retrain_signals", "flow_retrain_memory_days",
        )
    }
    report: dict[str, Any] = {
        "as_of_date": as_of_date.isoformat(),
        "model_version": None,
        "thresholds": thresholds,
        "features": [],
        "segment_mix": None,
        "flows": [],
        "timings": {},
    }
    if model is None:
        report.update(decision=NONE, reasons=["no model yet"], share_drifted=0.0, rows=None, drifted_features=[])
        return report

    t0 = time.perf_counter()
    ref = model.reference
    ref_features = ref["features"]
    trending = set(cfg.get("cumulative_features") or []) | set(cfg.get("age_features") or [])
    with connect(settings, read_only=True) as con:
        present = set(features.table_columns(con))
        columns, rows = _read_columns(con, model.features, present)
        history_days = _history_days(con)
        factor = _rescale_factor(ref.get("history_days"), history_days)
        report["timings"]["read_seconds"] = time.perf_counter() - t0
        t = time.perf_counter()
        feature_rows = []
        for f in model.features:
            values = columns.pop(f)
            if f in trending and factor != 1.0:
                values = values * factor
            row = _feature_row(f, values, ref_features[f], int(ref.get("rows") or rows), cfg)
            row["in_table"] = f in present
            row["rescaled"] = f in trending and factor != 1.0
            feature_rows.append(row)
        report["timings"]["feature_stats_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        frame = features.sample_frame(con, model.features, int(cfg["segment_sample_size"]), SAMPLE_SEED)
        previous = _last_published(con, as_of_date, model.version)
        flows = _flows(con, as_of_date, ref.get("flows"), cfg)
        flow_acted_on = _flow_acted_on(con, as_of_date, int(cfg.get("flow_retrain_memory_days", 0) or 0))
        history = _history(con, as_of_date)
    for f in model.features:
        if f in trending and factor != 1.0:
            frame[f] = frame[f] * factor
    mix = _segments(model, frame, previous, cfg) if len(frame) else None
    report["timings"]["segment_seconds"] = time.perf_counter() - t

    feature_psi = {r["feature"]: r["psi"] for r in feature_rows}
    if rows < int(cfg.get("min_rows", 0) or 0):
        decision, reasons = NONE, [f"only {rows} rows today (< drift.min_rows {cfg.get('min_rows')}): not judged"]
    else:
        decision, reasons = decide(
            feature_psi,
            mix.get("psi") if mix else None,
            cfg,
            critical={r["feature"]: r["psi_critical"] for r in feature_rows},
            mix_critical=mix.get("psi_critical", 0.0) if mix else 0.0,
            distance_ratio=mix.get("distance_ratio") if mix else None,
            switch_share=mix.get("switch_share") if mix else None,
            flows=flows,
            flow_acted_on=flow_acted_on,
        )
    drifted = [r["feature"] for r in feature_rows if r["status"] == DRIFT]
    report.update(
        model_version=model.version,
        decision=decision,
        reasons=reasons,
        features=sorted(feature_rows, key=lambda r: -r["psi"]),
        segment_mix=mix,
        flows=flows,
        share_drifted=len(drifted) / len(feature_rows) if feature_rows else 0.0,
        drifted_features=drifted,
        rows=rows,
        reference_rows=ref.get("rows"),
        reference_as_of_date=ref.get("as_of_date"),
        history_days=history_days,
        reference_history_days=ref.get("history_days"),
        rescale_factor=factor,
        history=[[d.isoformat(), kind, f, p, v] for d, kind, f, p, v in history],
    )
    report["timings"]["total_seconds"] = time.perf_counter() - t0
    return report


# --------------------------------------------------------------------------------------------------- report

_COLORS = {STABLE: "#2e7d32", WATCH: "#ef6c00", DRIFT: "#c62828", NONE: "#2e7d32", WARN: "#ef6c00", RETRAIN: "#c62828"}


def _trend_figures(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """PSI per feature and segment shares over time (history from monitoring.drift_metrics plus today)."""
    hist = [list(r) for r in report.get("history") or []]
    today = report["as_of_date"]
    hist += [[today, "feature", r["feature"], r["psi"], None] for r in report["features"]]
    mix = report.get("segment_mix") or {}
    hist += [[today, "segment_share", f"segment:{s}", None, v] for s, v in zip(mix.get("segments", []), mix.get("current", []), strict=True)]
    images = []
    for kind, title, column in (("feature", "PSI by feature over time", 3), ("segment_share", "Segment mix over time", 4)):
        series: dict[str, list[tuple[str, float]]] = {}
        for r in hist:
            if r[1] == kind and r[column] is not None:
                series.setdefault(r[2], []).append((r[0], float(r[column])))
        if not series or max(len(v) for v in series.values()) < 2:
            continue
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        fig.subplots_adjust(left=0.07, right=0.99, top=0.9, bottom=0.22)
        for name, points in sorted(series.items()):
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], marker=".", label=name)
        if kind == "feature":
            ax.axhline(float(report["thresholds"]["psi_watch"]), color="#ef6c00", ls="--", lw=1)
            ax.axhline(float(report["thresholds"]["psi_act"]), color="#c62828", ls="--", lw=1)
            ax.set_ylabel("PSI")
        else:
            ax.set_ylabel("share of customers")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.legend(fontsize=6, ncols=3)
        ax.set_title(title)
        images.append((title, plots.data_uri(fig, dpi=72)))
    return images


def _distribution_grid(panels: Sequence[tuple[str, Mapping[str, Any]]], ncols: int = 4) -> str:
    """One figure of small panels (reference vs today's share per bin), as a PNG data URI: one render for all."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (title, row) in zip(axes, panels, strict=False):
        x = np.arange(len(row["reference"]))
        ax.bar(x - 0.2, row["reference"], width=0.4, color="#90a4ae", label="reference")
        ax.bar(x + 0.2, row["current"], width=0.4, color=_COLORS[row["status"]], label="today")
        ax.set_title(f"{title}: PSI {row['psi']:.3f}", fontsize=8, color=_COLORS[row["status"]])
        ax.set_xticks([])  # bins are the reference's quantile bins, NULL last (labels in the JSON): text is slow
        ax.tick_params(axis="y", labelsize=6)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.subplots_adjust(hspace=0.45, wspace=0.25, left=0.04, right=0.99, top=0.95, bottom=0.03)
    return plots.data_uri(fig, dpi=72)


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page: decision, reasons, statistics tables and embedded PNG plots."""
    e = html.escape
    th = report["thresholds"]
    images: list[tuple[str, str]] = []
    psi_values = {r["feature"]: r["psi"] for r in report["features"]}
    mix = report.get("segment_mix") or {}
    if "psi" in mix:
        psi_values["segment mix"] = mix["psi"]
    if psi_values:
        images.append(("PSI by feature", plots.data_uri(plots.psi_bars(psi_values, th["psi_watch"], th["psi_act"]))))
    images += _trend_figures(report)
    if mix:
        labels = [f"{s}: {mix['names'].get(s, '')}" for s in mix["segments"]]
        fig = plots.distribution_shift("segment mix", labels, mix["reference"], mix["current"])
        images.append((f"Segment mix (PSI {_fmt(mix.get('psi'), '.3f')})", plots.data_uri(fig)))
    panels = [(f"today's {f['flow']}", f) for f in report.get("flows") or [] if "psi" in f]
    panels += [(r["feature"], r) for r in report["features"]]
    if panels:
        images.append((
            "Reference (grey) vs today, share per reference bin (quantile bins left to right, NULL last), every "
            "feature and today's orders",
            _distribution_grid(panels),
        ))

    decision = report["decision"]
    table_rows = "\n".join(
        f"<tr><td>{e(r['feature'])}{' *' if r.get('rescaled') else ''}</td><td>{r['psi']:.4f}</td>"
        f"<td>{r['psi_critical']:.4f}</td><td>{_fmt(r['ks'])}</td><td>{_fmt(r['wasserstein'])}</td>"
        f"<td style='color:{_COLORS[r['status']]}'>{e(r['status'])}</td>"
        f"<td>{_fmt(r['reference_mean'], '.4g')}</td><td>{_fmt(r['mean'], '.4g')}</td>"
        f"<td>{r['reference'][-1]:.3f}</td><td>{r['current'][-1]:.3f}</td></tr>"
        for r in report["features"]
    )
    seg_rows = ""
    if mix:
        shift = mix.get("centroid_shift", {})
        seg_rows = "\n".join(
            f"<tr><td>{e(s)}</td><td>{e(mix['names'].get(s, ''))}</td><td>{ref:.3f}</td><td>{cur:.3f}</td>"
            f"<td>{_fmt(shift.get(s), '.3f')}</td>"
            f"<td>{e(', '.join(f'{k} {v:+.2f}' for k, v in mix.get('segment_feature_shift', {}).get(s, {}).items()))}</td></tr>"
            for s, ref, cur in zip(mix["segments"], mix["reference"], mix["current"], strict=True)
        )
    seg_summary = ""
    if mix:
        chi = mix.get("chi_square") or {}
        seg_summary = (
            f"<p>Segment mix: PSI {_fmt(mix.get('psi'))} (noise floor {_fmt(mix.get('psi_critical'))}), "
            f"chi-square p {_fmt(chi.get('p_value'), '.3g')}, Jensen-Shannon {_fmt(mix.get('js'))} bits; "
            f"mean distance to nearest centroid {_fmt(mix.get('mean_distance'), '.3f')} vs reference "
            f"{_fmt(mix.get('reference_mean_distance'), '.3f')} (x{_fmt(mix.get('distance_ratio'), '.2f')}); "
            f"switched segment since last run: {_fmt(mix.get('switch_share'), '.1%') or 'n/a'} "
            f"of {mix.get('switch_compared', 0)} compared; sample {mix.get('sample_rows')} rows.</p>"
        )
    flow_rows = "\n".join(
        f"<tr><td>{e(f['flow'])}</td><td>{f['orders']}</td><td>{f.get('reference_orders', '')}</td>"
        f"<td>{_fmt(f.get('psi'))}</td><td>{_fmt(f.get('js'))}</td><td>{_fmt(f.get('p_value'), '.3g')}</td>"
        f"<td style='color:{_COLORS[f['status']]}'>{e(f['status'])}</td><td>{e(f.get('note', ''))}</td></tr>"
        for f in report.get("flows") or []
    )
    figures = "\n".join(
        f"<figure><figcaption>{e(title)}</figcaption><img src='{uri}' alt='{e(title)}'></figure>" for title, uri in images
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in report["reasons"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {e(report["as_of_date"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%}}
figure{{display:inline-block;margin:0.5em;vertical-align:top}}</style></head>
<body>
<h1>Drift, {e(report["as_of_date"])}</h1>
<p>Model version: {e(str(report.get("model_version")))} &middot; rows today: {e(str(report.get("rows")))}
&middot; reference rows: {e(str(report.get("reference_rows")))} (as of {e(str(report.get("reference_as_of_date")))})
&middot; history {e(str(report.get("history_days")))} days vs {e(str(report.get("reference_history_days")))} at
training (lifetime features marked * are compared as rates, factor {_fmt(report.get("rescale_factor"), ".3f")})</p>
<h2 style="color:{_COLORS[decision]}">Decision: {e(decision)}</h2>
<ul>{reasons}</ul>
<p>Thresholds: watch PSI &ge; {th["psi_watch"]}, act PSI &ge; {th["psi_act"]}, and above the sampling-noise floor
(chi-square, alpha {th.get("psi_alpha")}); retrain when the share of drifted features &ge; {th["dataset_drift_share"]},
the segment mix drifts, the distance to the nearest centroid grows by x{th.get("distance_ratio_act")}, or today's
{e(", ".join(th.get("flow_retrain_signals") or []))} changed (once: the same change only warns for
{th.get("flow_retrain_memory_days")} days after the retrain it caused);
{th["psi_bins"]} quantile bins + NULL. KS on the quantile sketches; Wasserstein in reference standard deviations.</p>
<h2>Features</h2>
<table><thead><tr><th>feature</th><th>PSI</th><th>noise floor</th><th>KS</th><th>Wasserstein (sd)</th><th>status</th>
<th>mean (ref)</th><th>mean (today)</th><th>NULL share (ref)</th><th>NULL share (today)</th></tr></thead>
<tbody>
{table_rows}
</tbody></table>
<h2>Today's activity (marts.orders of the day vs the same weekday before training)</h2>
<table><thead><tr><th>flow</th><th>orders today</th><th>reference orders</th><th>PSI</th><th>Jensen-Shannon</th>
<th>chi-square p</th><th>status</th><th>compared with</th></tr></thead><tbody>
{flow_rows}
</tbody></table>
<h2>Segments</h2>
{seg_summary}
<table><thead><tr><th>segment</th><th>name</th><th>share (ref)</th><th>share (today)</th><th>centroid shift</th>
<th>largest per-segment feature shifts (sd)</th></tr></thead><tbody>
{seg_rows}
</tbody></table>
{figures}
</body></html>
"""


# -------------------------------------------------------------------------------------------------- writing


def _log_run(settings: Settings, report: dict[str, Any], report_dir: Path) -> str:
    """Replace the MLflow run `drift-<date>` and log the report files, metrics and decision to it."""
    iso = report["as_of_date"]
    mlc = tracking.client(settings)
    experiment_id = tracking.experiment_id(settings, settings["drift"]["experiment_name"])
    for old in mlc.search_runs([experiment_id], filter_string=f"tags.drift_date = '{iso}'"):
        mlc.delete_run(old.info.run_id)
    tags = {
        "run_type": "drift",
        "drift_date": iso,
        "decision": report["decision"],
        "model_version": str(report.get("model_version")),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"drift-{iso}", tags=tags) as run:
        report["mlflow_run_id"] = run.info.run_id
        _write_files(report, report_dir)
        metrics = {}
        for r in report["features"]:
            metrics[f"psi.{r['feature']}"] = r["psi"]
            if r["ks"] is not None:
                metrics[f"ks.{r['feature']}"] = r["ks"]
                metrics[f"wasserstein.{r['feature']}"] = r["wasserstein"]
        metrics["share_drifted"] = report["share_drifted"]
        mix = report.get("segment_mix") or {}
        for key in ("psi", "js", "distance_ratio", "switch_share"):
            if mix.get(key) is not None:
                metrics[f"segment_mix.{key}" if key in ("psi", "js") else key] = mix[key]
        mlflow.log_metrics(metrics)
        mlflow.log_params({k: v for k, v in report["thresholds"].items() if v is not None})
        mlflow.log_artifacts(str(report_dir), artifact_path="drift")
        return run.info.run_id


def _write_files(report: Mapping[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / REPORT_JSON).write_text(json.dumps(report, indent=2, sort_keys=True))
    (report_dir / REPORT_HTML).write_text(render_html(report))


def metric_rows(report: Mapping[str, Any], as_of_date: date) -> tuple[list[dict], list[dict]]:
    """The report as rows of monitoring.drift_metrics (METRIC_COLUMNS: one per feature + the segment mix) and of
    monitoring.drift_segment_metrics (SEGMENT_METRIC_COLUMNS: segment shares, centroid shifts, confidence,
    switch share)."""
    version, decision = report["model_version"], report["decision"]
    base = {"as_of_date": as_of_date, "model_version": version, "decision": decision}
    rows = [
        {**base, "kind": "feature", "feature": r["feature"], "psi": r["psi"], "status": r["status"], "ks": r["ks"],
         "wasserstein": r["wasserstein"], "value": r["mean"], "reference": r["reference_mean"]}
        for r in report["features"]
    ]
    mix = report.get("segment_mix") or {}
    if "psi" in mix:
        rows.append({**base, "kind": "segment_mix", "feature": SEGMENT_MIX, "psi": mix["psi"], "status": mix["status"],
                     "js": mix["js"], "p_value": mix["chi_square"]["p_value"]})
    rows += [
        {**base, "kind": "flow", "feature": f["flow"], "psi": f["psi"], "status": f["status"], "js": f["js"],
         "p_value": f["p_value"], "value": f["orders"], "reference": f["reference_orders"]}
        for f in report.get("flows") or []
        if "psi" in f
    ]
    seg_base = {"as_of_date": as_of_date, "model_version": version}
    seg_rows = [
        {**seg_base, "kind": "share", "segment": s, "value": cur, "reference": ref}
        for s, ref, cur in zip(mix.get("segments", []), mix.get("reference", []), mix.get("current", []), strict=True)
    ]
    seg_rows += [
        {**seg_base, "kind": "centroid_shift", "segment": s, "value": v} for s, v in (mix.get("centroid_shift") or {}).items()
    ]
    if mix.get("distance_ratio") is not None:
        seg_rows.append({**seg_base, "kind": "mean_centroid_distance", "segment": None, "value": mix["mean_distance"],
                         "reference": mix["reference_mean_distance"]})
    if mix.get("switch_share") is not None:
        seg_rows.append({**seg_base, "kind": "switch_share", "segment": None, "value": mix["switch_share"]})
    return (
        [{c: r.get(c) for c in METRIC_COLUMNS} for r in rows],
        [{c: r.get(c) for c in SEGMENT_METRIC_COLUMNS} for r in seg_rows],
    )


def decision_row(report: Mapping[str, Any], as_of_date: date) -> dict:
    """The report's row of monitoring.drift_decisions (DECISION_COLUMNS)."""
    ref_date = report.get("reference_as_of_date")
    return {
        "as_of_date": as_of_date,
        "model_version": report.get("model_version"),
        "decision": report["decision"],
        "reasons": "\n".join(report.get("reasons") or []),
        "share_drifted": report.get("share_drifted"),
        "rows": report.get("rows"),
        "reference_as_of_date": date.fromisoformat(str(ref_date)[:10]) if ref_date else None,
    }


def _replace_date(con: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, str], rows: list[dict], day: date) -> None:
    con.execute(f"create table if not exists {table} (" + ", ".join(f"{c} {t}" for c, t in columns.items()) + ")")
    for c, t in columns.items():  # a table written by an earlier version of this module may lack columns
        con.execute(f"alter table {table} add column if not exists {c} {t}")
    con.execute(f"delete from {table} where as_of_date = ?", [day])
    if rows:
        cols = list(columns)
        con.executemany(
            f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
            [[r[c] for c in cols] for r in rows],
        )


def _write_metrics(settings: Settings, report: Mapping[str, Any], as_of_date: date) -> int:
    """Replace the date's rows of the monitoring tables in one transaction (a rerun leaves one set of rows)."""
    rows, seg_rows = metric_rows(report, as_of_date)
    with connect(settings) as con:
        con.execute("create schema if not exists monitoring")
        con.execute("begin transaction")
        try:
            _replace_date(con, METRICS_TABLE, METRIC_COLUMNS, rows, as_of_date)
            _replace_date(con, SEGMENT_METRICS_TABLE, SEGMENT_METRIC_COLUMNS, seg_rows, as_of_date)
            _replace_date(con, DECISIONS_TABLE, DECISION_COLUMNS, [decision_row(report, as_of_date)], as_of_date)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return len(rows) + len(seg_rows)


def run(settings: Settings, as_of_date: date) -> dict[str, Any]:
    """Measure drift for `as_of_date`, write the reports, the MLflow run and monitoring.drift_metrics.

    Returns {as_of_date, decision ('none'|'warn'|'retrain'), reasons [str], model_version, share_drifted,
    drifted_features [str], psi {feature: value}, segment_mix_psi, distance_ratio, switch_share, report_json,
    report_html, mlflow_run_id, seconds}.
    """
    t0 = time.perf_counter()
    model = tracking.load_champion(settings)
    report = compute(settings, as_of_date, model)
    report_dir = settings.paths.reports / "drift" / as_of_date.isoformat()
    run_id = _log_run(settings, report, report_dir)
    _write_metrics(settings, report, as_of_date)
    log.info("drift %s: %s (%s)", report["as_of_date"], report["decision"], "; ".join(report["reasons"]))
    mix = report.get("segment_mix") or {}
    return {
        "as_of_date": report["as_of_date"],
        "decision": report["decision"],
        "reasons": report["reasons"],
        "model_version": report["model_version"],
        "share_drifted": report["share_drifted"],
        "drifted_features": report.get("drifted_features", []),
        "psi": {r["feature"]: r["psi"] for r in report["features"]},
        "segment_mix_psi": mix.get("psi"),
        "distance_ratio": mix.get("distance_ratio"),
        "switch_share": mix.get("switch_share"),
        "report_json": str(report_dir / REPORT_JSON),
        "report_html": str(report_dir / REPORT_HTML),
        "mlflow_run_id": run_id,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def bench(settings: Settings, as_of_date: date) -> dict[str, Any]:
    """Time the daily drift step on the current warehouse: {rows, decision, compute / render / write / run seconds}.

    `compute_seconds` is the statistics alone (champion already loaded); `run_seconds` the whole `run` (champion
    download, statistics, HTML with plots, MLflow run, metrics table).
    """
    t = time.perf_counter()
    model = tracking.load_champion(settings)
    load_seconds = time.perf_counter() - t
    t = time.perf_counter()
    report = compute(settings, as_of_date, model)
    compute_seconds = time.perf_counter() - t
    t = time.perf_counter()
    render_html(report)
    render_seconds = time.perf_counter() - t
    t = time.perf_counter()
    result = run(settings, as_of_date)
    run_seconds = time.perf_counter() - t
    return {
        "rows": report.get("rows"),
        "features": len(report["features"]),
        "decision": result["decision"],
        "load_model_seconds": round(load_seconds, 3),
        "compute_seconds": round(compute_seconds, 3),
        "compute_timings": {k: round(v, 3) for k, v in report["timings"].items()},
        "render_html_seconds": round(render_seconds, 3),
        "run_seconds": round(run_seconds, 3),
    }
