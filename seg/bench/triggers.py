"""`seg.bench.triggers.run(...)`: time one micro-batch at scale (through Airflow) and a Redis publish of N memberships.

The lake: `customers` x `days` generated (seed 42) ending `end`; every day before `end` is landed first (the daily
DAG's job, not timed). The `end` day's files are replaced by hourly drop files; the micro-batch at hour h+1 lands
the file of hour h (~50 k events at 1 M customers in the busiest hours) and evaluates; a warm-up micro-batch at
hour h runs first (not timed), as the previous 15-minute batch would have.

Redis: the bench writes only under its own prefix `bench:triggers:<random>` (the micro-batch through a copy of the
trigger definitions with that key_prefix), refuses the production prefix (the definitions' redis.key_prefix) and
deletes its keys afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import yaml

from seg.core import config
from seg.triggers import definitions

BENCH_PREFIX = "bench:triggers"


def _production_prefixes() -> set[str]:
    return {definitions.load().redis_prefix, definitions.load(definitions.DEFAULT_FILE).redis_prefix}


def bench_prefix(prefix: str | None = None) -> str:
    """A fresh bench prefix (or `prefix`), refused when it is, contains or lies under the production prefix."""
    prefix = prefix or f"{BENCH_PREFIX}:{uuid.uuid4().hex[:8]}"
    for production in _production_prefixes():
        if prefix == production or prefix.startswith(production + ":") or production.startswith(prefix + ":"):
            raise ValueError(f"the bench refuses to publish under the production Redis prefix {production!r} "
                             f"(asked for {prefix!r})")
    return prefix


def _unlink_prefix(r, prefix: str) -> None:
    keys = list(r.scan_iter(f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i:i + 5000])


def _bench_definitions(root: Path, prefix: str) -> Path:
    """The trigger definitions in use, with the bench's Redis prefix: the micro-batch subprocess reads this copy."""
    raw = yaml.safe_load(Path(os.environ.get("SEG_TRIGGERS_CONFIG") or definitions.DEFAULT_FILE).read_text())
    raw.setdefault("redis", {})["key_prefix"] = prefix
    path = root / "bench_triggers.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    if definitions.load(path).redis_prefix != prefix:
        raise RuntimeError(f"{path}: the bench's definitions do not use its prefix {prefix!r}")
    return path


def _split_day_into_hours(settings: config.Settings, day: dt.date, target_events: int) -> tuple[int, int]:
    """Move the generated files of `day` aside and write hourly drop files; returns (hour, events in it) of the
    first hour with at least `target_events` events (else the busiest hour)."""
    inc = settings.paths.incoming
    aside = settings.paths.root / "bench_day"
    aside.mkdir(exist_ok=True)
    d = day.isoformat()
    for source in ("events", "orders", "order_items", "store_visits", "survey_responses", "crm_customers"):
        src = inc / source / d
        if src.is_dir():
            shutil.move(str(src), str(aside / source))
    con = duckdb.connect()
    try:
        ev = f"read_parquet('{aside}/events/*.parquet')"
        counts = con.execute(f"select hour(occurred_at) as h, count(*) from {ev} where occurred_at::date = '{d}' "
                             "group by 1 order by 1").fetchall()
        above = [(h, n) for h, n in counts if n >= target_events]
        hour, n = above[0] if above else max(counts, key=lambda x: x[1])
        for h in (hour - 1, hour):
            start = dt.datetime.combine(day, dt.time(h))
            where = f"occurred_at >= TIMESTAMP '{start}' and occurred_at < TIMESTAMP '{start + dt.timedelta(hours=1)}'"
            for source, col in (("events", "occurred_at"), ("orders", "ordered_at")):
                if not (aside / source).is_dir():
                    continue
                out = inc / source / d / f"{source}_{d}_h{h:02d}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                con.execute(f"copy (select * from read_parquet('{aside}/{source}/*.parquet') where {where.replace('occurred_at', col)}) "
                            f"to '{out}' (format parquet)")
            if (aside / "order_items").is_dir():
                out = inc / "order_items" / d / f"order_items_{d}_h{h:02d}.parquet"
                out.parent.mkdir(parents=True, exist_ok=True)
                con.execute(f"copy (select i.* from read_parquet('{aside}/order_items/*.parquet') i where i.order_id in "
                            f"(select order_id from read_parquet('{aside}/orders/*.parquet') where "
                            f"{where.replace('occurred_at', 'ordered_at')})) to '{out}' (format parquet)")
        return hour, n
    finally:
        con.close()


def redis_publish(url: str, memberships: int = 1_000_000, triggers: int = 5, prefix: str | None = None) -> dict:
    """Publish `memberships` synthetic memberships as one version (pipelined) and switch to it, under a bench
    prefix (never the production one); cleans up."""
    from seg.triggers.redis import client, publish_rows

    prefix = bench_prefix(prefix)
    cfg = definitions.load()
    r = client(url, cfg.redis_connect_timeout_s, cfg.redis_socket_timeout_s)
    now = dt.datetime(2026, 11, 2, 10, 0)
    value = json.dumps({"segment_name": "Segment", "priority": 1, "entered_at": "2026-11-02T10:00:00.000000",
                        "expires_at": "2026-11-04T10:00:00.000000", "person_id": None})
    rows = [(f"{i:032x}", f"trigger_{i % triggers}", value) for i in range(memberships)]
    try:
        result = publish_rows(r, prefix, now, rows, keep=2)
    finally:
        _unlink_prefix(r, prefix)
    return {"memberships": memberships, "seconds": result["seconds"], "write_s": result["write_s"]}


def run(customers: int = 1_000_000, days: int = 14, end: dt.date = dt.date(2026, 11, 2), events: int = 50_000,
        data_dir: str | Path | None = None, redis_url: str | None = None, memberships: int = 1_000_000,
        through_airflow: bool = True, identities: bool = False) -> dict:
    """Returns {"micro_batch": {...seconds, events, tasks...}, "redis_publish": {...}} (sections skipped when
    their inputs are missing: no Redis URL -> no Redis figures)."""
    from seg.generate import run as generate
    from seg.lake.landing import land_all

    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="seg_triggers_bench_"))
    settings = config.load(root)
    out: dict = {"customers": customers, "days": days, "data_dir": str(root)}
    t0 = time.monotonic()
    if not settings.paths.incoming.is_dir():
        generate(settings.paths, customers=customers, days=days, end=end, seed=42)
    out["generate_s"] = round(time.monotonic() - t0, 1)
    marker = root / "bench_day"
    if not marker.is_dir():
        hour, n = _split_day_into_hours(settings, end, events)
        (marker / "hour.txt").write_text(f"{hour} {n}")
    hour, n = (int(x) for x in (marker / "hour.txt").read_text().split())
    t0 = time.monotonic()
    land_all(settings, end - dt.timedelta(days=1))
    out["land_history_s"] = round(time.monotonic() - t0, 1)
    if identities:
        from seg.transform import dbt

        t0 = time.monotonic()
        # the identity graph the triggers read: marts.identities (no audit var: dbt builds it straight into marts)
        dbt.invoke(settings, ["run", "--select", "+identities"], (end - dt.timedelta(days=1)).isoformat())
        out["identities_s"] = round(time.monotonic() - t0, 1)
    warm = dt.datetime.combine(end, dt.time(hour))
    timed = warm + dt.timedelta(hours=1)
    env = {**os.environ, "SEG_DATA_DIR": str(root)}
    batch = {"events_in_hour": n, "evaluated_at": timed.isoformat()}
    if redis_url:
        batch["redis_prefix"] = prefix = bench_prefix()
        env["SEG_REDIS_URL"] = redis_url
        env["SEG_TRIGGERS_CONFIG"] = str(_bench_definitions(root, prefix))
    else:
        env.pop("SEG_REDIS_URL", None)
    try:
        _micro_batches(root, env, warm, timed, through_airflow, batch)
    finally:
        if redis_url:
            from seg.triggers.redis import client

            _unlink_prefix(client(redis_url), prefix)
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        batch["active_memberships"] = con.execute("select count(*) from marts.trigger_memberships").fetchone()[0]
        batch["evaluate_seconds_in_task"] = con.execute(
            f"select seconds from triggers.runs where evaluated_at = TIMESTAMP '{timed}'").fetchone()[0]
    finally:
        con.close()
    out["micro_batch"] = batch
    if redis_url:
        out["redis_publish"] = redis_publish(redis_url, memberships)
    return out


def _micro_batches(root: Path, env: dict, warm: dt.datetime, timed: dt.datetime, through_airflow: bool,
                   batch: dict) -> None:
    for label, at in (("warmup", warm), ("timed", timed)):
        cmd = [sys.executable, "-m", "seg.pipeline.cli", "triggers", "run", "--at", at.isoformat()]
        if not through_airflow:
            cmd.append("--no-airflow")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = round(time.monotonic() - t0, 2)
        (root / f"bench_{label}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
        if proc.returncode:
            raise RuntimeError(f"micro-batch {label} failed; see {root / f'bench_{label}.log'}")
        batch[f"{label}_s"] = seconds
        if label == "timed":
            batch["tasks"] = {parts[0]: float(parts[2]) for parts in (line.split() for line in proc.stdout.splitlines())
                              if len(parts) == 3 and parts[1] in ("success", "failed")}
