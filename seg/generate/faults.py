"""Fault injection: parse/validate `SOURCE:KIND:YYYY-MM-DD` strings and apply them to a day's file.

Row faults change the Arrow table before it is written; file faults (duplicate_file, truncated_file) act on
the written file. Each fault draws from its own random stream (seeded from the run seed and the fault
string), so injecting a fault never changes any other file. What was done is recorded exactly for
faults.json: file, rows in the file, affected row positions (0-based, in the written file) and ids.
"""

from __future__ import annotations

import datetime as dt
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.core.contract import SOURCES, load_contract

FAULT_KINDS = ("duplicate_file", "truncated_file", "missing_column", "unknown_event_type", "null_ids",
               "negative_amounts", "future_timestamps", "wrong_units", "volume_drop")
AMOUNT_COLUMNS = {"orders": "amount", "order_items": "unit_price", "store_visits": "purchase_amount"}
# the required column that missing_column drops
DROPPED_COLUMNS = {"orders": "amount", "events": "event_type", "order_items": "quantity",
                   "store_visits": "loyalty_id", "survey_responses": "answer", "crm_customers": "signup_at"}
UNKNOWN_EVENT_TYPES = ("add_to_wishlist", "share_product", "live_chat_opened", "coupon_applied")
ROW_SHARE = 0.05          # share of rows hit by unknown_event_type, null_ids, negative_amounts, future_timestamps
VOLUME_KEEP = 0.10        # share of rows kept by volume_drop
FUTURE_DAYS = 400
UNITS_FACTOR = 100
# order in which faults on the same file are applied
_ORDER = {k: i for i, k in enumerate(("volume_drop", "unknown_event_type", "null_ids", "negative_amounts",
                                      "future_timestamps", "wrong_units", "missing_column", "duplicate_file",
                                      "truncated_file"))}


@dataclass(frozen=True)
class Fault:
    source: str
    kind: str
    day: dt.date

    def __str__(self) -> str:
        return f"{self.source}:{self.kind}:{self.day.isoformat()}"


def _applies(source: str, kind: str) -> str | None:
    """None when `kind` can be injected into `source`, else the reason it cannot."""
    if kind == "unknown_event_type" and source != "events":
        return "unknown_event_type applies only to events"
    if kind in ("negative_amounts", "wrong_units") and source not in AMOUNT_COLUMNS:
        cols = ", ".join(f"{s}.{c}" for s, c in AMOUNT_COLUMNS.items())
        return f"{kind} applies only to sources with an amount ({cols})"
    if kind == "future_timestamps" and load_contract().source(source).timestamp is None:
        return f"future_timestamps needs a timestamp column; {source} has none"
    return None


def parse_fault(text: str) -> Fault:
    """'SOURCE:KIND:YYYY-MM-DD' -> Fault. Raises ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"fault must be a string SOURCE:KIND:YYYY-MM-DD, got {text!r}")
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"fault {text!r}: expected SOURCE:KIND:YYYY-MM-DD")
    source, kind, day = (x.strip() for x in parts)
    if source not in SOURCES:
        raise ValueError(f"fault {text!r}: unknown source {source!r} (known: {', '.join(SOURCES)})")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {text!r}: unknown kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"fault {text!r}: {day!r} is not a date YYYY-MM-DD") from None
    reason = _applies(source, kind)
    if reason:
        raise ValueError(f"fault {text!r}: {reason}")
    return Fault(source, kind, date)


def validate_faults(faults, start: dt.date, end: dt.date) -> list[Fault]:
    if isinstance(faults, str):
        raise ValueError("faults must be a list of 'SOURCE:KIND:YYYY-MM-DD' strings, not one string")
    out: list[Fault] = []
    for item in faults or ():
        f = item if isinstance(item, Fault) else parse_fault(item)
        if _applies(f.source, f.kind):
            raise ValueError(f"fault {f}: {_applies(f.source, f.kind)}")
        if not start <= f.day <= end:
            raise ValueError(f"fault {f}: date {f.day} is outside the generated range {start} .. {end}")
        if f in out:
            raise ValueError(f"fault {f} given twice")
        out.append(f)
    return out


def fault_rng(seed: int, fault: Fault) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 2, zlib.crc32(str(fault).encode())])))


def _n_hit(n: int) -> int:
    return 0 if n == 0 else max(1, int(round(ROW_SHARE * n)))


def _ids(table: pa.Table, source: str, rows: np.ndarray) -> list:
    pk = load_contract().source(source).primary_key
    sub = table.take(pa.array(rows, type=pa.int64()))
    if len(pk) == 1:
        return sub.column(pk[0]).to_pylist()
    cols = [sub.column(c).to_pylist() for c in pk]
    # compound keys may hold timestamps (crm_customers: customer_id, updated_at); the record is JSON
    return [[str(v) if isinstance(v, dt.date) else v for v in x] for x in zip(*cols, strict=True)]


def _set(table: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), table.schema.field(name), arr)


def _mask(n: int, rows: np.ndarray) -> pa.Array:
    m = np.zeros(n, dtype=bool)
    m[rows] = True
    return pa.array(m)


def apply_row_faults(table: pa.Table, source: str, faults: list[Fault], seed: int) -> tuple[pa.Table, list[dict]]:
    """Apply the row-level faults of one file; returns the new table and one record per fault."""
    contract = load_contract().source(source)
    records = []
    for f in sorted(faults, key=lambda x: _ORDER[x.kind]):
        if f.kind in ("duplicate_file", "truncated_file"):
            continue
        rng = fault_rng(seed, f)
        n = table.num_rows
        rec: dict = {"rows_in_file_before": n}
        if f.kind == "volume_drop":
            keep = np.sort(rng.choice(n, size=max(1, int(round(VOLUME_KEEP * n))), replace=False))
            dropped = np.setdiff1d(np.arange(n), keep)
            rec.update(rows_kept=int(keep.size), rows_dropped=int(dropped.size),
                       kept_ids=_ids(table, source, keep))
            table = table.take(pa.array(keep, type=pa.int64()))
        elif f.kind == "unknown_event_type":
            rows = np.sort(rng.choice(n, size=_n_hit(n), replace=False))
            new = np.array(UNKNOWN_EVENT_TYPES, dtype=object)[rng.integers(0, len(UNKNOWN_EVENT_TYPES), rows.size)]
            col = table.column("event_type").combine_chunks().to_numpy(zero_copy_only=False).astype(object)
            col[rows] = new
            rec.update(column="event_type", rows=rows.tolist(), ids=_ids(table, source, rows),
                       values=new.tolist())
            table = _set(table, "event_type", pa.array(col, pa.string()))
        elif f.kind == "null_ids":
            pk = contract.primary_key[0]
            rows = np.sort(rng.choice(n, size=_n_hit(n), replace=False))
            rec.update(column=pk, rows=rows.tolist(), ids=_ids(table, source, rows))
            col = table.column(pk).combine_chunks()
            table = _set(table, pk, pc.if_else(_mask(n, rows), pa.nulls(n, col.type), col))
        elif f.kind == "negative_amounts":
            name = AMOUNT_COLUMNS[source]
            vals = table.column(name).combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)
            eligible = np.flatnonzero(vals > 0)
            rows = np.sort(rng.choice(eligible, size=min(_n_hit(n), eligible.size), replace=False))
            vals = vals.copy()
            vals[rows] = -vals[rows]
            rec.update(column=name, rows=rows.tolist(), ids=_ids(table, source, rows))
            table = _set(table, name, pa.array(vals, pa.float64()))
        elif f.kind == "future_timestamps":
            name = contract.timestamp
            col = table.column(name).combine_chunks()
            rows = np.sort(rng.choice(n, size=_n_hit(n), replace=False))
            shifted = pc.add(col, pa.scalar(dt.timedelta(days=FUTURE_DAYS), pa.duration("us")))
            rec.update(column=name, shift_days=FUTURE_DAYS, rows=rows.tolist(), ids=_ids(table, source, rows))
            table = _set(table, name, pc.if_else(_mask(n, rows), shifted, col))
        elif f.kind == "wrong_units":
            name = AMOUNT_COLUMNS[source]
            vals = table.column(name).combine_chunks().to_numpy(zero_copy_only=False).astype(np.float64)
            rec.update(column=name, factor=UNITS_FACTOR, rows="all", affected_rows=n)
            table = _set(table, name, pa.array(np.round(vals * UNITS_FACTOR, 2), pa.float64()))
        elif f.kind == "missing_column":
            name = DROPPED_COLUMNS[source]
            rec.update(column=name)
            table = table.drop_columns([name])
        if "rows" in rec and rec["rows"] != "all":
            rec["affected_rows"] = len(rec["rows"])
        rec["rows_in_file"] = table.num_rows
        records.append({"fault": str(f), **rec})
    return table, records


def apply_file_faults(path: Path, faults: list[Fault], rel) -> list[dict]:
    """duplicate_file (copy next to it, first) then truncated_file (cut the file to half its bytes)."""
    records = []
    for f in sorted(faults, key=lambda x: _ORDER[x.kind]):
        if f.kind == "duplicate_file":
            copy = path.with_name(f"{path.stem}_copy{path.suffix}")
            shutil.copyfile(path, copy)
            records.append({"fault": str(f), "copy": rel(copy), "bytes": copy.stat().st_size})
        elif f.kind == "truncated_file":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            records.append({"fault": str(f), "bytes_before": len(data), "bytes_after": len(data) // 2})
    return records
