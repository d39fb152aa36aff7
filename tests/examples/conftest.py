"""Examples end to end: the real `seg import` of an example's mapping on a fixture shaped like a user's export, then
the real `seg run --date D` (subprocess, as in tests/e2e) in a fresh data directory, once per test module."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from seg.core import config
from seg.core.config import Settings
from seg.core.contract import SOURCES
from seg.lake.landing import read_manifests

from ..e2e.conftest import query, seg_run

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
EXAMPLES = REPO / "examples"


@dataclass
class ExampleRun:
    settings: Settings
    imports: list[str]  # stdout of each `seg import`
    run_stdout: str

    def query(self, sql: str, params=None):
        return query(self.settings, sql, params)


def import_and_run(root: Path, day: dt.date, *imports: tuple[Path, Path]) -> ExampleRun:
    """`seg import FILE --mapping MAPPING --date day` for each (file, mapping), then `seg run --date day`."""
    outputs = []
    for input_file, mapping in imports:
        proc = seg_run(root, "import", str(input_file), "--mapping", str(mapping), "--date", day.isoformat())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(proc.stdout)
    proc = seg_run(root, "run", "--date", day.isoformat())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"segmentation_daily {day}: SUCCESS" in proc.stdout
    return ExampleRun(config.load(root), outputs, proc.stdout)


def landing(settings: Settings) -> dict[str, dict]:
    """Per source with files: rows in / landed / quarantined and the quarantine reasons, from the manifests."""
    totals = {}
    for source in SOURCES:
        entries = read_manifests(settings.paths, source)
        if not entries:
            continue
        assert all(e["status"] == "landed" for e in entries), entries
        reasons: dict[str, int] = {}
        for e in entries:
            for reason, n in (e.get("reasons") or {}).items():
                reasons[reason] = reasons.get(reason, 0) + n
        totals[source] = {"rows_in": sum(e["rows_in"] for e in entries),
                          "landed": sum(e["rows_landed"] for e in entries),
                          "quarantined": sum(e["rows_quarantined"] for e in entries),
                          "reasons": reasons}
    return totals


def rejected_lines(settings: Settings, day: dt.date) -> list[tuple[int, str, str]]:
    """(line number, original text, reason) of the input lines the importer could not read, from the lake."""
    files = sorted((settings.paths.quarantine / "_import" / day.isoformat()).glob("*.parquet"))
    if not files:
        return []
    import duckdb

    return duckdb.sql(f"select line_no, line, reason from read_parquet({[str(f) for f in files]}) order by all").fetchall()


def assert_every_customer_has_one_segment(run: ExampleRun) -> int:
    """Every customer has one segment in every lens, and nobody else has one."""
    (customers,), = run.query("select count(*) from marts.customers")
    for lens in run.settings.lenses:
        (segmented, unsegmented), = run.query(f"""
            select count(s.person_id), count(*) filter (where s.person_id is null)
            from marts.customers as c left join marts.customer_segments as s
              on s.person_id = c.person_id and s.segmentation = '{lens}'""")
        assert customers > 0 and unsegmented == 0 and segmented == customers, lens
    (rows,), = run.query("select count(*) from marts.customer_segments")
    assert rows == customers * len(run.settings.lenses), "one segment row per customer and lens, no one else"
    return customers
