"""raw__ingest: the day as a delivery (volume, amounts, quarantine, rejected/duplicate files, reconciliation)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from expectations import GateFailed, run_gate
from expectations.suites._base import Policy

from ._lakes import DAY, at, good_rows, write_lake, write_partition

HISTORY = [DAY - dt.timedelta(days=d) for d in range(6, 0, -1)]


def policy() -> Policy:
    """gates.yml with the volume/amount floors lowered to this lake's size (10 orders a day)."""
    raw = Policy.load().raw
    thresholds = raw["suites"]["raw__ingest"]["thresholds"]
    raw["suites"]["raw__ingest"]["thresholds"] = {**thresholds, "volume_min_rows": 5, "amount_min_rows": 1}
    return Policy(raw)


def orders(day: dt.date, n: int, amount: float = 50.0) -> list[dict]:
    return [{"order_id": f"O{day.toordinal() % 10_000:04d}{i:06d}", "customer_id": "C00000001",
             "ordered_at": at(9, day), "amount": amount + i, "currency": "EUR", "status": "completed"}
            for i in range(n)]


def manifest(settings, day: dt.date, name: str, status: str = "landed", quarantined: int = 0,
             landed: int | None = None) -> None:
    if landed is None:  # what the lake holds for the day
        glob = settings.paths.raw_partition("orders", day.isoformat()) / "*.parquet"
        landed = duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall()[0][0]
    entry = {"source": "orders", "ingest_date": day.isoformat(), "file": name, "status": status,
             "rows_in": None if status == "rejected" else landed + quarantined,
             "rows_landed": landed if status == "landed" else 0,
             "rows_quarantined": quarantined if status == "landed" else landed + quarantined}
    path = settings.paths.manifests / "orders" / f"ingest_date={day.isoformat()}" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))


def history(settings) -> None:
    write_lake(settings, rows={"orders": []})
    for day in HISTORY:
        write_partition(settings, "orders", day, orders(day, 10), name="hist")
        manifest(settings, day, f"orders_{day}.parquet")


def ingest_failures(result) -> dict[str, tuple[str, list]]:
    return {r.key: (r.severity, r.sample_values) for r in result.expectations
            if r.suite == "raw__ingest" and not r.success}


def test_a_day_like_the_previous_ones_passes_every_ingest_check(settings):
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 9), name="today")
    manifest(settings, DAY, "orders_today.parquet")

    result = run_gate(settings, "raw", DAY, policy=policy())

    assert result.success and ingest_failures(result) == {}
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:
        days = con.execute("select count(*) from monitoring.ingest_profile where as_of_date = ? and source = 'orders'",
                           [DAY]).fetchone()[0]
    assert days == 8  # the as-of date and history_days (7) before it


def test_a_genuinely_large_order_is_a_warning_not_a_stop(settings):
    # the shared contract has no "typical" maximum: a 120 000 invoice lands, and the gate points at it
    history(settings)
    today = orders(DAY, 9) + [{**orders(DAY, 10)[-1], "amount": 120_000.0}]
    write_partition(settings, "orders", DAY, today, name="today")
    manifest(settings, DAY, "orders_today.parquet")

    result = run_gate(settings, "raw", DAY, policy=policy())

    assert result.success
    failures = ingest_failures(result)
    assert set(failures) == {"amount_outliers"}
    severity, samples = failures["amount_outliers"]
    assert severity == "warning" and samples[0]["source"] == "orders" and samples[0]["amount_outliers"] == 1


def test_a_short_day_in_cents_with_bad_files_fails_with_each_severity(settings):
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 3, amount=5000.0), name="today")  # 3 rows, x100
    manifest(settings, DAY, "orders_today.parquet", quarantined=2)           # 2 of 5 rows quarantined: 40 %
    manifest(settings, DAY, "orders_cut.parquet", status="rejected", landed=0)
    manifest(settings, DAY, "orders_copy.parquet", status="duplicate", landed=3)

    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "raw", DAY, policy=policy())

    failures = ingest_failures(raised.value.result)
    assert {key: severity for key, (severity, _) in failures.items()} == {
        "volume": "warning",
        "amount_distribution": "critical",
        "quarantine_share": "warning",
        "quarantine_share_max": "critical",
        "rejected_files": "critical",
        "duplicate_files": "warning",
        "amount_outliers": "warning",  # x100 amounts are also far above the source's own median
    }
    (volume,) = failures["volume"][1]
    assert volume["source"] == "orders" and volume["rows_landed"] == 3 and volume["median_rows"] == 10
    (amounts,) = failures["amount_distribution"][1]
    assert amounts["amount_ratio"] == pytest.approx(5001.0 / 54.5, rel=1e-3)
    message = str(raised.value)
    assert "raw__ingest / expect_median_amount_to_be_within_trailing_band" in message and '"source": "orders"' in message


def test_the_lake_holding_other_rows_than_the_manifests_is_critical(settings):
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 9), name="today")
    manifest(settings, DAY, "orders_today.parquet", landed=8)  # landing says 8 landed; the lake holds 9

    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "raw", DAY, policy=policy())

    failures = ingest_failures(raised.value.result)
    assert failures["rows_reconcile"][0] == "critical"
    assert failures["rows_reconcile"][1][0]["lake_rows"] == 9


def test_a_source_that_stopped_delivering_is_stale(settings):
    rows = good_rows()
    write_lake(settings, rows={**rows, "store_visits": []})
    stopped = DAY - dt.timedelta(days=5)  # store_visits may be 96 h old at the end of DAY (gates.yml)
    write_partition(settings, "store_visits", stopped, good_rows(stopped)["store_visits"])

    result = run_gate(settings, "raw", DAY, policy=policy())  # warnings only: the run goes on

    severity, samples = ingest_failures(result)["freshness"]
    assert severity == "warning"
    assert [s["source"] for s in samples] == ["store_visits"] and samples[0]["max_age_hours"] == 96


# --- files delivered late into an older date folder: audited by the run that landed them -------------------------

LATE_DAY = DAY - dt.timedelta(days=2)


def late_manifest(settings, day: dt.date, name: str, status: str = "landed", landed: int = 1, quarantined: int = 0,
                  landed_on: dt.date = DAY) -> None:
    """A manifest entry as landing writes it for a file of folder `day` landed by the run of `landed_on`."""
    entry = {"source": "orders", "ingest_date": day.isoformat(), "file": f"orders/{day}/{name}", "status": status,
             "rows_in": None if status == "rejected" else landed + quarantined,
             "rows_landed": landed if status == "landed" else 0,
             "rows_quarantined": quarantined if status == "landed" else landed + quarantined,
             "landed_on": landed_on.isoformat()}
    path = settings.paths.manifests / "orders" / f"ingest_date={day.isoformat()}" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))


def test_rows_landed_late_into_an_older_day_are_audited_by_the_run_that_landed_them(settings):
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 9), name="today")
    manifest(settings, DAY, "orders_today.parquet")
    # a file delivered today into the folder of two days ago; its second row breaks the contract (a landing bug)
    late = orders(LATE_DAY, 2)
    late[1]["amount"] = -5.0
    write_partition(settings, "orders", LATE_DAY, late, name="late")
    late_manifest(settings, LATE_DAY, "late.parquet", landed=2)

    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "raw", DAY, policy=policy())

    result = raised.value.result
    bounds = [r for r in result.expectations if r.suite == "raw__orders" and r.key == "amount.bounds"][0]
    assert not bounds.success and bounds.sample_values == [
        {"_source_file": f"orders/{LATE_DAY}/late.parquet", "_row_number": 2, "amount": -5.0}]
    (row_count,) = [r for r in result.expectations if r.suite == "raw__orders" and r.key == "row_count"]
    assert row_count.success and row_count.observed_value == "9"  # "rows landed for the day" stays the day's
    assert "rows_reconcile" not in ingest_failures(result)  # the late file's rows are where its manifest says


def test_a_late_file_that_cannot_be_read_fails_the_run_that_found_it(settings):
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 9), name="today")
    manifest(settings, DAY, "orders_today.parquet")
    late_manifest(settings, LATE_DAY, "late.parquet", status="rejected", landed=0)

    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "raw", DAY, policy=policy())

    failures = ingest_failures(raised.value.result)
    assert set(failures) == {"rejected_files"}
    severity, (sample,) = failures["rejected_files"]
    assert severity == "critical" and sample["source"] == "orders" and sample["late_files_rejected"] == 1


def test_landing_records_its_run_date_and_the_gate_of_that_run_sees_the_late_rows(settings):
    from seg.lake import landing

    def deliver(day: dt.date, name: str, order_ids: list[str]) -> None:
        folder = settings.paths.incoming / "orders" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(f"{o},C00000001,{day} 09:00:00,12.5,EUR\n" for o in order_ids)
        (folder / name).write_text("order_id,customer_id,ordered_at,amount,currency\n" + lines)

    deliver(LATE_DAY, "first.csv", ["O1", "O2"])
    landing.land_source(settings, "orders", LATE_DAY)
    deliver(DAY, "today.csv", ["O7"])
    deliver(LATE_DAY, "resent.csv", ["O2"])  # late, and O2 again within its day: the raw gate warns about it
    landing.land_source(settings, "orders", DAY)

    recorded = {m["file"]: m["landed_on"] for m in landing.read_manifests(settings.paths, "orders")}
    assert recorded == {f"orders/{LATE_DAY}/first.csv": LATE_DAY.isoformat(),
                        f"orders/{LATE_DAY}/resent.csv": DAY.isoformat(), f"orders/{DAY}/today.csv": DAY.isoformat()}

    result = run_gate(settings, "raw", DAY, policy=policy())

    duplicates = [r for r in result.expectations if r.suite == "raw__orders" and r.key == "order_id.duplicate_key"][0]
    assert not duplicates.success and duplicates.severity == "warning"
    assert {(s["_source_file"], s["order_id"]) for s in duplicates.sample_values} == {
        (f"orders/{LATE_DAY}/first.csv", "O2"), (f"orders/{LATE_DAY}/resent.csv", "O2")}
