"""An incoming folder whose name is not a date is reported and recorded, and blocks no other file or day."""

import datetime as dt
import json
import logging

from seg.lake import landing

from .test_landing import GOOD, NEGATIVE, write_orders

DAY = "2026-03-02"  # after 2026-02-30 would be, so the run reaches that folder


def test_an_incoming_folder_that_is_not_a_date_is_reported_and_blocks_no_other_file(settings, caplog):
    write_orders(settings, "orders_a", [GOOD], day=DAY)
    write_orders(settings, "impossible", [NEGATIVE], day="2026-02-30")  # matches YYYY-MM-DD, is no date
    write_orders(settings, "undated", [NEGATIVE], day="latest")

    with caplog.at_level(logging.WARNING, logger="seg.lake.landing"):
        summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))

    assert (summary["files_landed"], summary["files_rejected"], summary["rows_landed"]) == (1, 2, 1)
    rejected = {e["file"]: e["message"] for e in summary["entries"] if e["status"] == "rejected"}
    assert set(rejected) == {"orders/2026-02-30/impossible.parquet", "orders/latest/undated.parquet"}
    assert all("is not a date (YYYY-MM-DD)" in m and "move the file into a dated folder" in m for m in rejected.values())
    assert "2026-02-30" in caplog.text and "latest" in caplog.text
    # recorded outside the ingest_date= partitions (a partition named ingest_date=2026-02-30 breaks every reader)
    record = settings.paths.manifests / "orders" / "_undated" / "2026-02-30" / "impossible.parquet.json"
    assert json.loads(record.read_text())["status"] == "rejected"
    for base in (settings.paths.raw, settings.paths.quarantine, settings.paths.manifests):
        assert {p.name for p in (base / "orders").glob("ingest_date=*")} <= {f"ingest_date={DAY}"}
    assert [m["file"] for m in landing.read_manifests(settings.paths, "orders")] == [f"orders/{DAY}/orders_a.parquet"]

    # later runs go on: the next day lands, the undated files stay recorded (not counted again) and reported
    write_orders(settings, "orders_b", [("O0000000005",) + GOOD[1:]], day="2026-03-03")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seg.lake.landing"):
        later = landing.land_source(settings, "orders", dt.date(2026, 3, 3))
    assert (later["files_landed"], later["files_rejected"], later["files_skipped"]) == (1, 0, 3)
    assert "2026-02-30" in caplog.text
    assert all(s["files_seen"] >= 0 for s in landing.land_all(settings, dt.date(2026, 3, 3)))
