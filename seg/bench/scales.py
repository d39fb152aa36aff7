"""`seg bench` / `make bench`: wall time, peak RSS and throughput of the pipeline at several scales.

Per scale, in a fresh data directory under bench_results/:
1. `seg generate` (subprocess; wall time and peak RSS from wait4),
2. `seg run` through Airflow (subprocess) for the day before the last: the first run, landing every earlier day
   and building the whole history (gates, dbt, features, training, assignment, drift, publish); per-stage wall
   time and peak RSS come from reports/stage_metrics (each stage resets the process's peak RSS counter when it
   starts); then `seg run` for the last day: the steady daily run (one day landed, incremental models),
3. a plain baseline with no orchestration: one DuckDB feature query over the landed lake plus one
   MiniBatchKMeans fit on its result. The ratio DAG data work / baseline is printed.
4. the figures the stages expose: each gate's overhead on the stage it guards (first run), identity precision/recall against
   the generator's truth, the daily drift step, and (up to --dbt-compare-max customers) dbt vs the same
   transformations as one hand-written SQL script.
Then, once, at the largest scale: a one-hour trigger micro-batch through Airflow and a 1 M-membership Redis publish
(SEG_REDIS_URL, default redis://127.0.0.1:6379/15).
Targets (printed beside the figures, never asserted): data work <= 2x baseline, whole 1 M run <= 120 s and
<= 3 GB RSS. Results go to a JSON file and a printed table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

END = dt.date(2026, 11, 2)
TARGETS = {"whole_run_s_at_1m": 120, "peak_rss_gb": 3.0, "data_work_vs_baseline": 2.0}

BASELINE = r"""
import sys, time, json, duckdb, numpy as np
from sklearn.cluster import MiniBatchKMeans
raw = sys.argv[1]
t0 = time.monotonic()
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET enable_progress_bar = false")
feats = con.execute(f'''
    with o as (
        select customer_id, count(distinct order_id) as frequency, sum(amount) as monetary,
               date_diff('day', max(ordered_at)::date, DATE '{sys.argv[2]}') as recency_days
        from read_parquet('{raw}/orders/*/*.parquet') where customer_id is not null group by 1),
    e as (
        select customer_id, count(*) as events, count(*) filter (where event_type = 'add_to_cart') as carts
        from read_parquet('{raw}/events/*/*.parquet') where customer_id is not null group by 1)
    select coalesce(o.frequency, 0), coalesce(o.monetary, 0), coalesce(o.recency_days, 999), coalesce(e.events, 0), coalesce(e.carts, 0)
    from o full outer join e using (customer_id)''').fetchnumpy()
X = np.column_stack([np.log1p(np.clip(np.asarray(v, dtype=float), 0, None)) for v in feats.values()])
t1 = time.monotonic()
MiniBatchKMeans(n_clusters=6, random_state=0, n_init=3, batch_size=4096).fit(X)
t2 = time.monotonic()
print(json.dumps({"rows": int(X.shape[0]), "query_s": t1 - t0, "fit_s": t2 - t1, "seconds": t2 - t0}))
"""


def _run(cmd: list[str], env: dict, log: Path) -> tuple[float, float, int, str]:
    """Run a command; returns (seconds, peak RSS MB of that child, exit code, stdout)."""
    start = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        err.write("\n--- stdout ---\n" + out)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - start, usage.ru_maxrss / 1024, proc.returncode, out


def bench_scale(customers: int, days: int, out_dir: Path, dbt_compare: bool = False) -> dict:
    data = out_dir / f"data_{customers}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "SEG_DATA_DIR": str(data), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    seg = [sys.executable, "-m", "seg.pipeline.cli"]
    result: dict = {"customers": customers, "days": days}

    secs, rss, code, _ = _run(seg + ["generate", "--customers", str(customers), "--days", str(days), "--end", END.isoformat(),
                                     "--seed", "7"], env, out_dir / f"generate_{customers}.log")
    if code:
        raise RuntimeError(f"generate failed, see {out_dir / f'generate_{customers}.log'}")
    result["generate"] = {"seconds": round(secs, 1), "peak_rss_mb": round(rss)}

    first = END - dt.timedelta(days=1)
    secs, rss, code, out = _run(seg + ["run", "--date", first.isoformat()], env, out_dir / f"run_{customers}.log")
    result["dag"] = {"seconds": round(secs, 1), "peak_rss_mb": round(rss), "success": code == 0}
    stages = _stage_metrics(data, first)
    per_source = _landed_rows(data)  # before the daily run lands its day: the first run's throughput
    secs, rss, code, out = _run(seg + ["run", "--date", END.isoformat()], env, out_dir / f"run_daily_{customers}.log")
    daily = _stage_metrics(data, END)
    result["daily"] = {"seconds": round(secs, 1), "peak_rss_mb": round(rss), "success": code == 0,
                       "data_work_s": round(sum(s["seconds"] for s in daily), 1),
                       "slowest": sorted(({"stage": s["stage"], "seconds": s["seconds"]} for s in daily),
                                         key=lambda s: -s["seconds"])[:5]}
    rows = sum(per_source.values())
    for stage in stages:
        # landing stages: that source's rows; later stages see (a transform of) every landed row
        stage_rows = per_source.get(stage["stage"].removeprefix("land_"), rows)
        stage["rows_per_s"] = round(stage_rows / stage["seconds"]) if stage["seconds"] else None
    result["stages"] = stages
    result["landed_rows"] = rows
    result["data_work_s"] = round(sum(s["seconds"] for s in stages), 1)

    secs, rss, code, out = _run([sys.executable, "-c", BASELINE, str(data / "lake" / "raw"), END.isoformat()], env,
                                out_dir / f"baseline_{customers}.log")
    base = json.loads(out[out.rindex("{"):]) if code == 0 else {"seconds": None}  # the JSON is printed last
    base["peak_rss_mb"] = round(rss)
    result["baseline"] = base
    if base.get("seconds"):
        result["data_work_vs_baseline"] = round(result["data_work_s"] / base["seconds"], 2)
    result.update(_extras(data, customers, dbt_compare))
    return result


def _guarded(fn, *args, **kwargs) -> dict:
    """A figure that could not be measured is reported with its error, not allowed to sink the whole bench."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported in the JSON and the table
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _extras(data: Path, customers: int, dbt_compare: bool) -> dict:
    """Figures the sibling stages expose: gate overhead, identity quality, drift step, dbt vs hand-written SQL."""
    from seg.bench.drift import bench as drift_bench
    from seg.bench.gates import gate_overhead
    from seg.bench.identity_quality import score
    from seg.core import config

    settings = config.load(data)
    out = {
        "gates": _guarded(gate_overhead, settings, END - dt.timedelta(days=1)),  # the first run
        "identity": _guarded(score, settings),
        "drift_step": _guarded(drift_bench, settings, END),
    }
    if dbt_compare:  # rebuilds the warehouse with --full-refresh: run last
        from seg.bench.dbt_baseline import compare

        out["dbt_vs_hand"] = _guarded(compare, settings, END)
    return out


def bench_triggers(customers: int, out_dir: Path) -> dict:
    """One micro-batch hour through Airflow and a 1 M-membership Redis publish, in a data directory of its own."""
    from seg.bench.triggers import run as bench

    redis_url = os.environ.get("SEG_REDIS_URL") or "redis://127.0.0.1:6379/15"
    data = out_dir / f"data_triggers_{customers}"
    shutil.rmtree(data, ignore_errors=True)
    return _guarded(bench, customers=customers, days=14, end=END, data_dir=data, redis_url=redis_url,
                    memberships=1_000_000, through_airflow=True)


def _stage_metrics(data: Path, day: dt.date) -> list[dict]:
    path = data / "reports" / "stage_metrics" / f"{day.isoformat()}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _landed_rows(data: Path) -> dict[str, int]:
    per_source: dict[str, int] = {}
    for manifest in (data / "lake" / "_manifests").glob("*/*/*.json"):
        entry = json.loads(manifest.read_text())
        per_source[entry["source"]] = per_source.get(entry["source"], 0) + entry.get("rows_landed", 0)
    return per_source


def print_table(results: list[dict]) -> None:
    for r in results:
        print(f"\n=== {r['customers']:,} customers x {r['days']} days: {r['landed_rows']:,} rows landed ===")
        print(f"{'stage':<28}{'seconds':>9}{'peak RSS MB':>13}{'rows/s':>12}")
        print(f"{'generate (subprocess)':<28}{r['generate']['seconds']:>9}{r['generate']['peak_rss_mb']:>13}")
        for s in r["stages"]:
            rate = f"{s['rows_per_s']:,}" if s.get("rows_per_s") else ""
            print(f"{s['stage']:<28}{s['seconds']:>9.1f}{(s['peak_rss_mb'] or 0):>13.0f}{rate:>12}")
        print(f"{'DAG data work (sum)':<28}{r['data_work_s']:>9}")
        print(f"{'DAG through Airflow (wall)':<28}{r['dag']['seconds']:>9}{'':>13}   success={r['dag']['success']}"
              "   (first run: all history)")
        d = r.get("daily") or {}
        if d:
            slowest = ", ".join(f"{s['stage']} {s['seconds']:.1f} s" for s in d["slowest"])
            print(f"{'next day (daily run, wall)':<28}{d['seconds']:>9}{d['peak_rss_mb']:>13}   success={d['success']}"
                  f"   stages {d['data_work_s']} s; slowest: {slowest}")
        b = r["baseline"]
        if b.get("seconds"):
            print(f"{'baseline: query + fit':<28}{b['seconds']:>9.1f}{b['peak_rss_mb']:>13}   (query {b['query_s']:.1f} s, fit {b['fit_s']:.1f} s)")
            print(f"ratio data work / baseline: {r['data_work_vs_baseline']}  (target <= {TARGETS['data_work_vs_baseline']})")
        # each stage resets the process's peak-RSS counter, so the run's peak is the largest stage peak
        peak = max([r["dag"]["peak_rss_mb"], r["generate"]["peak_rss_mb"]]
                   + [s["peak_rss_mb"] or 0 for s in r["stages"]]) / 1024
        print(f"whole run {r['dag']['seconds']} s first, {d.get('seconds')} s daily "
              f"(target at 1 M <= {TARGETS['whole_run_s_at_1m']} s), "
              f"peak RSS {peak:.2f} GB (target <= {TARGETS['peak_rss_gb']} GB)")
        _print_extras(r)


def _print_extras(r: dict) -> None:
    gates = r.get("gates", {})
    if "error" in gates or not gates:
        print(f"gates: {gates.get('error', 'no figures')}")
    else:
        for gate, g in gates.get("gates", {}).items():
            print(f"  {gate:<26}{g['seconds']:>9.1f} s guarding {g['guarded_seconds']:>8.1f} s  overhead {g['overhead_pct']} %")
        print(f"gates overall: {gates.get('total', {}).get('overhead_pct')} % of the stages they guard (target <= 25 %)")
    ident = r.get("identity", {})
    print("identity: " + (ident["error"] if "error" in ident else
                          f"pairwise precision {ident.get('precision')} recall {ident.get('recall')} (targets 0.99 / 0.98)"))
    drift = r.get("drift_step", {})
    print("drift step: " + (drift["error"] if "error" in drift else
                            f"{drift.get('run_seconds')} s whole run, {drift.get('compute_seconds')} s statistics (target <= 10 s at 1 M)"))
    cmp_ = r.get("dbt_vs_hand")
    if cmp_:
        print("dbt vs hand SQL: " + (cmp_["error"] if "error" in cmp_ else
                                     f"dbt {cmp_['dbt_s']:.1f} s, hand {cmp_['hand_s']:.1f} s, ratio {cmp_['ratio']:.2f} (target <= 2); "
                                     f"peak RSS dbt {cmp_.get('dbt_peak_rss_mb')} MB"))


def main(args) -> int:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    scales = [int(s) for s in str(args.scales).split(",") if s]
    payload: dict = {"end": END.isoformat(), "targets": TARGETS, "results": results}
    for scale in scales:
        print(f"benchmarking {scale:,} customers ...", flush=True)
        results.append(bench_scale(scale, args.days, out.parent, dbt_compare=scale <= args.dbt_compare_max))
        out.write_text(json.dumps(payload, indent=2, default=str))
    if args.triggers:
        print(f"benchmarking trigger micro-batch and Redis at {max(scales):,} customers ...", flush=True)
        payload["triggers"] = bench_triggers(max(scales), out.parent)
        out.write_text(json.dumps(payload, indent=2, default=str))
    print_table(results)
    if "triggers" in payload:
        print(f"\ntriggers: {json.dumps(payload['triggers'], default=str)[:1500]}")
    print(f"\nwritten: {out}")
    return 0 if all(r["dag"]["success"] and r.get("daily", {}).get("success", True) for r in results) else 1
