"""One trigger micro-batch at evaluation time `at` (the run's data_interval_end): three stage calls, in order.

    land(settings, at)           seg.lake.landing: new or changed files of the micro-batch sources
    evaluate(settings, at)       seg.triggers.batch: evaluate the triggers at `at`, write the trigger tables
    publish_redis(settings, at)  seg.triggers.redis: current memberships + this batch's changes to Redis

The DAG segmentation_triggers runs one per task (land_recent, evaluate_triggers, publish_redis); `run` calls the
three without Airflow (`seg triggers run --no-airflow`, tests). Tables and Redis keys: seg/triggers/tables.py and
seg/triggers/redis.py. Nothing heavy is imported at module level: the DAG file imports this module to parse.
"""

from __future__ import annotations

import datetime as dt
import time

from seg.core.config import Settings
from seg.triggers import definitions


def schedule() -> str:
    """The micro-batch DAG's schedule (config/triggers.yml `schedule`)."""
    return definitions.load().schedule


def land(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None) -> dict:
    """Land new or changed incoming files of the micro-batch sources dated on the evaluation day or the day
    before (late files of older days are the daily DAG's job); unchanged files are skipped by content hash."""
    from seg.core.contract import for_settings
    from seg.lake.landing import discover, land_file, read_manifests

    cfg = cfg or definitions.load()
    contract = for_settings(settings)  # the deployment's overlay, as the daily landing
    low = (at - dt.timedelta(days=1)).date().isoformat()
    out = {}
    for source in cfg.land_sources:
        known = {m["sha256"]: m["file"] for m in read_manifests(settings.paths, source) if m["status"] == "landed"}
        counts = {"files_landed": 0, "files_skipped": 0, "rows_landed": 0, "rows_quarantined": 0}
        for inc in discover(settings.paths, at.date(), [source], settings.landing.formats):
            if inc.day < low:
                continue
            # landed_on = the evaluation day: the daily raw gate of that day audits these rows, also when the file
            # is yesterday's (the daily landing then finds it landed and skips it)
            entry = land_file(settings, inc, contract, known, run_date=at.date())
            if entry is None:
                counts["files_skipped"] += 1
                continue
            counts["files_landed"] += 1
            counts["rows_landed"] += entry.rows_landed
            counts["rows_quarantined"] += entry.rows_quarantined
            if entry.status == "landed":
                known.setdefault(entry.sha256, entry.file)
        out[source] = counts
    return out


def evaluate(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
             since: dt.datetime | None = None) -> dict:
    """Evaluate the triggers at `at` and write the trigger tables; `since` widens the read range (backfills)."""
    from seg.triggers.batch import evaluate_and_write

    return evaluate_and_write(settings, at, cfg, since)


def publish_redis(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
                  url: str | None = None) -> dict:
    """Current memberships and this batch's changes to Redis (skipped without SEG_REDIS_URL)."""
    from seg.triggers.redis import publish_redis as publish

    return publish(settings, at, cfg, url)


def run(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None, publish: bool = True) -> dict:
    """The whole micro-batch without Airflow: land, evaluate + tables, Redis (when SEG_REDIS_URL is set)."""
    cfg = cfg or definitions.load()
    timings = {}
    t0 = time.monotonic()
    landed = land(settings, at, cfg)
    timings["land_s"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    summary = evaluate(settings, at, cfg)
    timings["evaluate_s"] = round(time.monotonic() - t0, 3)
    if publish and settings.redis_url:
        t0 = time.monotonic()
        summary["redis"] = publish_redis(settings, at, cfg)
        timings["redis_s"] = round(time.monotonic() - t0, 3)
    return {**summary, "landed": landed, "timings": timings}
