import datetime as dt
import json
import shutil

import duckdb
import pytest

from seg.lake import landing

DAY = "2026-01-05"


def write_orders(settings, name: str, rows: list[tuple], day: str = DAY, fmt: str = "parquet"):
    target = settings.paths.incoming / "orders" / day / f"{name}.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else repr(v) if not isinstance(v, str) else "'" + v + "'" for v in row) + ")"
        for row in rows
    )
    sql = f"select * from (values {values}) t(order_id, customer_id, email, ordered_at, channel, status, amount, currency)"
    options = "(format parquet)" if fmt == "parquet" else "(format csv, header true)"
    duckdb.sql(f"copy ({sql}) to '{target}' {options}")
    return target


GOOD = ("O0000000001", "C00000001", None, "2026-01-05 10:00:00", "web", "completed", 12.5, "EUR")
NO_OWNER = ("O0000000002", None, None, "2026-01-05 11:00:00", "web", None, 3.0, "EUR")
BAD_FORMAT_FUTURE = ("X1", None, "a@b.c", "2027-01-05 11:00:00", "fax", None, 3.0, None)
NEGATIVE = ("O0000000004", "C00000002", None, "2026-01-05 12:00:00", "app", "completed", -4.0, "EUR")


def read(path_glob):
    return duckdb.sql(f"select * from read_parquet('{path_glob}', hive_partitioning = true) order by _row_number").fetchall()


def test_rows_in_equal_landed_plus_quarantined_with_reasons(generator_settings):
    settings = generator_settings
    write_orders(settings, "orders_a", [GOOD, NO_OWNER, BAD_FORMAT_FUTURE, NEGATIVE])
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert summary["rows_in"] == 4
    assert summary["rows_landed"] + summary["rows_quarantined"] == summary["rows_in"]
    landed = read(settings.paths.raw / "orders" / "*" / "*.parquet")
    assert [r[0] for r in landed] == ["O0000000001"]
    quarantined = duckdb.sql(
        f"select order_id, _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet') order by _row_number"
    ).fetchall()
    reasons = dict(quarantined)
    assert "rule customer_id_or_email" in reasons["O0000000002"]
    assert {"order_id: bad format", "ordered_at: in the future", "channel: value not allowed"} <= set(reasons["X1"].split("; "))
    assert reasons["O0000000004"] == "amount: below minimum"
    manifest = json.loads(landing.manifest_path(settings.paths, landing.discover(settings.paths, dt.date(2026, 1, 5))[0]).read_text())
    assert manifest["rows_quarantined"] == 3 and manifest["reasons"]["amount: below minimum"] == 1


def test_defaults_fill_missing_status_and_currency(generator_settings):
    settings = generator_settings  # reporting currency EUR
    write_orders(settings, "orders_a", [("O0000000009", "C00000001", None, "2026-01-05 10:00:00", "web", None, 1.0, None)])
    landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    row = duckdb.sql(f"select status, currency from read_parquet('{settings.paths.raw}/orders/*/*.parquet')").fetchall()[0]
    assert row == ("completed", "EUR")


def test_relanding_is_a_noop_and_a_changed_file_replaces_its_partition(settings):
    write_orders(settings, "orders_a", [GOOD])
    first = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    again = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert first["files_landed"] == 1 and again["files_skipped"] == 1 and again["rows_in"] == 0
    changed = ("O0000000003",) + GOOD[1:]
    write_orders(settings, "orders_a", [GOOD, changed])
    third = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert third["files_landed"] == 1
    assert sorted(r[0] for r in read(settings.paths.raw / "orders" / "*" / "*.parquet")) == ["O0000000001", "O0000000003"]


def test_duplicate_file_is_quarantined_whole_and_lands_nothing(settings):
    original = write_orders(settings, "orders_a", [GOOD, NEGATIVE])
    shutil.copy(original, original.with_name("orders_a_copy.parquet"))
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert summary["files_duplicate"] == 1
    assert summary["rows_in"] == summary["rows_landed"] + summary["rows_quarantined"] == 4
    assert len(read(settings.paths.raw / "orders" / "*" / "*.parquet")) == 1
    assert (settings.paths.quarantine_partition("orders", DAY) / "_rejected" / "orders_a_copy.parquet").exists()


def test_unreadable_file_is_rejected_kept_and_others_still_land(settings):
    good = write_orders(settings, "orders_a", [GOOD])
    broken = good.with_name("orders_b.parquet")
    broken.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert summary["files_rejected"] == 1 and summary["files_landed"] == 1
    entry = [e for e in summary["entries"] if e["status"] == "rejected"][0]
    assert entry["message"].startswith("cannot read parquet file")
    assert (settings.paths.quarantine_partition("orders", DAY) / "_rejected" / "orders_b.parquet").read_bytes() == broken.read_bytes()


def test_missing_required_column_quarantines_every_row(settings):
    target = settings.paths.incoming / "orders" / DAY / "orders_a.parquet"
    target.parent.mkdir(parents=True)
    duckdb.sql(f"copy (select 'O0000000001' order_id, 'C00000001' customer_id, timestamp '2026-01-05 10:00' ordered_at) to '{target}'")
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert summary["rows_landed"] == 0 and summary["rows_quarantined"] == 1
    entry = json.loads(landing.manifest_path(settings.paths, landing.discover(settings.paths, dt.date(2026, 1, 5))[0]).read_text())
    assert entry["reasons"] == {"amount: missing column": 1}
    assert "amount" in entry["missing_columns"]


def test_csv_values_that_do_not_cast_are_quarantined_not_nulled(settings):
    good_as_text = GOOD[:6] + ("12.5", "EUR")
    write_orders(settings, "orders_a", [good_as_text, ("O0000000002", "C00000001", None, "yesterday", "web", None, "12,5", "EUR")], fmt="csv")
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert (summary["rows_landed"], summary["rows_quarantined"]) == (1, 1)
    reason = duckdb.sql(f"select _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet')").fetchall()[0][0]
    assert "ordered_at: not a timestamp" in reason and "amount: not a double" in reason
    # quarantine keeps the values as they arrived, lineage included
    kept = duckdb.sql(f"select order_id, ordered_at, amount, _source_file, _row_number "
                      f"from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet')").fetchall()
    assert kept == [("O0000000002", "yesterday", "12,5", "orders/2026-01-05/orders_a.csv", 2)]


def test_files_dated_after_the_run_date_wait(settings):
    write_orders(settings, "orders_a", [GOOD])
    write_orders(settings, "orders_b", [NEGATIVE], day="2026-01-06")
    assert landing.land_source(settings, "orders", dt.date(2026, 1, 5))["files_seen"] == 1
    assert landing.land_source(settings, "orders", dt.date(2026, 1, 6))["files_landed"] == 1  # the late day lands now


@pytest.mark.parametrize("source", ["nope"])
def test_unknown_source_is_a_clear_error(settings, source):
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        landing.land_source(settings, source, dt.date(2026, 1, 5))


# --- data shaped like users' exports: the shared contract alone ------------------------------------------------------

def test_real_identifiers_land_as_they_are_trimmed(settings):
    # invoice numbers, numeric customer ids, ids with spaces around: none of them the generator's shapes
    rows = [("536365", "17850", None, "2010-12-01 08:26:00", None, None, 15.3, "GBP"),
            ("  #1001 ", " 00001 ", None, "2010-12-01 09:00:00", None, None, 8.0, "GBP"),
            ("   ", "17850", None, "2010-12-01 10:00:00", None, None, 1.0, "GBP"),
            ("A\x01B", "17850", None, "2010-12-01 10:00:00", None, None, 1.0, "GBP"),
            ("x" * 300, "17850", None, "2010-12-01 10:00:00", None, None, 1.0, "GBP"),
            ("536366", "17850", None, "2010-12-01 11:00:00", None, None, 120000.0, "GBP")]
    write_orders(settings, "retail", rows, day="2010-12-01")
    summary = landing.land_source(settings, "orders", dt.date(2010, 12, 1))
    assert (summary["rows_in"], summary["rows_landed"], summary["rows_quarantined"]) == (6, 3, 3)
    landed = duckdb.sql(f"select order_id, customer_id, amount, currency from read_parquet('{settings.paths.raw}/orders/*/*.parquet') order by _row_number").fetchall()
    # a genuinely large invoice is not "above maximum": that is a deployment's overlay or the gate's warning
    assert landed == [("536365", "17850", 15.3, "GBP"), ("#1001", "00001", 8.0, "GBP"), ("536366", "17850", 120000.0, "GBP")]
    reasons = [r[0] for r in duckdb.sql(f"select _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet') order by _row_number").fetchall()]
    assert reasons == ["order_id: blank", "order_id: control characters", "order_id: longer than 256 characters"]


def test_the_generator_overlay_still_holds_generated_data_to_its_formats(generator_settings):
    write_orders(generator_settings, "o", [GOOD, ("536365",) + GOOD[1:]])
    summary = landing.land_source(generator_settings, "orders", dt.date.fromisoformat(DAY))
    assert (summary["rows_landed"], summary["rows_quarantined"]) == (1, 1)
    assert summary["entries"][0]["status"] == "landed"


def test_a_single_currency_shop_needs_no_rates_and_other_currencies_are_quarantined(settings):
    # no reporting_currency configured: the deployment's currency is the one its orders carry (CDNOW: USD)
    write_orders(settings, "a", [GOOD[:7] + ("USD",), ("O2",) + GOOD[1:7] + (None,)])
    first = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert (first["rows_landed"], first["rows_quarantined"]) == (2, 0)
    got = duckdb.sql(f"select currency from read_parquet('{settings.paths.raw}/orders/*/*.parquet') order by _row_number").fetchall()
    assert got == [("USD",), ("USD",)]  # an empty currency is the deployment's
    write_orders(settings, "b", [("O3",) + GOOD[1:7] + ("JPY",)])
    second = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert second["rows_quarantined"] == 1
    entry = json.loads(landing.manifest_path(settings.paths, landing.discover(settings.paths, dt.date(2026, 1, 5))[1]).read_text())
    assert list(entry["reasons"]) == ["currency: not this deployment's currency USD (set deployment.reporting_currency "
                                      "and deliver fx_rates to accept several currencies)"]


def write_rates(settings, day, rows):
    target = settings.paths.incoming / "fx_rates" / day / "rates.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("rate_date,from_currency,to_currency,rate\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


def test_orders_in_other_currencies_need_a_dated_rate(settings):
    from seg.core import config

    config.write_deployment(settings.paths.root, {"reporting_currency": "EUR"}, "")
    settings = config.load(settings.paths.root)
    write_rates(settings, "2026-01-01", [("2026-01-01", "USD", "EUR", 0.9), ("2025-12-01", "CAD", "EUR", 0.7),
                                          ("2026-01-01", "JPY", "EUR", -1)])
    rates = landing.land_source(settings, "fx_rates", dt.date.fromisoformat(DAY))
    assert (rates["rows_landed"], rates["rows_quarantined"]) == (2, 1)  # a negative rate is no rate
    rows = [GOOD, GOOD[:7] + ("USD",), ("O2",) + GOOD[1:7] + ("CAD",), ("O3",) + GOOD[1:7] + ("JPY",),
            ("O4", "C1", None, "2025-12-31 10:00:00", "web", None, 1.0, "USD"), ("O5",) + GOOD[1:7] + ("usd",)]
    write_orders(settings, "o", rows)
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    quarantined = dict(duckdb.sql(f"select order_id, _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet')").fetchall())
    no_rate = "currency: no rate to EUR on or before the order date (fx_rates)"
    # CAD: the only rate is 35 days old (fx.max_rate_age_days 7); JPY: none; O4: ordered before the first USD rate
    assert quarantined == {"O2": no_rate, "O3": no_rate, "O4": no_rate, "O5": f"currency: bad format; {no_rate}"}
    assert summary["rows_landed"] == 2


def test_text_timestamps_with_utc_offsets_land_as_utc(settings):
    # exports write offsets as +01:00, +0100 or Z; a plain TIMESTAMP cast would drop them (14:22+01:00 -> 14:22)
    rows = [("A1", "17850", None, "2024-03-05T14:22:10+01:00", None, None, 1.0, "GBP"),
            ("A2", "17850", None, "2024-03-05 14:22:10 +0100", None, None, 1.0, "GBP"),
            ("A3", "17850", None, "2024-03-05 14:22:10 -05:30", None, None, 1.0, "GBP"),
            ("A4", "17850", None, "2024-03-05T14:22:10Z", None, None, 1.0, "GBP"),
            ("A5", "17850", None, "2024-03-05 14:22:10", None, None, 1.0, "GBP")]
    write_orders(settings, "offsets", rows, day="2024-03-05", fmt="csv")
    summary = landing.land_source(settings, "orders", dt.date(2024, 3, 5))
    assert summary["rows_landed"] == 5
    got = dict(duckdb.sql(f"select order_id, ordered_at from read_parquet('{settings.paths.raw}/orders/*/*.parquet')").fetchall())
    assert got == {"A1": dt.datetime(2024, 3, 5, 13, 22, 10), "A2": dt.datetime(2024, 3, 5, 13, 22, 10),
                   "A3": dt.datetime(2024, 3, 5, 19, 52, 10), "A4": dt.datetime(2024, 3, 5, 14, 22, 10),
                   "A5": dt.datetime(2024, 3, 5, 14, 22, 10)}


def test_within_one_landing_the_first_file_fixes_the_deployments_currency(settings):
    # both files land in one call: the second must be held to the first one's currency, not infer its own
    write_orders(settings, "a", [GOOD[:7] + ("USD",)])
    write_orders(settings, "b", [("O3",) + GOOD[1:7] + ("JPY",), ("O4",) + GOOD[1:7] + ("JPY",)])
    summary = landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))
    assert (summary["rows_landed"], summary["rows_quarantined"]) == (1, 2)
