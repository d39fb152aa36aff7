"""The daily drift stage, `run(settings, as_of_date)`: today's `marts.customer_features` (and orders) against the
champion's training reference (`ml.drift.reference`), the decision (`ml.drift.rules`), and every output.

`compute` reads the warehouse read-only: every row of the model's feature columns (numpy over the columns read
from DuckDB), a seeded hash sample of `drift.segment_sample_size` rows for the segment statistics, today's orders,
the last published segments and the monitoring history; `ml.drift.measure` turns them into statistics. Lifetime
features are compared as rates (`ml.drift.rules.rescale_factor`). The decision is `none` without a champion ("no
model yet") or with fewer than `drift.min_rows` rows today, else `ml.drift.rules.decide`.

Outputs, all replaced on a rerun of the same date: `<reports>/drift/<date>/drift_report.json` and
`drift_report.html` (`ml.drift.report`), an MLflow run `drift-<date>` in `drift.experiment_name` (an earlier run
for the date is deleted), and that date's rows of the DuckDB monitoring tables, of which this module is the one
writer (seg/core/catalog.py): `monitoring.drift_metrics` (one row per feature, one per flow and one for the
segment mix `__segment_mix__`: psi, status, ks, wasserstein, js, p_value, means, decision; `METRIC_COLUMNS`),
`monitoring.drift_segment_metrics` (segment shares, centroid shifts, mean centroid distance, switch share;
`SEGMENT_METRIC_COLUMNS`) and `monitoring.drift_decisions` (the decision and its reasons; `DECISION_COLUMNS`).
A trend is one query, e.g. `select as_of_date, feature, psi from monitoring.drift_metrics order by all`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import pandas as pd

from ml import features, tracking
from ml.drift import measure
from ml.drift.reference import SAMPLE_SEED, history_days, read_columns, read_orders
from ml.drift.report import render_html
from ml.drift.rules import BEHAVIOUR_CHANGED, DRIFT, NONE, RETRAIN, decide, rescale_factor
from seg.core.config import Settings
from seg.core.warehouse import add_segmentation_column, connect, sql_str

log = logging.getLogger(__name__)

SEGMENT_MIX = "__segment_mix__"
REPORT_JSON = "drift_report.json"
REPORT_HTML = "drift_report.html"
HISTORY_DAYS = 90  # days of monitoring history drawn in the report's trend plots
METRICS_TABLE = "monitoring.drift_metrics"
# Every monitoring table carries the lens (`segmentation`): each lens's drift is judged on its own features.
METRIC_COLUMNS = {
    "segmentation": "varchar",
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
    "segmentation": "varchar",
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
    "segmentation": "varchar",
    "as_of_date": "date",
    "model_version": "varchar",
    "kind": "varchar",
    "segment": "varchar",
    "value": "double",
    "reference": "double",
}


# --------------------------------------------------------------------------------------------------- reading


def _last_published(
    con: duckdb.DuckDBPyConnection, as_of_date: date, version: str, lens: str
) -> pd.DataFrame | None:
    """(person_id, previous_segment) of lens `lens`'s last published day before `as_of_date` under model
    `version` (None before the first publication)."""
    try:
        return con.execute(
            "select person_id, cast(segment_id as varchar) as previous_segment from marts.customer_segment_history "
            "where segmentation = ? and as_of_date = (select max(as_of_date) from marts.customer_segment_history "
            "where segmentation = ? and as_of_date < ?) and cast(model_version as varchar) = ?",
            [lens, lens, as_of_date, version],
        ).df()
    except duckdb.Error:
        return None


def _history(con: duckdb.DuckDBPyConnection, as_of_date: date, lens: str, days: int = HISTORY_DAYS) -> list[tuple]:
    """Earlier days' feature PSI and segment shares of lens `lens`: [(date, 'feature' | 'segment_share', name,
    psi, value)]."""
    out: list[tuple] = []
    window = f"segmentation = {sql_str(lens)} and as_of_date < ? and as_of_date >= ?"
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


def _flow_acted_on(con: duckdb.DuckDBPyConnection, as_of_date: date, memory_days: int, lens: str) -> date | None:
    """The last day before `as_of_date`, within `memory_days`, whose report of lens `lens` decided a retrain for a
    behaviour change (None without one, or before the first report)."""
    if memory_days <= 0:
        return None
    try:
        row = con.execute(
            # BEHAVIOUR_CHANGED is the reason text of a flow that caused a retrain (ml.drift.rules.decide)
            f"select max(as_of_date) from {DECISIONS_TABLE} where segmentation = ? and decision = ? "
            "and as_of_date < ? and as_of_date >= ? and reasons like ?",
            [lens, RETRAIN, as_of_date, as_of_date - timedelta(days=memory_days), f"%{BEHAVIOUR_CHANGED}%"],
        ).fetchone()
    except (duckdb.CatalogException, duckdb.BinderException):
        return None
    return row[0] if row else None


def _as_served(settings: Settings, as_of_date: date, model: tracking.LoadedModel) -> tracking.LoadedModel:
    """The model with the centres the lens served last before `as_of_date` (online updates move them between
    refits): segment mix, confidence and switches are judged on the segments people were actually given."""
    if not settings.ml.online_update.enabled:
        return model
    from ml import online

    centres = online.served_centres(settings, as_of_date, model)
    return dataclasses.replace(model, pipeline=online.with_centres(model, centres))


def _online_refused(settings: Settings, as_of_date: date) -> str | None:
    """A lens with online updates whose last step was refused (a centre moved too far) asks for a retrain."""
    if not settings.ml.online_update.enabled:
        return None
    from ml import online

    return online.refused_before(settings, as_of_date)


def _plain(value: Any) -> Any:
    """A setting as the report and the MLflow params show it: a list for a tuple (logged as "['a']", as before)."""
    return list(value) if isinstance(value, tuple) else value


def compute(
    settings: Settings, as_of_date: date, model: tracking.LoadedModel | None, table: str | None = None
) -> dict[str, Any]:
    """The lens's drift report (a JSON-serialisable dict) for `as_of_date`'s features in `table` (default: the
    lens's mart) against `model` (None: no model yet)."""
    cfg = settings.drift
    table = table or features.lens_table(settings)
    lens = settings.lens
    thresholds = {
        k: _plain(getattr(cfg, k))
        for k in (
            "psi_watch", "psi_act", "dataset_drift_share", "psi_bins", "psi_alpha", "min_rows",
            "distance_ratio_watch", "distance_ratio_act", "switch_share_watch", "flow_alpha", "flow_psi_min", "flow_retrain_signals", "flow_retrain_memory_days",
        )
    }
    report: dict[str, Any] = {
        "segmentation": lens,
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
    model = _as_served(settings, as_of_date, model)
    ref = model.reference
    ref_features = ref["features"]
    trending = set(cfg.cumulative_features) | set(cfg.age_features)
    with connect(settings, read_only=True) as con:
        present = set(features.table_columns(con, table))
        columns, rows = read_columns(con, model.features, present, table)
        today_history = history_days(con, table)
        factor = rescale_factor(ref.get("history_days"), today_history)
        report["timings"]["read_seconds"] = time.perf_counter() - t0
        t = time.perf_counter()
        feature_rows = []
        for f in model.features:
            values = columns.pop(f)
            if f in trending and factor != 1.0:
                values = values * factor
            row = measure.feature_row(f, values, ref_features[f], int(ref.get("rows") or rows), cfg)
            row["in_table"] = f in present
            row["rescaled"] = f in trending and factor != 1.0
            feature_rows.append(row)
        report["timings"]["feature_stats_seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        frame = features.sample_frame(con, model.features, int(cfg.segment_sample_size), SAMPLE_SEED, table)
        previous = _last_published(con, as_of_date, model.version, lens)
        flow_ref = ref.get("flows")
        flows = measure.flows(read_orders(con, as_of_date, as_of_date) if flow_ref else None, as_of_date, flow_ref, cfg)
        flow_acted_on = _flow_acted_on(con, as_of_date, int(cfg.flow_retrain_memory_days), lens)
        history = _history(con, as_of_date, lens)
    for f in model.features:
        if f in trending and factor != 1.0:
            frame[f] = frame[f] * factor
    mix = measure.segments(model, frame, previous, cfg) if len(frame) else None
    report["timings"]["segment_seconds"] = time.perf_counter() - t

    feature_psi = {r["feature"]: r["psi"] for r in feature_rows}
    if rows < int(cfg.min_rows):
        decision, reasons = NONE, [f"only {rows} rows today (< drift.min_rows {cfg.min_rows}): not judged"]
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
    if refused := _online_refused(settings, as_of_date):
        decision, reasons = RETRAIN, [*reasons, f"{refused}: the centres cannot follow, retrain"]
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
        history_days=today_history,
        reference_history_days=ref.get("history_days"),
        rescale_factor=factor,
        history=[[d.isoformat(), kind, f, p, v] for d, kind, f, p, v in history],
    )
    report["timings"]["total_seconds"] = time.perf_counter() - t0
    return report


# -------------------------------------------------------------------------------------------------- writing


def _log_run(settings: Settings, report: dict[str, Any], report_dir: Path) -> str:
    """Replace the MLflow run `drift-<date>` and log the report files, metrics and decision to it."""
    iso = report["as_of_date"]
    mlc = tracking.client(settings)
    experiment_id = tracking.experiment_id(settings, settings.drift.experiment_name)
    for old in mlc.search_runs([experiment_id], filter_string=f"tags.drift_date = '{iso}'"):
        mlc.delete_run(old.info.run_id)
    tags = {
        "run_type": "drift",
        "segmentation": report["segmentation"],
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
    lens = report["segmentation"]
    base = {"segmentation": lens, "as_of_date": as_of_date, "model_version": version, "decision": decision}
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
    seg_base = {"segmentation": lens, "as_of_date": as_of_date, "model_version": version}
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
        "segmentation": report["segmentation"],
        "as_of_date": as_of_date,
        "model_version": report.get("model_version"),
        "decision": report["decision"],
        "reasons": "\n".join(report.get("reasons") or []),
        "share_drifted": report.get("share_drifted"),
        "rows": report.get("rows"),
        "reference_as_of_date": date.fromisoformat(str(ref_date)[:10]) if ref_date else None,
    }


def _replace_date(
    con: duckdb.DuckDBPyConnection, table: str, columns: Mapping[str, str], rows: list[dict], day: date,
    settings: Settings,
) -> None:
    """Replace the lens's rows of `day` in `table`."""
    add_segmentation_column(con, table, settings.lenses[0])  # rows from before lenses are the first lens's
    con.execute(f"create table if not exists {table} (" + ", ".join(f"{c} {t}" for c, t in columns.items()) + ")")
    for c, t in columns.items():  # a table written by an earlier version of this module may lack columns
        con.execute(f"alter table {table} add column if not exists {c} {t}")
    con.execute(f"delete from {table} where segmentation = ? and as_of_date = ?", [settings.lens, day])
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
            _replace_date(con, METRICS_TABLE, METRIC_COLUMNS, rows, as_of_date, settings)
            _replace_date(con, SEGMENT_METRICS_TABLE, SEGMENT_METRIC_COLUMNS, seg_rows, as_of_date, settings)
            _replace_date(con, DECISIONS_TABLE, DECISION_COLUMNS, [decision_row(report, as_of_date)], as_of_date,
                          settings)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return len(rows) + len(seg_rows)


CHAMPION = "champion"  # run(model_version=...): compare with the current champion


def report_folder(settings: Settings, as_of_date: date) -> Path:
    """Where the lens's drift report of the date is written: reports/drift/<date>/<lens>/."""
    return settings.paths.reports / "drift" / as_of_date.isoformat() / settings.lens


def run(
    settings: Settings, as_of_date: date, *, model_version: str | None = CHAMPION, table: str | None = None
) -> dict[str, Any]:
    """Measure the lens's drift for `as_of_date` (its features in `table`, default the lens's mart) against the
    model `model_version` (the lens's champion by default; None: no model yet), write the reports
    (reports/drift/<date>/<lens>/), the MLflow run and monitoring.drift_metrics.

    Returns {segmentation, as_of_date, decision ('none'|'warn'|'retrain'), reasons [str], model_version, share_drifted,
    drifted_features [str], psi {feature: value}, segment_mix_psi, distance_ratio, switch_share, report_json,
    report_html, mlflow_run_id, seconds}.
    """
    t0 = time.perf_counter()
    if model_version == CHAMPION:
        model = tracking.load_champion(settings)
    else:
        model = None if model_version is None else tracking.load_version_number(settings, model_version)
    report = compute(settings, as_of_date, model, table)
    report_dir = report_folder(settings, as_of_date)
    run_id = _log_run(settings, report, report_dir)
    _write_metrics(settings, report, as_of_date)
    log.info("drift %s: %s (%s)", report["as_of_date"], report["decision"], "; ".join(report["reasons"]))
    mix = report.get("segment_mix") or {}
    return {
        "segmentation": report["segmentation"],
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

