"""dbt vs hand-written SQL: the same transformations timed both ways over the same lake.

    from seg.core import config
    from seg.bench import dbt_baseline
    dbt_baseline.compare(config.load(), "2026-11-02")
    # {"dbt_s": ..., "hand_s": ..., "ratio": dbt_s / hand_s, "dbt_peak_rss_mb": ..., "hand_peak_rss_mb": ..., ...}
    python -m seg.bench.dbt_baseline [--date D] [--tests]      # the same for SEG_DATA_DIR, as JSON

The hand-written version is one DuckDB script, dbt_project/analyses/hand_written_baseline.sql (staging, identity
resolution, marts customers / orders / sessions / customer_rfm / customer_features), run on a separate DuckDB file
(`<data dir>/baseline/hand_written.duckdb`, recreated each time) so the dbt warehouse is never touched. Both sides
get the same DuckDB limits (settings `warehouse`: memory_limit, threads) and full work: dbt builds seeds and every
model with --full-refresh (no data tests unless include_tests, then the DAG's two `dbt build` steps), the script
sessionises every event.
Each side runs in its own Python process, so its peak RSS (DuckDB runs in-process) is its own; the seconds are
measured inside that process around the work (imports and dbt's parse are counted for dbt: they are its cost).
`parity` checks that the hand-written marts hold exactly the rows dbt built (every shared column).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from seg.core import config
from seg.core.config import REPO_ROOT, Settings
from seg.core.contract import load_contract
from seg.core.warehouse import sql_str

SCRIPT = REPO_ROOT / "dbt_project" / "analyses" / "hand_written_baseline.sql"
SEEDS = REPO_ROOT / "dbt_project" / "seeds"
MARTS = ("customers", "orders", "sessions", "customer_rfm", "customer_features")
COMPONENTS = "-- @components"


def baseline_database(settings: Settings) -> Path:
    return settings.paths.root / "baseline" / "hand_written.duckdb"


def latest_ingest_date(settings: Settings) -> dt.date:
    """The latest landed day of any source (the default as-of date)."""
    days = [p.name.split("=", 1)[1] for p in settings.paths.raw.glob("*/ingest_date=*")]
    if not days:
        raise FileNotFoundError(f"nothing landed under {settings.paths.raw}")
    return dt.date.fromisoformat(max(days))


def _connect(settings: Settings, database: Path) -> duckdb.DuckDBPyConnection:
    warehouse = settings.warehouse
    temp = settings.paths.root / "tmp" / "duckdb_baseline"
    temp.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(
        str(database),
        config={
            "memory_limit": warehouse.memory_limit,
            "threads": warehouse.threads,
            "temp_directory": str(temp),
            "preserve_insertion_order": False,
            # same as the dbt profile (DuckDB 2.0.1 window_self_join bug, see seg/core/warehouse.py)
            "disabled_optimizers": "window_self_join",
        },
    )


def _components(con: duckdb.DuckDBPyConnection, edges: str, nodes: str, out: str) -> int:
    """Connected components by min-label propagation until no label changes; returns the rounds it took."""
    con.execute(
        f"create or replace temp table {out}_nb as select node_a as node, node_b as neighbour from {edges} "
        f"union select node_b, node_a from {edges}"
    )
    con.execute(f"create or replace temp table {out} as select distinct node, node as label from {nodes}")
    rounds = 0
    while True:
        rounds += 1
        con.execute(
            f"create or replace temp table {out}_next as "
            f"select o.node, least(o.label, coalesce(min(l.label), o.label)) as label from {out} o "
            f"left join {out}_nb nb on nb.node = o.node left join {out} l on l.node = nb.neighbour "
            "group by o.node, o.label"
        )
        changed = con.execute(
            f"select count(*) from {out}_next n join {out} o using (node) where n.label != o.label"
        ).fetchone()[0]
        con.execute(f"drop table {out}")
        con.execute(f"alter table {out}_next rename to {out}")
        if changed == 0:
            return rounds


def run_hand_written(settings: Settings, as_of_date: str | dt.date) -> dict[str, Any]:
    """Run the hand-written script for one as-of date into a fresh baseline DuckDB file; returns its timings."""
    as_of = dt.date.fromisoformat(str(as_of_date))
    database = baseline_database(settings)
    shutil.rmtree(database.parent, ignore_errors=True)
    database.parent.mkdir(parents=True)
    started = time.perf_counter()
    con = _connect(settings, database)
    try:
        for source in load_contract().sources:
            glob = settings.paths.raw / source / "*" / "*.parquet"
            con.execute(
                f"create view raw_{source} as select * from "
                f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
            )
        con.execute(f"create table rfm_segments as select * from read_csv('{SEEDS / 'rfm_segments.csv'}', header = true)")
        con.execute(f"set variable as_of_date = date '{as_of.isoformat()}'")
        from seg.lake.money import reporting_currency
        from seg.transform import dbt as seg_dbt

        # the money vars dbt gets in the pipeline: the same conversion rule
        dbt_vars = seg_dbt._vars(settings, as_of, {"reporting_currency": reporting_currency(settings)})
        con.execute(f"set variable reporting_currency = {sql_str(dbt_vars['reporting_currency'])}")
        con.execute(f"set variable fx_max_rate_age_days = {int(dbt_vars['fx_max_rate_age_days'])}")
        from seg.triggers.tables import pii_hmac, use_pii_key

        use_pii_key(con, settings.paths)  # the keyed hash of a guest's person id, as dbt's macro pii_hash
        con.execute(f"create temp macro pii_hash(value) as {pii_hmac('value')}")
        rounds = {}
        for statement in SCRIPT.read_text().split("\n;;\n"):
            body = statement.strip()
            if body.startswith(COMPONENTS):
                edges, nodes, out = body[len(COMPONENTS) :].split()
                rounds[out] = _components(con, edges, nodes, out)
            elif body:
                con.execute(body)
        rows = {mart: con.execute(f"select count(*) from hand.{mart}").fetchone()[0] for mart in MARTS}
    finally:
        con.close()
    return {"seconds": round(time.perf_counter() - started, 3), "rows": rows, "component_rounds": rounds}


def _run_dbt(settings: Settings, as_of_date: str, include_tests: bool) -> dict[str, Any]:
    from seg.lake.money import reporting_currency
    from seg.transform import dbt as seg_dbt

    money = {"reporting_currency": reporting_currency(settings)}
    started = time.perf_counter()
    if include_tests:
        seg_dbt.build(settings, as_of_date, exclude="tag:features", full_refresh=True, extra_vars=money)
        seg_dbt.build(settings, as_of_date, select="tag:features", full_refresh=True, extra_vars=money)
    else:
        # seeds + every model, no tests (the hand-written script has none)
        command = ["build", "--resource-type", "seed", "--resource-type", "model", "--full-refresh"]
        seg_dbt.invoke(settings, command, as_of_date, extra_vars=money)
    seconds = time.perf_counter() - started
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        rows = {mart: con.execute(f"select count(*) from marts.{mart}").fetchone()[0] for mart in MARTS}
    finally:
        con.close()
    return {"seconds": round(seconds, 3), "rows": rows}


def _phase(kind: str, root: str, as_of_date: str, include_tests: bool) -> dict[str, Any]:
    settings = config.load(Path(root))
    as_of_date = as_of_date or latest_ingest_date(settings).isoformat()
    if kind == "hand":
        result = run_hand_written(settings, as_of_date)
    else:
        result = _run_dbt(settings, as_of_date, include_tests)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def _in_subprocess(kind: str, settings: Settings, as_of_date: str, include_tests: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "seg.bench.dbt_baseline",
        "--phase",
        kind,
        "--date",
        as_of_date,
        "--data-dir",
        str(settings.paths.root),
    ]
    if include_tests:
        command.append("--tests")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} phase failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
            [catalog, schema, table],
        ).fetchall()
    ]


def parity(settings: Settings) -> dict[str, Any]:
    """Do the hand-written marts hold exactly what dbt built? Per mart: rows on each side and rows of the dbt
    mart that the hand-written one lacks (EXCEPT ALL over every column both have; 0 = identical contents)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"attach '{settings.paths.warehouse}' as dbt_side (read_only)")
        con.execute(f"attach '{baseline_database(settings)}' as hand_side (read_only)")
        marts = {}
        for mart in MARTS:
            hand_columns = set(_columns(con, "hand_side", "hand", mart))
            columns = ", ".join(c for c in _columns(con, "dbt_side", "marts", mart) if c in hand_columns)
            dbt_rows, hand_rows, differing = con.execute(
                f"select (select count(*) from dbt_side.marts.{mart}), (select count(*) from hand_side.hand.{mart}), "
                f"(select count(*) from (select {columns} from dbt_side.marts.{mart} "
                f"except all select {columns} from hand_side.hand.{mart}))"
            ).fetchone()
            marts[mart] = {"dbt_rows": dbt_rows, "hand_rows": hand_rows, "differing_rows": differing}
    finally:
        con.close()
    identical = all(m["dbt_rows"] == m["hand_rows"] and m["differing_rows"] == 0 for m in marts.values())
    return {"identical": identical, "marts": marts}


def compare(settings: Settings, as_of_date: str | dt.date | None = None, include_tests: bool = False) -> dict[str, Any]:
    """Time dbt (seeds + every model, --full-refresh; with the tests if include_tests) and the hand-written script
    on the same lake and as-of date (default: the latest landed day). Rebuilds the dbt warehouse for that date.

    Returns {"dbt_s", "hand_s", "ratio" (dbt_s / hand_s), "dbt_peak_rss_mb", "hand_peak_rss_mb", "as_of_date",
    "include_tests", "threads", "memory_limit", "parity": {identical, marts: {mart: {dbt_rows, hand_rows,
    differing_rows}}}}.
    """
    as_of = (dt.date.fromisoformat(str(as_of_date)) if as_of_date else latest_ingest_date(settings)).isoformat()
    hand = _in_subprocess("hand", settings, as_of, include_tests)
    dbt_side = _in_subprocess("dbt", settings, as_of, include_tests)
    return {
        "as_of_date": as_of,
        "dbt_s": dbt_side["seconds"],
        "hand_s": hand["seconds"],
        "ratio": round(dbt_side["seconds"] / hand["seconds"], 2) if hand["seconds"] else None,
        "dbt_peak_rss_mb": dbt_side["peak_rss_mb"],
        "hand_peak_rss_mb": hand["peak_rss_mb"],
        "include_tests": include_tests,
        "threads": settings.warehouse.threads,
        "memory_limit": settings.warehouse.memory_limit,
        "hand_component_rounds": hand.get("component_rounds"),
        "parity": parity(settings),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seg.bench.dbt_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--date", help="as-of date (default: the latest landed day)")
    parser.add_argument("--tests", action="store_true", help="time `dbt build` with the data and unit tests")
    parser.add_argument("--data-dir", help="data directory (default SEG_DATA_DIR)")
    parser.add_argument("--phase", choices=("dbt", "hand"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = config.load(Path(args.data_dir)) if args.data_dir else config.load()
    if args.phase:
        print(json.dumps(_phase(args.phase, str(settings.paths.root), args.date, args.tests)))
    else:
        print(json.dumps(compare(settings, args.date, args.tests), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
