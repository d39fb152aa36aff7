"""Synthetic data generator: six contract sources as daily Parquet files, plus the ground truth.

    from seg.generate import run
    summary = run(paths, customers=20_000, days=60, end=date(2025, 3, 1), seed=7,
                  drift_from=None, faults=["orders:null_ids:2025-02-10"])

See docs/generator.md for personas, identities, truth files and faults. `profile="five_groups"` (params.profiles()
lists them) generates a second, independently shaped world instead: other planted groups, fewer sources (see
seg/generate/profiles/); the default profile is personas.yml.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seg.core.config import Paths, write_deployment
from seg.generate.day import DaySimulator
from seg.generate.delivery import PARQUET_OPTIONS, WAITING_DAYS, Delivery, file_path
from seg.generate.faults import FAULT_KINDS, Fault, parse_fault, validate_faults
from seg.generate.params import DEFAULT_PROFILE, PERSONAS_FILE, Params, load_params, profile_file, profiles
from seg.generate.population import build_world
from seg.generate.truth import TruthAcc, identities_table, personas_table, triggers_table
from seg.generate.world import World

__all__ = ["run", "parse_fault", "Fault", "FAULT_KINDS", "file_path", "profiles"]

GENERATOR_VERSION = 1
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


@dataclass(frozen=True)
class _Request:
    """What `run` was asked for, checked and normalised."""

    customers: int
    days: int
    start: dt.date
    end: dt.date
    seed: int
    drift_from: dt.date | None
    faults: list[Fault]
    profile: str = DEFAULT_PROFILE


def _int_at_least(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        kind = "a positive" if minimum > 0 else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer, got {value!r}")
    return int(value)


def _checked_request(customers, days, end, seed, drift_from, faults, profile=DEFAULT_PROFILE) -> _Request:
    """The arguments of `run`, checked in this order (the first problem is the one reported)."""
    customers = _int_at_least(customers, "customers", 1)
    days = _int_at_least(days, "days", 1)
    seed = _int_at_least(seed, "seed", 0)
    if customers > 40_000_000:  # customer ids are C + 8 digits (people plus ~3 % second records)
        raise ValueError(f"customers must be at most 40,000,000, got {customers}")
    end = _as_date(end, "end")
    start = end - dt.timedelta(days=days - 1)
    if drift_from is not None:
        drift_from = _as_date(drift_from, "drift_from")
        if not start < drift_from <= end:
            raise ValueError(f"drift_from {drift_from} must be after the first day {start} and not after {end}")
    checked = validate_faults(faults, start, end)
    sources = load_params(profile=profile).sources  # an unknown profile raises here, naming the known ones
    undelivered = sorted({f.source for f in checked} - set(sources))
    if undelivered:
        raise ValueError(f"profile {profile} delivers no {', '.join(undelivered)}: a fault there would never be met")
    return _Request(customers=customers, days=days, start=start, end=end, seed=seed, drift_from=drift_from,
                    faults=checked, profile=profile)


def _simulate_and_deliver(paths: Paths, req: _Request, sim: DaySimulator) -> Delivery:
    """Simulate the days in order and write each into paths.incoming with its faults (files of earlier days
    are written in the background meanwhile)."""
    paths.incoming.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seg-generate-writer") as pool:
        delivery = Delivery(paths, req.faults, req.seed, pool, sim.w.params.sources)
        for d in range(req.days):
            day = req.start + dt.timedelta(days=d)
            # no reference to the day's tables stays here: once submitted only the writer's queue holds them,
            # which is what collect() bounds
            delivery.submit_day(day, {**sim.simulate(d), "fx_rates": rates_table(day)})
            delivery.collect(keep_days=WAITING_DAYS)
        delivery.collect()
    return delivery


def _write_truth(truth: Path, world: World, acc: TruthAcc, fault_records: list[dict]) -> dict[str, int]:
    """personas, identities, triggers and faults.json into truth/; returns the number of rows per trigger."""
    truth.mkdir(parents=True, exist_ok=True)
    pq.write_table(personas_table(world), truth / "personas.parquet", **PARQUET_OPTIONS)
    pq.write_table(identities_table(world), truth / "identities.parquet", **PARQUET_OPTIONS)
    trig = triggers_table(world, acc)
    pq.write_table(trig, truth / "triggers.parquet", **PARQUET_OPTIONS)
    (truth / "faults.json").write_text(json.dumps({"faults": fault_records}, indent=1) + "\n")
    return {k: int(v) for k, v in zip(*np.unique(trig.column("trigger").to_numpy(zero_copy_only=False),
                                                   return_counts=True), strict=True)}


def _faults_in_given_order(req: _Request, records: list[dict]) -> list[dict]:
    """The fault records in the order the faults were given (they are met day by day)."""
    order = {str(f): i for i, f in enumerate(req.faults)}
    return sorted(records, key=lambda r: order[r["fault"]])


def _world_counts(world: World) -> dict:
    return {"people": world.n, "crm_records": int(world.rec_person.size), "devices": int(world.dev_anon.size)}


def _generation_meta(req: _Request, params: Params, world: World, delivery: Delivery,
                     trig_counts: dict[str, int]) -> dict:
    """truth/generation.json: how the data was generated (arguments, personas file) and what came out."""
    persona_counts = {params.names[i]: int(c) for i, c in enumerate(np.bincount(world.persona,
                                                                                minlength=len(params.names)))}
    return {
        "generator_version": GENERATOR_VERSION,
        "customers": req.customers, "days": req.days, "start": req.start.isoformat(), "end": req.end.isoformat(),
        "seed": req.seed, "drift_from": req.drift_from.isoformat() if req.drift_from else None,
        "faults": [str(f) for f in req.faults],
        "personas_file_sha256": hashlib.sha256(PERSONAS_FILE.read_bytes()).hexdigest(),
        # only a non-default profile is recorded, so the default profile's truth stays as it always was
        **({} if req.profile == DEFAULT_PROFILE else {
            "profile": req.profile, "profile_file_sha256": hashlib.sha256(profile_file(req.profile).read_bytes()).hexdigest(),
            "sources": list(params.sources)}),
        **_world_counts(world),
        "personas": persona_counts,
        "switched_personas": int((world.persona_after >= 0).sum()),
        "rows_generated": delivery.generated, "rows_written": delivery.rows, "files": len(delivery.files),
        "triggers": trig_counts,
    }


def _summary(req: _Request, world: World, delivery: Delivery, trig_counts: dict[str, int],
             fault_records: list[dict], seconds: float) -> dict:
    """What `run` returns (and `seg generate` prints): counts, and per fault what was done to the data."""
    brief = ("applied", "reason", "affected_rows", "rows_kept", "rows_dropped", "column", "copy", "bytes_after")
    return {
        "rows": delivery.rows, "rows_generated": delivery.generated, "files": len(delivery.files),
        "seconds": round(seconds, 3), "start": req.start.isoformat(), "end": req.end.isoformat(),
        **_world_counts(world),
        "triggers": trig_counts,
        "faults": [{"fault": r["fault"], **{k: r[k] for k in brief if k in r}} for r in fault_records],
    }


def run(paths: Paths, *, customers: int, days: int, end: dt.date, seed: int,
        drift_from: dt.date | None = None, faults=(), profile: str = DEFAULT_PROFILE) -> dict:
    """Generate `days` days ending on `end` (inclusive) for `customers` people into paths.incoming, and the
    truth into paths.truth. Returns a summary (rows per source, files written, seconds, ...). `profile` picks the
    world (DEFAULT_PROFILE: personas.yml; see params.profiles()); truth/personas.parquet holds every person's
    planted persona (a profile's group) either way."""
    t0 = time.perf_counter()
    req = _checked_request(customers, days, end, seed, drift_from, faults, profile)
    params = load_params(profile=req.profile)
    # the population has its own stream (the days draw from [seed, 1, day], faults from [seed, 2, fault])
    pop_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([req.seed, 0])))
    world = build_world(params, pop_rng, customers=req.customers, days=req.days, end=req.end,
                        drift_from=req.drift_from)
    sim = DaySimulator(world, req.seed)
    delivery = _simulate_and_deliver(paths, req, sim)
    write_deployment(paths.root, DEPLOYMENT,
                     "# Written by `seg generate`: this data directory is the generator's synthetic deployment.\n")
    fault_records = _faults_in_given_order(req, delivery.fault_records)
    trig_counts = _write_truth(paths.truth, world, sim.acc, fault_records)
    meta = _generation_meta(req, params, world, delivery, trig_counts)
    (paths.truth / "generation.json").write_text(json.dumps(meta, indent=1) + "\n")
    return _summary(req, world, delivery, trig_counts, fault_records, time.perf_counter() - t0)
