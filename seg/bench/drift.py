"""Timings of the daily drift step for the benchmark: `bench(settings, as_of_date) -> dict`."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from ml import tracking
from ml.drift.monitor import compute, run
from ml.drift.report import render_html
from seg.core.config import Settings


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
