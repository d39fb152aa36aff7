"""Every generator fault, through the real DAG: the right gate catches it with the right severity.

One baseline run (BASE_DAY, ~1.5 k customers x 14 days: lands the backlog, trains, publishes) on clean data must
pass every gate. Each scenario then copies the baseline's data directory, drops the next day's files (one fault
injected by the generator, same seed, so every other file is identical to the clean day) and runs `seg run` for
DAY in a subprocess. Faults are grouped by outcome into two runs (CI budget: <= 6 minutes for the module): the
critical ones together and the warning ones together, each fault on a different source, so every assertion
still names one fault's source. For every fault:

- the expected expectation of the expected suite failed with the expected severity (GX result JSON and
  monitoring.gate_results), and the task log names it with its sample rows;
- landing kept rows_in = rows_landed + rows_quarantined for every readable file (manifests);
- a critical failure fails the gate task, runs nothing after it, and leaves the published marts and segments
  byte-for-byte as the baseline published them (doubles to 9 decimals).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from seg.core import config
from seg.core.contract import SOURCES
from seg.lake.landing import read_manifests

from .conftest import as_generator_deployment, query, seg_run

pytestmark = pytest.mark.e2e

BASE_DAY = dt.date(2026, 11, 3)   # a Tuesday: the first run trains (no champion yet)
DAY = dt.date(2026, 11, 4)        # not a training weekday: every scenario reuses the baseline's champion
CUSTOMERS = 1500
DAYS = 14
SEED = 11


@dataclass(frozen=True)
class Fault:
    kind: str
    source: str
    suite: str
    expectation_key: str
    severity: str
    run: str             # scenarios sharing a run are injected together on DAY (different sources)

    @property
    def spec(self) -> str:
        return f"{self.source}:{self.kind}:{DAY.isoformat()}"


FAULTS = [
    # critical: one run, each fault on its own source (the samples name the source, so each assertion stays exact)
    # amounts in cents: mostly within the contract's bounds, caught by the median vs the trailing days
    Fault("wrong_units", "orders", "raw__ingest", "amount_distribution", "critical", run="critical"),
    # an unreadable file: part of the day is missing
    Fault("truncated_file", "order_items", "raw__ingest", "rejected_files", "critical", run="critical"),
    # a required column dropped (events.event_type): every row quarantined at landing
    Fault("missing_column", "events", "raw__ingest", "quarantine_share_max", "critical", run="critical"),
    # warnings: the bad rows / the copy are held back at landing, the rest of the day is published
    Fault("duplicate_file", "crm_customers", "raw__ingest", "duplicate_files", "warning", run="warnings"),
    Fault("null_ids", "orders", "raw__ingest", "quarantine_share", "warning", run="warnings"),
    Fault("negative_amounts", "order_items", "raw__ingest", "quarantine_share", "warning", run="warnings"),
    Fault("unknown_event_type", "events", "raw__ingest", "quarantine_share", "warning", run="warnings"),
    Fault("future_timestamps", "store_visits", "raw__ingest", "quarantine_share", "warning", run="warnings"),
    Fault("volume_drop", "survey_responses", "raw__ingest", "volume", "warning", run="warnings"),
]
GATES = ("raw", "marts", "features", "segments.profile", "segments.behaviour")


def _generate(root: Path, faults: list[str]) -> Path:
    from seg.generate import run as generate

    generate(config.load(root).paths, customers=CUSTOMERS, days=DAYS, end=DAY, seed=SEED, faults=faults)
    return root / "incoming"


def fingerprint(settings, schema: str = "marts") -> dict[str, str]:
    """sha256 of every table of the schema (rows in order, doubles rounded to 9 decimals)."""
    tables = [r[0] for r in query(settings, "select table_name from information_schema.tables "
                                            "where table_schema = ? order by 1", [schema])]
    prints = {}
    for table in tables:
        columns = query(settings, f"select column_name, column_type from (describe {schema}.{table})")
        select = ", ".join(f'round("{n}", 9)' if t in ("DOUBLE", "FLOAT") else f'"{n}"' for n, t in columns)
        rows = query(settings, f"select {select} from {schema}.{table} order by all")
        prints[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return prints


def gate_document(settings, day: dt.date, gate: str) -> dict:
    return json.loads((settings.paths.reports / "gx" / day.isoformat() / f"{gate}.json").read_text())


def failed_rows(settings, day: dt.date, gate: str) -> list[dict]:
    return [e for e in gate_document(settings, day, gate)["expectations"] if not e["success"]]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A data directory whose last run (BASE_DAY, clean) published marts and segments."""
    clean = _generate(tmp_path_factory.mktemp("clean"), [])
    root = tmp_path_factory.mktemp("baseline") / "data"
    shutil.copytree(clean, root / "incoming", ignore=shutil.ignore_patterns(DAY.isoformat()))
    as_generator_deployment(root)
    proc = seg_run(root, "run", "--date", BASE_DAY.isoformat())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    settings = config.load(root)
    return settings, fingerprint(settings)


@pytest.fixture(scope="module")
def scenario(baseline, tmp_path_factory):
    """run name -> (settings, completed `seg run --date DAY`), each run once on its own copy of the baseline."""
    base_settings, _ = baseline
    done = {}

    def get(run: str):
        if run not in done:
            generated = _generate(tmp_path_factory.mktemp(f"gen_{run}"), [f.spec for f in FAULTS if f.run == run])
            root = tmp_path_factory.mktemp(f"run_{run}") / "data"
            shutil.copytree(base_settings.paths.root, root, ignore=shutil.ignore_patterns("*.log", "*.lock"))
            for day_dir in generated.glob(f"*/{DAY.isoformat()}"):
                shutil.copytree(day_dir, root / "incoming" / day_dir.parent.name / DAY.isoformat())
            done[run] = (config.load(root), seg_run(root, "run", "--date", DAY.isoformat()))
        return done[run]

    return get


def test_clean_data_passes_every_gate_and_publishes(baseline):
    settings, prints = baseline
    for gate in GATES:
        document = gate_document(settings, BASE_DAY, gate)
        assert document["success"] and document["critical_failures"] == 0, (gate, failed_rows(settings, BASE_DAY, gate))
    for gate in ("raw", "marts", "features"):  # volume, freshness, quarantine and amounts raise no false alarm
        assert failed_rows(settings, BASE_DAY, gate) == [], gate
    assert {"customers", "orders", "customer_rfm", "customer_features", "customer_segments"} <= set(prints)
    (published, lenses), = query(settings, "select count(distinct as_of_date), count(distinct segmentation) "
                                           "from marts.customer_segments")
    assert (published, lenses) == (1, 2)
    (audited,), = query(settings, "select count(*) from marts_audit.customers")
    (customers,), = query(settings, "select count(*) from marts.customers")
    assert audited == customers > 0


@pytest.mark.parametrize("fault", FAULTS, ids=[f.kind for f in FAULTS])
def test_fault_is_caught_by_the_right_gate_with_the_right_severity(fault, scenario, baseline):
    settings, proc = scenario(fault.run)
    failed = [e for e in failed_rows(settings, DAY, "raw") if e["suite"] == fault.suite]
    hits = [e for e in failed if e["key"] == fault.expectation_key
            and any(s.get("source") == fault.source for s in e["sample_values"] if isinstance(s, dict))]
    assert hits, f"{fault.kind}: no failed {fault.suite}.{fault.expectation_key} for {fault.source}: {failed}"
    assert {e["severity"] for e in hits} == {fault.severity}
    (recorded,), = query(settings, "select count(*) from monitoring.gate_results where as_of_date = ? and gate = 'raw' "
                                   "and suite = ? and expectation_key = ? and not success and severity = ?",
                         [DAY, fault.suite, fault.expectation_key, fault.severity])
    assert recorded == 1
    log = proc.stdout + proc.stderr
    assert f"{fault.suite} / " in log and f'"source": "{fault.source}"' in log, "the task log names it with samples"

    # landing lost nothing: every readable file reconciles (an unreadable one is kept whole and counted as rejected)
    for source in SOURCES:
        for entry in read_manifests(settings.paths, source):
            if entry["status"] != "rejected":
                assert entry["rows_in"] == entry["rows_landed"] + entry["rows_quarantined"], entry["file"]

    if fault.severity == "critical":
        assert proc.returncode == 1
        assert f"segmentation_daily {DAY}: FAILED" in proc.stdout
        assert re.search(r"gate_raw\s+failed\s", proc.stdout) and re.search(r"dbt_build\s+upstream_failed", proc.stdout)
        assert f"GateFailed: gate 'raw' failed for {DAY}" in log
        assert not (settings.paths.reports / "gx" / DAY.isoformat() / "marts.json").exists(), "nothing ran after it"
        _, baseline_prints = baseline
        assert fingerprint(settings) == baseline_prints, "published marts and segments unchanged"
    else:
        assert proc.returncode == 0, proc.stdout[-3000:]
        for gate in GATES:
            assert gate_document(settings, DAY, gate)["critical_failures"] == 0, gate
        (dates,), = query(settings, "select list(distinct as_of_date) from marts.customer_segments")
        assert dates == [DAY]
