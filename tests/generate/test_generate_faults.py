"""Faults: bad fault strings are refused up front; each injected fault does exactly what faults.json says,
and nothing else changes."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from seg.core.config import Paths
from seg.core.contract import load_contract
from seg.generate import FAULT_KINDS, Fault, parse_fault, run

from .conftest import END, FAULTS, SMALL, START, hashes


def test_parse_fault_accepts_a_valid_string():
    f = parse_fault("orders:negative_amounts:2025-03-01")
    assert f == Fault("orders", "negative_amounts", dt.date(2025, 3, 1))
    assert str(f) == "orders:negative_amounts:2025-03-01"
    assert parse_fault("events:unknown_event_type:2025-03-01").kind == "unknown_event_type"
    assert {parse_fault(f"events:{k}:2025-01-01").kind for k in FAULT_KINDS
            if k not in ("negative_amounts", "wrong_units")} == set(FAULT_KINDS) - {"negative_amounts", "wrong_units"}


@pytest.mark.parametrize("text, message", [
    ("payments:null_ids:2025-03-01", "unknown source"),
    ("orders:exploded:2025-03-01", "unknown kind"),
    ("orders:null_ids:2025-02-30", "not a date"),
    ("orders:null_ids:yesterday", "not a date"),
    ("orders:null_ids", "SOURCE:KIND:YYYY-MM-DD"),
    ("orders:null_ids:2025-03-01:x", "SOURCE:KIND:YYYY-MM-DD"),
    ("orders:unknown_event_type:2025-03-01", "only to events"),
    ("events:negative_amounts:2025-03-01", "only to sources with an amount"),
    ("crm_customers:wrong_units:2025-03-01", "only to sources with an amount"),
    ("survey_responses:negative_amounts:2025-03-01", "only to sources with an amount"),
    ("order_items:future_timestamps:2025-03-01", "timestamp"),
])
def test_bad_fault_strings_raise(text, message):
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


@pytest.mark.parametrize("faults, message", [
    (["orders:null_ids:2024-01-01"], "outside the generated range"),
    ([f"orders:null_ids:{END + dt.timedelta(days=1)}"], "outside the generated range"),
    ([f"orders:null_ids:{END}", f"orders:null_ids:{END}"], "given twice"),
    ([f"orders:unknown_event_type:{END}"], "only to events"),
    (f"orders:null_ids:{END}", "list"),
])
def test_run_validates_faults_before_writing_anything(tmp_path, faults, message):
    paths = Paths(tmp_path / "data")
    with pytest.raises(ValueError, match=message):
        run(paths, **SMALL, faults=faults)
    assert not paths.incoming.exists() and not paths.truth.exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"customers": 0}, "customers"), ({"days": 0}, "days"), ({"seed": -1}, "seed"),
    ({"drift_from": START}, "drift_from"), ({"drift_from": END + dt.timedelta(days=1)}, "drift_from"),
    ({"end": "not a date"}, "end"),
])
def test_run_validates_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run(Paths(tmp_path / "data"), **{**SMALL, **kwargs})


# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def records(faulty):
    data = json.loads((faulty.paths.truth / "faults.json").read_text())
    return {r["fault"]: r for r in data["faults"]}


def _file(gen, fault: str):
    f = parse_fault(fault)
    return gen.paths.incoming / f.source / f.day.isoformat() / f"{f.source}_{f.day.isoformat()}.parquet"


def test_every_requested_fault_is_recorded_and_applied(faulty, records):
    assert list(records) == FAULTS
    assert all(r["applied"] for r in records.values())
    assert [f["fault"] for f in faulty.summary["faults"]] == FAULTS


def test_faults_change_only_their_own_files(small, faulty, records):
    clean, dirty = hashes(small.paths.incoming), hashes(faulty.paths.incoming)
    touched = {_file(faulty, f).relative_to(faulty.paths.incoming).as_posix() for f in FAULTS
               if parse_fault(f).kind != "duplicate_file"}  # the original of a duplicate stays as it is
    copies = {r["copy"] for r in records.values() if "copy" in r}
    assert set(dirty) == set(clean) | copies
    for name in clean:
        assert (clean[name] == dirty[name]) == (name not in touched), name
    # the truth does not depend on faults (it describes the behaviour before them)
    for name in ("personas.parquet", "identities.parquet", "triggers.parquet"):
        assert hashes(small.paths.truth)[name] == hashes(faulty.paths.truth)[name]


def test_duplicate_file(faulty, records):
    f = FAULTS[0]
    rec = records[f]
    original = _file(faulty, f)
    copy = faulty.paths.incoming / rec["copy"]
    assert copy.name == original.stem + "_copy.parquet" and copy.parent == original.parent
    assert copy.read_bytes() == original.read_bytes()


def test_truncated_file(small, faulty, records):
    f = FAULTS[1]
    rec = records[f]
    path = _file(faulty, f)
    clean = _file(small, f)
    assert rec["bytes_before"] == clean.stat().st_size
    assert path.stat().st_size == rec["bytes_after"] == clean.stat().st_size // 2
    with pytest.raises(Exception):  # noqa: B017 - any read error: the file is unreadable
        pq.read_table(path)


def test_missing_column(small, faulty, records):
    f = FAULTS[2]
    assert records[f]["column"] == "amount"
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    assert "amount" not in dirty.column_names
    assert dirty.column_names == [c for c in clean.column_names if c != "amount"]
    assert "amount" in load_contract().source("orders").required_columns


def _rows(rec):
    rows = np.array(rec["rows"], dtype=np.int64)
    assert len(rows) == rec["affected_rows"] > 0
    return rows


def _mask(n, rows):
    m = np.zeros(n, dtype=bool)
    m[rows] = True
    return m


def test_unknown_event_type(small, faulty, records):
    f = FAULTS[3]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    rows = _rows(rec)
    assert abs(len(rows) / clean.num_rows - 0.05) < 0.01
    types = np.array(dirty.column("event_type").to_pylist(), dtype=object)
    known = set(load_contract().event_types)
    hit = _mask(dirty.num_rows, rows)
    assert not any(t in known for t in types[hit])
    assert all(t in known for t in types[~hit])
    assert list(types[hit]) == rec["values"]
    assert rec["ids"] == [clean.column("event_id")[int(i)].as_py() for i in rows]
    assert dirty.drop_columns(["event_type"]).equals(clean.drop_columns(["event_type"]))


def test_null_ids(small, faulty, records):
    f = FAULTS[4]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    rows = _rows(rec)
    ids = dirty.column("event_id").to_pylist()
    nulls = [i for i, v in enumerate(ids) if v is None]
    assert nulls == list(rows)
    assert rec["ids"] == [clean.column("event_id")[int(i)].as_py() for i in rows]
    assert dirty.drop_columns(["event_id"]).equals(clean.drop_columns(["event_id"]))


def test_null_ids_on_crm(faulty, records):
    f = FAULTS[10]
    ids = pq.read_table(_file(faulty, f)).column("customer_id").to_pylist()
    assert [i for i, v in enumerate(ids) if v is None] == records[f]["rows"]


def test_negative_amounts(small, faulty, records):
    f = FAULTS[5]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    rows = _rows(rec)
    d = np.array(dirty.column("unit_price").to_pylist())
    c = np.array(clean.column("unit_price").to_pylist())
    assert list(np.flatnonzero(d < 0)) == list(rows)
    assert np.array_equal(-d[rows], c[rows])
    assert dirty.drop_columns(["unit_price"]).equals(clean.drop_columns(["unit_price"]))


def test_future_timestamps(small, faulty, records):
    f = FAULTS[6]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    rows = _rows(rec)
    d = dirty.column("visited_at").to_pylist()
    c = clean.column("visited_at").to_pylist()
    shifted = [i for i in range(len(d)) if d[i] != c[i]]
    assert shifted == list(rows)
    assert all(d[i] - c[i] == dt.timedelta(days=400) for i in rows)
    assert all(d[i] > dt.datetime.combine(END, dt.time()) + dt.timedelta(days=300) for i in rows)


@pytest.mark.parametrize("index, column", [(7, "amount"), (9, "purchase_amount")])
def test_wrong_units(small, faulty, records, index, column):
    f = FAULTS[index]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    assert rec["factor"] == 100 and rec["affected_rows"] == clean.num_rows
    d = np.array(dirty.column(column).to_pylist())
    c = np.array(clean.column(column).to_pylist())
    assert np.allclose(d, c * 100)
    assert dirty.drop_columns([column]).equals(clean.drop_columns([column]))


def test_volume_drop(small, faulty, records):
    f = FAULTS[8]
    rec = records[f]
    dirty, clean = pq.read_table(_file(faulty, f)), pq.read_table(_file(small, f))
    assert rec["rows_in_file_before"] == clean.num_rows
    assert dirty.num_rows == rec["rows_kept"] == round(0.1 * clean.num_rows)
    assert rec["rows_dropped"] == clean.num_rows - dirty.num_rows
    kept = dirty.column("event_id").to_pylist()
    assert kept == rec["kept_ids"]
    clean_ids = clean.column("event_id").to_pylist()
    positions = [clean_ids.index(k) for k in kept]
    assert positions == sorted(positions)  # order preserved
    assert dirty.equals(clean.take(positions))


def test_a_fault_on_a_day_without_rows_is_recorded_as_not_applied(tmp_path):
    # one customer, one day: nobody answers a survey on most single days
    faults = [f"survey_responses:duplicate_file:{END}", f"crm_customers:volume_drop:{END}"]
    summary = run(Paths(tmp_path / "d"), customers=1, days=1, end=END, seed=1, faults=faults)
    recs = {r["fault"]: r for r in json.loads((tmp_path / "d" / "truth" / "faults.json").read_text())["faults"]}
    assert set(recs) == set(faults)
    assert recs[faults[1]]["applied"] is True and recs[faults[1]]["rows_kept"] == 1
    survey = tmp_path / "d" / "incoming" / "survey_responses"
    assert recs[faults[0]]["applied"] is (survey.exists() and any(survey.rglob("*.parquet")))
    assert summary["rows"]["crm_customers"] == 1
