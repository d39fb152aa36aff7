"""What the quality gates cost: wall time of each gate against the stage(s) it guards, for one run's date.

    from seg.bench.gates import gate_overhead
    gate_overhead(settings, "2026-11-02")
    # {"as_of_date": ..., "gates": {"gate_raw": {"seconds": 4.1, "guards": {"land_orders": 2.0, ...},
    #   "guarded_seconds": 9.3, "overhead_pct": 44.1}, ...}, "total": {...}, "publish_marts": {...}}

Reads `reports/stage_metrics/<date>.jsonl` (one line per stage execution, written by seg.pipeline.daily.run_stage);
when a date ran more than once, the last successful execution of each stage counts. Stages missing from the
file (a branch not taken, a run stopped by a gate) are left out of the sums.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from seg.core.config import Settings
from seg.core.contract import SOURCES

# gate stage -> the stages whose output it validates (the segments gate: one per lens, see guards())
GUARDS: dict[str, tuple[str, ...]] = {
    "gate_raw": tuple(f"land_{s}" for s in SOURCES),
    "gate_marts": ("dbt_build",),
    "gate_features": ("build_features",),
}


def guards(settings: Settings) -> dict[str, tuple[str, ...]]:
    """GUARDS plus each lens's segments gate over its assign stage (stage names as seg.pipeline.daily records)."""
    return {**GUARDS, **{f"{lens}.gate_segments": (f"{lens}.assign",) for lens in settings.lenses}}
# write-audit-publish copies the audited marts: a cost of the gates too, measured against the dbt stages
PUBLISH = ("publish_marts", ("dbt_build", "build_features"))


def stage_seconds(settings: Settings, as_of_date: dt.date | str) -> dict[str, float]:
    """{stage: seconds} of the last successful execution of each stage for the date."""
    day = as_of_date if isinstance(as_of_date, str) else as_of_date.isoformat()
    path = settings.paths.reports / "stage_metrics" / f"{day}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no stage metrics for {day} (has `seg run --date {day}` run?)")
    seconds: dict[str, float] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("status") == "success":
            seconds[record["stage"]] = float(record["seconds"])
    return seconds


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def gate_overhead(settings: Settings, as_of_date: dt.date | str) -> dict[str, Any]:
    seconds = stage_seconds(settings, as_of_date)
    gates: dict[str, Any] = {}
    gate_total = guarded_total = 0.0
    for gate, guarded in guards(settings).items():
        if gate not in seconds:
            continue
        ran = {s: seconds[s] for s in guarded if s in seconds}
        guarded_s = sum(ran.values())
        gates[gate] = {"seconds": seconds[gate], "guards": ran, "guarded_seconds": round(guarded_s, 3),
                       "overhead_pct": _pct(seconds[gate], guarded_s)}
        gate_total += seconds[gate]
        guarded_total += guarded_s
    result: dict[str, Any] = {
        "as_of_date": str(as_of_date),
        "gates": gates,
        "total": {"gates_seconds": round(gate_total, 3), "guarded_seconds": round(guarded_total, 3),
                  "overhead_pct": _pct(gate_total, guarded_total)},
    }
    publish, built = PUBLISH
    if publish in seconds:
        built_s = sum(seconds.get(s, 0.0) for s in built)
        result[publish] = {"seconds": seconds[publish], "guarded_seconds": round(built_s, 3),
                           "overhead_pct": _pct(seconds[publish], built_s)}
        with_publish = gate_total + seconds[publish]
        result["total"]["with_publish_seconds"] = round(with_publish, 3)
        result["total"]["with_publish_overhead_pct"] = _pct(with_publish, guarded_total)
    return result
