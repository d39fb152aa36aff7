"""Per-stage wall time and peak memory, one JSON line per stage execution in reports/stage_metrics/<date>.jsonl.

`seg bench` and the gate-overhead benchmark read these lines; they are measurements, never asserted by a test.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

from seg.core.config import Settings


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so each stage reports its own peak within a shared process.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def recorded(settings: Settings, stage: str, as_of_date: dt.date) -> Iterator[None]:
    """Time the block and append its record (status failed when it raised) to the date's stage metrics."""
    _reset_peak_rss()
    start = time.monotonic()
    status = "failed"
    try:
        yield
        status = "success"
    finally:
        record = {"stage": stage, "as_of_date": as_of_date.isoformat(), "status": status,
                  "seconds": round(time.monotonic() - start, 3), "peak_rss_mb": _peak_rss_mb()}
        out = settings.paths.reports / "stage_metrics" / f"{as_of_date.isoformat()}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
