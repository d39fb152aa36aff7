"""Synthetic data generator: six contract sources as daily Parquet files, plus the ground truth.

    from seg.generate import run
    summary = run(paths, customers=20_000, days=60, end=date(2025, 3, 1), seed=7,
                  drift_from=None, faults=["orders:null_ids:2025-02-10"])

See docs/generator.md for personas, identities, truth files and faults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seg.config import Paths, write_deployment
from seg.contract import SOURCES
from seg.generate.day import DaySimulator
from seg.generate.faults import FAULT_KINDS, Fault, apply_file_faults, apply_row_faults, parse_fault, validate_faults
from seg.generate.params import PERSONAS_FILE, load_params
from seg.generate.truth import identities_table, personas_table, triggers_table
from seg.generate.world import build_world

__all__ = ["run", "parse_fault", "Fault", "FAULT_KINDS", "file_path"]

GENERATOR_VERSION = 1
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1}
# The synthetic shop as a deployment: its identifier formats and plausible maxima (the overlay), and its money in
# EUR. `run` writes this as the data directory's deployment.yml (config.DEPLOYMENT_FILE), so every run on generated
# data lands under the generator's own rules; data from anywhere else is held only to the shared contract.
DEPLOYMENT = {"contract_overlay": "seg/generate/contract_overlay.yml", "reporting_currency": "EUR"}
# Daily reference rates to EUR the generator delivers as fx_rates (its orders are in EUR; the rates show the source
# working end to end and let a fault or a test add orders in other currencies).
FX_TO_EUR = {"USD": 0.92, "GBP": 1.17}


def rates_table(day: dt.date) -> pa.Table:
    """The day's fx_rates rows: a small deterministic wiggle around FX_TO_EUR (rates are never constant)."""
    wiggle = 1 + 0.01 * np.sin(day.toordinal() / 7.0)
    currencies = sorted(FX_TO_EUR)
    return pa.table({
        "rate_date": pa.array([day] * len(currencies), pa.date32()),
        "from_currency": pa.array(currencies, pa.string()),
        "to_currency": pa.array(["EUR"] * len(currencies), pa.string()),
        "rate": pa.array([round(FX_TO_EUR[c] * wiggle, 6) for c in currencies], pa.float64()),
    })


def file_path(paths: Paths, source: str, day: dt.date) -> Path:
    d = day.isoformat()
    return paths.incoming / source / d / f"{source}_{d}.parquet"


def _as_date(value, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date (YYYY-MM-DD), got {value!r}")


def run(paths: Paths, *, customers: int, days: int, end: dt.date, seed: int,
        drift_from: dt.date | None = None, faults=()) -> dict:
    """Generate `days` days ending on `end` (inclusive) for `customers` people into paths.incoming, and the
    truth into paths.truth. Returns a summary (rows per source, files written, seconds, ...)."""
    t0 = time.perf_counter()
    if isinstance(customers, bool) or not isinstance(customers, int | np.integer) or customers < 1:
        raise ValueError(f"customers must be a positive integer, got {customers!r}")
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    customers, days, seed = int(customers), int(days), int(seed)
    if customers > 40_000_000:  # customer ids are C + 8 digits (people plus ~3 % second records)
        raise ValueError(f"customers must be at most 40,000,000, got {customers}")
    end = _as_date(end, "end")
    start = end - dt.timedelta(days=days - 1)
    if drift_from is not None:
        drift_from = _as_date(drift_from, "drift_from")
        if not start < drift_from <= end:
            raise ValueError(f"drift_from {drift_from} must be after the first day {start} and not after {end}")
    fault_list = validate_faults(faults, start, end)

    params = load_params()
    pop_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0])))
    world = build_world(params, pop_rng, customers=customers, days=days, end=end, drift_from=drift_from)
    sim = DaySimulator(world, seed)

    by_file: dict[tuple[str, dt.date], list[Fault]] = defaultdict(list)
    for f in fault_list:
        by_file[(f.source, f.day)].append(f)

    def rel(p: Path) -> str:
        return p.relative_to(paths.incoming).as_posix()

    paths.incoming.mkdir(parents=True, exist_ok=True)
    rows = {s: 0 for s in SOURCES}
    generated = {s: 0 for s in SOURCES}
    files: list[str] = []
    fault_records: list[dict] = []

    def write(source: str, day: dt.date, table, target: Path, todo: list[Fault]) -> list[dict]:
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target, **PARQUET_OPTIONS)
        return apply_file_faults(target, todo, rel)

    def collect(job) -> None:
        source, day, target, n_rows, recs, fut = job
        recs = recs + fut.result()
        files.append(rel(target))
        rows[source] += n_rows
        for r in recs:
            if "copy" in r:
                files.append(r["copy"])
                rows[source] += n_rows
            fault_records.append({"fault": r["fault"], "source": source, "kind": parse_fault(r["fault"]).kind,
                                  "date": day.isoformat(), "applied": True, "file": rel(target),
                                  **{k: v for k, v in r.items() if k != "fault"}})

    # Files are written by one background thread while the next day is simulated (pyarrow releases the GIL);
    # at most two days of tables wait for it, which bounds memory.
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seg-generate-writer") as pool:
        for d in range(days):
            day = start + dt.timedelta(days=d)
            tables = sim.simulate(d)
            tables["fx_rates"] = rates_table(day)
            for source in SOURCES:
                target = file_path(paths, source, day)
                if target.parent.exists():  # a re-run replaces the day's directory (incl. fault copies)
                    shutil.rmtree(target.parent)
                table = tables[source]
                generated[source] += table.num_rows
                todo = by_file.get((source, day), [])
                if table.num_rows == 0:
                    for f in todo:
                        fault_records.append({"fault": str(f), "source": source, "kind": f.kind,
                                              "date": day.isoformat(), "applied": False,
                                              "reason": "no rows for this source on this day: no file written"})
                    continue
                table, recs = apply_row_faults(table, source, todo, seed)
                fut = pool.submit(write, source, day, table, target, todo)
                pending.append((source, day, target, table.num_rows, recs, fut))
            del tables
            while len(pending) > 2 * len(SOURCES):
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())

    write_deployment(paths.root, DEPLOYMENT,
                     "# Written by `seg generate`: this data directory is the generator's synthetic deployment.\n")

    # ---------------------------------------------------------------- truth
    truth = paths.truth
    truth.mkdir(parents=True, exist_ok=True)
    pq.write_table(personas_table(world), truth / "personas.parquet", **PARQUET_OPTIONS)
    pq.write_table(identities_table(world), truth / "identities.parquet", **PARQUET_OPTIONS)
    trig = triggers_table(world, sim.acc)
    pq.write_table(trig, truth / "triggers.parquet", **PARQUET_OPTIONS)
    order = {str(f): i for i, f in enumerate(fault_list)}
    fault_records.sort(key=lambda r: order[r["fault"]])
    (truth / "faults.json").write_text(json.dumps({"faults": fault_records}, indent=1) + "\n")
    trig_counts = {k: int(v) for k, v in zip(*np.unique(trig.column("trigger").to_numpy(zero_copy_only=False),
                                                          return_counts=True), strict=True)}
    persona_counts = {params.names[i]: int(c) for i, c in enumerate(np.bincount(world.persona,
                                                                                minlength=len(params.names)))}
    meta = {
        "generator_version": GENERATOR_VERSION,
        "customers": customers, "days": days, "start": start.isoformat(), "end": end.isoformat(), "seed": seed,
        "drift_from": drift_from.isoformat() if drift_from else None,
        "faults": [str(f) for f in fault_list],
        "personas_file_sha256": hashlib.sha256(PERSONAS_FILE.read_bytes()).hexdigest(),
        "people": world.n, "crm_records": int(world.rec_person.size), "devices": int(world.dev_anon.size),
        "personas": persona_counts,
        "switched_personas": int((world.persona_after >= 0).sum()),
        "rows_generated": generated, "rows_written": rows, "files": len(files), "triggers": trig_counts,
    }
    (truth / "generation.json").write_text(json.dumps(meta, indent=1) + "\n")
    brief = ("applied", "reason", "affected_rows", "rows_kept", "rows_dropped", "column", "copy", "bytes_after")
    return {
        "rows": rows, "rows_generated": generated, "files": len(files),
        "seconds": round(time.perf_counter() - t0, 3), "start": start.isoformat(), "end": end.isoformat(),
        "people": world.n, "crm_records": int(world.rec_person.size), "devices": int(world.dev_anon.size),
        "triggers": trig_counts,
        "faults": [{"fault": r["fault"], **{k: r[k] for k in brief if k in r}} for r in fault_records],
    }
