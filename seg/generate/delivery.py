"""Delivering the simulated days: each day's tables become that day's incoming files, with the planned faults
applied, and what was generated, written and injected is counted for the truth and the summary.

Files are written by one background thread while the next day is simulated (pyarrow releases the GIL); at most
two days of tables wait for it, which bounds memory. Results are collected in submission order, so the records
and counts do not depend on thread timing.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from seg.core.config import Paths
from seg.core.contract import SOURCES
from seg.generate.faults import Fault, apply_file_faults, apply_row_faults, parse_fault

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 1}
WAITING_DAYS = 2  # days of tables that may wait for the writer thread


def file_path(paths: Paths, source: str, day: dt.date) -> Path:
    d = day.isoformat()
    return paths.incoming / source / d / f"{source}_{d}.parquet"


class _Job(NamedTuple):
    """One file handed to the writer thread (the future yields the file faults' records)."""

    source: str
    day: dt.date
    target: Path
    n_rows: int
    row_fault_records: list[dict]
    written: Future


class Delivery:
    """Writes days of tables of `sources` into paths.incoming with `pool` (one worker), applying the faults of each
    file.

    Afterwards: `rows` (written per source, fault copies included), `generated` (per source, before faults),
    `files` (relative paths written) and `fault_records` (one per fault, in the order they were met)."""

    def __init__(self, paths: Paths, faults: list[Fault], seed: int, pool: ThreadPoolExecutor,
                 sources: tuple[str, ...] = SOURCES):
        self.paths, self.seed, self.pool, self.sources = paths, seed, pool, tuple(sources)
        self.by_file: dict[tuple[str, dt.date], list[Fault]] = defaultdict(list)
        for f in faults:
            self.by_file[(f.source, f.day)].append(f)
        self.rows = {s: 0 for s in self.sources}
        self.generated = {s: 0 for s in self.sources}
        self.files: list[str] = []
        self.fault_records: list[dict] = []
        self._pending: deque[_Job] = deque()

    def rel(self, p: Path) -> str:
        return p.relative_to(self.paths.incoming).as_posix()

    def submit_day(self, day: dt.date, tables: dict[str, pa.Table]) -> None:
        """Hand one day's tables (every delivered source; a profile may deliver fewer) to the writer."""
        for source in self.sources:
            self._submit(source, day, tables[source])

    def collect(self, keep_days: int = 0) -> None:
        """Wait for the oldest files until at most `keep_days` days of tables are queued (0: all written)."""
        while len(self._pending) > keep_days * len(self.sources):
            self._collect(self._pending.popleft())

    def _submit(self, source: str, day: dt.date, table: pa.Table) -> None:
        target = file_path(self.paths, source, day)
        if target.parent.exists():  # a re-run replaces the day's directory (incl. fault copies)
            shutil.rmtree(target.parent)
        self.generated[source] += table.num_rows
        todo = self.by_file.get((source, day), [])
        if table.num_rows == 0:
            for f in todo:
                self.fault_records.append({"fault": str(f), "source": source, "kind": f.kind,
                                           "date": day.isoformat(), "applied": False,
                                           "reason": "no rows for this source on this day: no file written"})
            return
        table, recs = apply_row_faults(table, source, todo, self.seed)
        written = self.pool.submit(self._write, table, target, todo)
        self._pending.append(_Job(source, day, target, table.num_rows, recs, written))

    def _write(self, table: pa.Table, target: Path, todo: list[Fault]) -> list[dict]:
        """In the writer thread: the file, then its file faults (duplicate_file, truncated_file)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target, **PARQUET_OPTIONS)
        return apply_file_faults(target, todo, self.rel)

    def _collect(self, job: _Job) -> None:
        recs = job.row_fault_records + job.written.result()
        self.files.append(self.rel(job.target))
        self.rows[job.source] += job.n_rows
        for r in recs:
            if "copy" in r:  # duplicate_file: the copy holds the same rows again
                self.files.append(r["copy"])
                self.rows[job.source] += job.n_rows
            self.fault_records.append({"fault": r["fault"], "source": job.source,
                                       "kind": parse_fault(r["fault"]).kind, "date": job.day.isoformat(),
                                       "applied": True, "file": self.rel(job.target),
                                       **{k: v for k, v in r.items() if k != "fault"}})
