"""Data drift of `marts.customer_features` against the champion's training reference, by PSI.

Reference (built at training time by `build_reference`, stored as the model's `extra_files/reference.json`): for
every model feature, interior quantile cut points (`drift.psi_bins` bins, duplicates removed) computed over the
whole table in DuckDB, the share of rows per bin and the share of NULLs; plus the segment mix of the fit sample.

Today's shares are counted in DuckDB with the reference edges (NULL is a bin of its own, so a source that stops
delivering shows up as drift). The segment mix is measured by scoring a deterministic sample of
`drift.segment_sample_size` rows with the champion.

Status per feature: PSI < `psi_watch` is `stable`, < `psi_act` is `watch`, otherwise `drift`.
Decision:
- `retrain` when the share of features in `drift` is >= `dataset_drift_share`, or the segment-mix PSI >= `psi_act`;
- `warn` when any feature (or the segment mix) is at `watch` or worse;
- `none` otherwise, and also when there is no champion yet (reason "no model yet").

Outputs, all replaced on a rerun of the same date: `<reports>/drift/<date>/drift_report.json` and
`drift_report.html` (table + embedded PNGs), an MLflow run `drift-<date>` in `drift.experiment_name` (an earlier
run for the date is deleted), and that date's rows of DuckDB `monitoring.drift_metrics`
(as_of_date, feature, psi, status, model_version; the segment mix is the row with feature `__segment_mix__`).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np

from ml import features, plots, tracking
from seg.config import Settings
from seg.warehouse import connect

log = logging.getLogger(__name__)

STABLE, WATCH, DRIFT = "stable", "watch", "drift"
NONE, WARN, RETRAIN = "none", "warn", "retrain"
SEGMENT_MIX = "__segment_mix__"
REPORT_JSON = "drift_report.json"
REPORT_HTML = "drift_report.html"
METRICS_TABLE = "monitoring.drift_metrics"


def psi(ref_props: Sequence[float], cur_props: Sequence[float], eps: float = 1e-4) -> float:
    """Population Stability Index: sum over bins of (cur - ref) * ln(cur / ref).

    Both vectors are shares over the same bins; each share is floored at `eps` so an empty bin contributes a large
    but finite term. The shares are not renormalised after flooring.
    """
    ref = np.asarray(ref_props, dtype="float64")
    cur = np.asarray(cur_props, dtype="float64")
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"psi needs two 1-D vectors over the same bins, got {ref.shape} and {cur.shape}")
    if eps <= 0:
        raise ValueError("eps must be positive")
    ref = np.maximum(ref, eps)
    cur = np.maximum(cur, eps)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def status(value: float, watch: float, act: float) -> str:
    if value >= act:
        return DRIFT
    if value >= watch:
        return WATCH
    return STABLE


def build_reference(con: duckdb.DuckDBPyConnection, used: Sequence[str], bins: int) -> dict[str, Any]:
    """Per-feature quantile edges and shares over the whole feature table (the training-time reference)."""
    edges = features.quantile_edges(con, used, bins)
    shares = features.bin_proportions(con, edges)
    rows = next(iter(shares.values()))["rows"] if shares else features.row_count(con)
    return {
        "format_version": 1,
        "psi_bins": int(bins),
        "rows": rows,
        "features_used": list(used),
        "features": {
            f: {
                "edges": edges[f],
                "proportions": shares[f]["proportions"],
                "null_proportion": shares[f]["null_proportion"],
            }
            for f in used
        },
    }


def bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all values", "NULL"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f"> {edges[-1]:.4g}", "NULL"]
    return labels


def decide(
    feature_psi: Mapping[str, float], segment_mix_psi: float | None, cfg: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The decision rule of the module docstring: (decision, reasons)."""
    watch, act, share_limit = float(cfg["psi_watch"]), float(cfg["psi_act"]), float(cfg["dataset_drift_share"])
    drifted = sorted((f for f, v in feature_psi.items() if v >= act), key=lambda f: -feature_psi[f])
    watched = sorted((f for f, v in feature_psi.items() if watch <= v < act), key=lambda f: -feature_psi[f])
    share = len(drifted) / len(feature_psi) if feature_psi else 0.0
    reasons: list[str] = []
    retrain = warn = False
    if drifted:
        listed = ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in drifted)
        if share >= share_limit:
            retrain = True
            reasons.append(
                f"{len(drifted)}/{len(feature_psi)} features drifted (PSI >= {act}): {listed}; "
                f"share {share:.2f} >= dataset_drift_share {share_limit}"
            )
        else:
            warn = True
            reasons.append(
                f"{len(drifted)}/{len(feature_psi)} features drifted (PSI >= {act}): {listed}; "
                f"share {share:.2f} < dataset_drift_share {share_limit}"
            )
    if watched:
        warn = True
        reasons.append(
            f"features to watch ({watch} <= PSI < {act}): " + ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in watched)
        )
    if segment_mix_psi is not None:
        if segment_mix_psi >= act:
            retrain = True
            reasons.append(f"segment mix moved: PSI {segment_mix_psi:.3f} >= {act}")
        elif segment_mix_psi >= watch:
            warn = True
            reasons.append(f"segment mix to watch: PSI {segment_mix_psi:.3f} >= {watch}")
    if retrain:
        return RETRAIN, reasons
    if warn:
        return WARN, reasons
    return NONE, reasons or [f"all {len(feature_psi)} features and the segment mix below PSI {watch}"]


def _segment_mix(
    con: duckdb.DuckDBPyConnection, model: tracking.LoadedModel, size: int, seed: int
) -> tuple[dict[str, float], int]:
    frame = features.sample_frame(con, model.features, size, seed)
    if frame.empty:
        return {}, 0
    labels = np.asarray(model.pipeline.predict(frame[model.features]))
    counts = np.bincount(labels)
    segs = sorted(set(model.reference.get("segment_proportions", {})) | {str(i) for i in range(len(counts))}, key=int)
    return {s: (float(counts[int(s)]) / len(labels) if int(s) < len(counts) else 0.0) for s in segs}, len(labels)


def compute(settings: Settings, as_of_date: date, model: tracking.LoadedModel | None) -> dict[str, Any]:
    """The drift report (a JSON-serialisable dict) for `as_of_date` against `model` (None: no model yet)."""
    cfg = settings["drift"]
    eps = float(cfg.get("psi_eps", 1e-4))
    thresholds = {k: cfg[k] for k in ("psi_watch", "psi_act", "dataset_drift_share", "psi_bins")}
    report: dict[str, Any] = {
        "as_of_date": as_of_date.isoformat(),
        "model_version": None,
        "thresholds": thresholds,
        "features": [],
        "segment_mix": None,
    }
    if model is None:
        report.update(decision=NONE, reasons=["no model yet"], share_drifted=0.0, rows=None)
        return report

    ref_features = model.reference["features"]
    with connect(settings, read_only=True) as con:
        present = set(features.table_columns(con))
        current = features.bin_proportions(con, {f: ref_features[f]["edges"] for f in model.features}, present)
        mix, mix_rows = _segment_mix(con, model, int(cfg["segment_sample_size"]), int(settings["ml"]["random_state"]))
    watch, act = float(cfg["psi_watch"]), float(cfg["psi_act"])
    rows = []
    feature_psi: dict[str, float] = {}
    for f in model.features:
        ref = [*ref_features[f]["proportions"], ref_features[f]["null_proportion"]]
        cur = [*current[f]["proportions"], current[f]["null_proportion"]]
        value = psi(ref, cur, eps)
        feature_psi[f] = value
        rows.append(
            {
                "feature": f,
                "psi": value,
                "status": status(value, watch, act),
                "in_table": f in present,
                "bins": bin_labels(ref_features[f]["edges"]),
                "reference": ref,
                "current": cur,
            }
        )
    mix_psi = None
    ref_mix = model.reference.get("segment_proportions") or {}
    if ref_mix and mix:
        segs = sorted(set(ref_mix) | set(mix), key=int)
        mix_psi = psi([ref_mix.get(s, 0.0) for s in segs], [mix.get(s, 0.0) for s in segs], eps)
        report["segment_mix"] = {
            "psi": mix_psi,
            "status": status(mix_psi, watch, act),
            "segments": segs,
            "names": {s: model.segment_names.get(s, {}).get("name", "") for s in segs},
            "reference": [ref_mix.get(s, 0.0) for s in segs],
            "current": [mix.get(s, 0.0) for s in segs],
            "sample_rows": mix_rows,
        }
    decision, reasons = decide(feature_psi, mix_psi, cfg)
    drifted = [r["feature"] for r in rows if r["status"] == DRIFT]
    report.update(
        model_version=model.version,
        decision=decision,
        reasons=reasons,
        features=sorted(rows, key=lambda r: -r["psi"]),
        share_drifted=len(drifted) / len(rows) if rows else 0.0,
        drifted_features=drifted,
        rows=next(iter(current.values()))["rows"] if current else None,
        reference_rows=model.reference.get("rows"),
        reference_as_of_date=model.reference.get("as_of_date"),
    )
    return report


_COLORS = {STABLE: "#2e7d32", WATCH: "#ef6c00", DRIFT: "#c62828", NONE: "#2e7d32", WARN: "#ef6c00", RETRAIN: "#c62828"}


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained HTML page: decision, reasons, PSI table and embedded PNG plots."""
    e = html.escape
    th = report["thresholds"]
    images: list[tuple[str, str]] = []
    psi_values = {r["feature"]: r["psi"] for r in report["features"]}
    if report.get("segment_mix"):
        psi_values["segment mix"] = report["segment_mix"]["psi"]
    if psi_values:
        images.append(("PSI by feature", plots.data_uri(plots.psi_bars(psi_values, th["psi_watch"], th["psi_act"]))))
    # Distributions of the features that moved (at most 5), or of the top one when nothing did.
    moved = [r for r in report["features"] if r["status"] != STABLE][:5] or report["features"][:1]
    for row in moved:
        fig = plots.distribution_shift(row["feature"], row["bins"], row["reference"], row["current"])
        images.append((f"{row['feature']} (PSI {row['psi']:.3f})", plots.data_uri(fig)))
    mix = report.get("segment_mix")
    if mix:
        labels = [f"{s}: {mix['names'].get(s, '')}" for s in mix["segments"]]
        fig = plots.distribution_shift("segment mix", labels, mix["reference"], mix["current"])
        images.append((f"Segment mix (PSI {mix['psi']:.3f})", plots.data_uri(fig)))

    decision = report["decision"]
    table_rows = "\n".join(
        f"<tr><td>{e(r['feature'])}</td><td>{r['psi']:.4f}</td>"
        f"<td style='color:{_COLORS[r['status']]}'>{e(r['status'])}</td>"
        f"<td>{r['reference'][-1]:.3f}</td><td>{r['current'][-1]:.3f}</td></tr>"
        for r in report["features"]
    )
    if mix:
        table_rows += (
            f"\n<tr><td><em>segment mix</em></td><td>{mix['psi']:.4f}</td>"
            f"<td style='color:{_COLORS[mix['status']]}'>{e(mix['status'])}</td><td></td><td></td></tr>"
        )
    figures = "\n".join(
        f"<figure><figcaption>{e(title)}</figcaption><img src='{uri}' alt='{e(title)}'></figure>"
        for title, uri in images
    )
    reasons = "".join(f"<li>{e(r)}</li>" for r in report["reasons"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report {e(report["as_of_date"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}img{{max-width:100%}}</style></head>
<body>
<h1>Feature drift, {e(report["as_of_date"])}</h1>
<p>Model version: {e(str(report.get("model_version")))} &middot; rows today: {e(str(report.get("rows")))}
&middot; reference rows: {e(str(report.get("reference_rows")))} (as of {e(str(report.get("reference_as_of_date")))})</p>
<h2 style="color:{_COLORS[decision]}">Decision: {e(decision)}</h2>
<ul>{reasons}</ul>
<p>Thresholds: watch PSI &ge; {th["psi_watch"]}, act PSI &ge; {th["psi_act"]},
retrain when the share of drifted features &ge; {th["dataset_drift_share"]}; {th["psi_bins"]} quantile bins + NULL.</p>
<table><thead><tr><th>feature</th><th>PSI</th><th>status</th><th>NULL share (ref)</th><th>NULL share (today)</th></tr></thead>
<tbody>
{table_rows}
</tbody></table>
{figures}
</body></html>
"""


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
        metrics = {f"psi.{r['feature']}": r["psi"] for r in report["features"]}
        metrics["share_drifted"] = report["share_drifted"]
        if report.get("segment_mix"):
            metrics["psi.segment_mix"] = report["segment_mix"]["psi"]
        mlflow.log_metrics(metrics)
        mlflow.log_params({k: v for k, v in report["thresholds"].items()})
        mlflow.log_artifacts(str(report_dir), artifact_path="drift")
        return run.info.run_id


def _write_files(report: Mapping[str, Any], report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / REPORT_JSON).write_text(json.dumps(report, indent=2, sort_keys=True))
    (report_dir / REPORT_HTML).write_text(render_html(report))


def _write_metrics(settings: Settings, report: Mapping[str, Any], as_of_date: date) -> int:
    rows = [(as_of_date, r["feature"], r["psi"], r["status"], report["model_version"]) for r in report["features"]]
    if report.get("segment_mix"):
        mix = report["segment_mix"]
        rows.append((as_of_date, SEGMENT_MIX, mix["psi"], mix["status"], report["model_version"]))
    with connect(settings) as con:
        con.execute("create schema if not exists monitoring")
        con.execute(
            f"create table if not exists {METRICS_TABLE} "
            "(as_of_date date, feature varchar, psi double, status varchar, model_version varchar)"
        )
        con.execute("begin transaction")
        try:
            con.execute(f"delete from {METRICS_TABLE} where as_of_date = ?", [as_of_date])
            if rows:
                con.executemany(f"insert into {METRICS_TABLE} values (?, ?, ?, ?, ?)", rows)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return len(rows)


def run(settings: Settings, as_of_date: date) -> dict[str, Any]:
    """Measure drift for `as_of_date`, write the reports, the MLflow run and monitoring.drift_metrics.

    Returns {as_of_date, decision ('none'|'warn'|'retrain'), reasons [str], model_version, share_drifted,
    drifted_features [str], psi {feature: value}, segment_mix_psi, report_json, report_html, mlflow_run_id}.
    """
    model = tracking.load_champion(settings)
    report = compute(settings, as_of_date, model)
    report_dir = settings.paths.reports / "drift" / as_of_date.isoformat()
    run_id = _log_run(settings, report, report_dir)
    _write_metrics(settings, report, as_of_date)
    log.info("drift %s: %s (%s)", report["as_of_date"], report["decision"], "; ".join(report["reasons"]))
    return {
        "as_of_date": report["as_of_date"],
        "decision": report["decision"],
        "reasons": report["reasons"],
        "model_version": report["model_version"],
        "share_drifted": report["share_drifted"],
        "drifted_features": report.get("drifted_features", []),
        "psi": {r["feature"]: r["psi"] for r in report["features"]},
        "segment_mix_psi": report["segment_mix"]["psi"] if report.get("segment_mix") else None,
        "report_json": str(report_dir / REPORT_JSON),
        "report_html": str(report_dir / REPORT_HTML),
        "mlflow_run_id": run_id,
    }
