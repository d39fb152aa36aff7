"""marts.customer_behaviour_features (the behaviour lens's trailing windows) built for real by dbt, on a small
hand-made lake whose answers are computed by hand below, and on a generator lake whose answers are recomputed in
Python from the marts the model reads.

The claims: the windows end on the as-of date and are inclusive ("30d" = as_of - 29 .. as_of), NULL rules as in
customer_features; no look-ahead (a build as of D on a lake that also holds later data equals a build on the lake
as it was on D); daily incremental history rows equal a full refresh per date; and a person whose orders stop
falls to orders_30d = 0 within 30 days while customer_features' lifetime totals stay.

Each lake is built once per module (fixtures `hand` and `generated`), recording what it saw; the tests assert.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from expectations import GateFailed, run_gate
from seg import generate
from seg.core import config, warehouse
from seg.lake import landing
from seg.transform import dbt as seg_dbt
from tests.dbt import fixture_lake as lake

MART = "marts.customer_behaviour_features"
HISTORY = "marts.customer_behaviour_features_history"
FEATURES = "marts.customer_features"
# the lake columns that date a row (what staging's as-of filter reads besides the ingest date)
STAMPED = {"crm_customers": "updated_at", "orders": "ordered_at", "events": "occurred_at",
           "store_visits": "visited_at", "survey_responses": "answered_at"}


# --- building ------------------------------------------------------------------------------------------------


def _build(settings, as_of: dt.date | str) -> dict[str, Any]:
    """The DAG's two dbt steps (models + unit and data tests); returns the features step's summary."""
    seg_dbt.build(settings, as_of, exclude="tag:features")
    return seg_dbt.build(settings, as_of, select="tag:features")


def _run(settings, as_of: dt.date | str, full_refresh: bool = False) -> None:
    """Seeds and every model without tests (cheaper for the other dates)."""
    command = ["build", "--resource-type", "seed", "--resource-type", "model"]
    seg_dbt.invoke(settings, command + (["--full-refresh"] if full_refresh else []), as_of)


def _rows(settings, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def _mart(settings) -> list[tuple]:
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        return con.execute(f"select * from {MART} order by all").fetchall()
    finally:
        con.close()


def _history(settings) -> dict[dt.date, list[tuple]]:
    """History rows by as-of date, each without its as_of_date (the history's first column)."""
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        rows = con.execute(f"select * from {HISTORY} order by all").fetchall()
    finally:
        con.close()
    by_date: dict[dt.date, list[tuple]] = defaultdict(list)
    for row in rows:
        by_date[row[0]].append(row[1:])
    return dict(by_date)


def _without_as_of(rows: list[tuple]) -> list[tuple]:
    """Mart rows (person_id, customer_id, as_of_date, ...) in the history's column order, without the date."""
    return sorted(row[:2] + row[3:] for row in rows)


def _by_person(settings, relation: str) -> dict[str, dict[str, Any]]:
    return {row["person_id"]: row for row in _rows(settings, f"select * from {relation}")}


def _model_seconds(settings, model: str) -> float:
    results = json.loads((seg_dbt.dbt_paths(settings)["target"] / "run_results.json").read_text())
    return next(r["execution_time"] for r in results["results"] if r["unique_id"] == f"model.seg.{model}")


def _clone(source: Path, target: Path, cut: dt.date | None = None) -> config.Settings:
    """Another data directory over the same lake (same deployment and PII key, so the same person ids). With
    `cut`: the lake as it was on that date, i.e. only what had landed by then and nothing stamped after it."""
    config.pii_key(source)  # make sure the key exists before it is copied
    target.mkdir(parents=True)
    for name in ("deployment.yml", "secrets"):
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name)
        elif (source / name).exists():
            shutil.copy2(source / name, target / name)
    raw = source / "lake" / "raw"
    con = duckdb.connect()
    try:
        for file in sorted(raw.glob("*/ingest_date=*/*.parquet")):
            day = dt.date.fromisoformat(file.parent.name.removeprefix("ingest_date="))
            if cut is not None and day > cut:
                continue
            out = target / file.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            stamped = STAMPED.get(file.parent.parent.name)
            if cut is None or stamped is None:
                shutil.copy2(file, out)
            else:
                end = (cut + dt.timedelta(days=1)).isoformat()
                con.execute(f"copy (select * from read_parquet('{file}') where cast({stamped} as timestamp) "
                            f"< timestamp '{end}') to '{out}' (format parquet)")
    finally:
        con.close()
    return config.load(target)


# --- the hand-made lake --------------------------------------------------------------------------------------

AS_OF = dt.date(2025, 6, 30)
ALICE, BOB, CARL = "C10000001", "C10000002", "C10000003"
ALICE_PHONE = "aaaaaaaaaaaaaab1"


def day(offset: int, time: str = "10:00:00") -> str:
    """The as-of date + offset days, at `time`."""
    return f"{(AS_OF + dt.timedelta(days=offset)).isoformat()} {time}"


def _line(order_id: str, quantity: int, price: float, discount: float, at: str) -> dict:
    return {"order_id": order_id, "line_no": 1, "sku": "SKU-00001", "category": "shoes", "quantity": quantity,
            "unit_price": price, "discount": discount, "_day": at[:10]}


CRM = [
    lake._crm(ALICE, "alice@example.com", "2025-01-15", "2025-01-15 08:00:00", loyalty="L100000001"),
    lake._crm(BOB, "bob@example.com", "2025-01-15", "2025-01-15 08:00:00"),
    lake._crm(CARL, "carl@example.com", "2025-01-15", "2025-01-15 08:00:00"),
]

ORDERS = [
    # Alice: the window edges. The last second of the as-of day counts; 29 days back is in the 30-day window,
    # 30 days back is not; 89 days back is in the 90-day window, 90 days back is not.
    lake._order("O1000000001", ALICE, None, day(0, "23:59:59"), "web", 10.0),
    lake._order("O1000000002", ALICE, None, day(-29), "app", 20.0),
    lake._order("O1000000003", ALICE, None, day(-30), "store", 40.0),
    lake._order("O1000000004", ALICE, None, day(-89), "web", 30.0),
    lake._order("O1000000005", ALICE, None, day(-90), "web", 1000.0),
    lake._order("O1000000006", ALICE, None, day(-10), "web", 15.0, status="returned"),
    lake._order("O1000000007", ALICE, None, day(-5), "app", 5.0, status="cancelled"),
    # never counted as of AS_OF: landed on the as-of day but stamped after it; placed after it; placed three days
    # before but landed two days after it
    lake._order("O1000000008", ALICE, None, day(1, "00:00:00"), "web", 999.0, day=day(0)[:10]),
    lake._order("O1000000009", ALICE, None, day(3), "web", 999.0),
    lake._order("O1000000010", ALICE, None, day(-3), "web", 999.0, day=day(2)[:10]),
    # Carl: a web order every 5 days from 40 to 5 days before the as-of date, then none
    *(lake._order(f"O20000000{n:02d}", CARL, None, day(-5 * n), "web", 10.0) for n in range(8, 0, -1)),
]

ORDER_ITEMS = [
    _line("O1000000001", 1, 20.0, 0.5, day(0)),  # 10 of 20 discounted
    _line("O1000000002", 1, 20.0, 0.0, day(-29)),
    _line("O1000000003", 1, 40.0, 0.0, day(-30)),
    _line("O1000000004", 1, 40.0, 0.25, day(-89)),  # 10 of 40 discounted
    _line("O1000000005", 1, 1000.0, 0.9, day(-90)),  # outside the window: would move the share a lot
    _line("O1000000006", 1, 15.0, 0.0, day(-10)),
    _line("O1000000007", 1, 5.0, 0.0, day(-5)),
]

EVENTS = [
    # S1, 2 days back: logs in, views, adds to the cart, does not buy (abandoned)
    lake._event(ALICE_PHONE, day(-2, "10:00:00"), "login", ALICE, {"method": "password"}),
    lake._event(ALICE_PHONE, day(-2, "10:05:00"), "product_view", ALICE, {"price": 20.0}),
    lake._event(ALICE_PHONE, day(-2, "10:10:00"), "add_to_cart", ALICE, {"quantity": 1, "price": 20.0}),
    # S2, 29 days back: views, adds, buys
    lake._event(ALICE_PHONE, day(-29, "10:00:00"), "product_view", properties={"price": 20.0}),
    lake._event(ALICE_PHONE, day(-29, "10:05:00"), "add_to_cart", properties={"quantity": 1, "price": 20.0}),
    lake._event(ALICE_PHONE, day(-29, "10:10:00"), "purchase", properties={"order_id": "O1000000002", "revenue": 20.0}),
    # S3, 30 days back: views and adds, abandoned (in the 90-day window only)
    lake._event(ALICE_PHONE, day(-30, "10:00:00"), "product_view", properties={"price": 40.0}),
    lake._event(ALICE_PHONE, day(-30, "10:05:00"), "add_to_cart", properties={"quantity": 1, "price": 40.0}),
    # S5 starts 30 days back at 23:50 and views a product 29 days back at 00:05: the session is outside the
    # 30-day window, the view (dated by its own date) inside it
    lake._event(ALICE_PHONE, day(-30, "23:50:00"), "page_view"),
    lake._event(ALICE_PHONE, day(-29, "00:05:00"), "product_view", properties={"price": 20.0}),
    # S4, 95 days back: outside every window (an abandoned cart that would move the 90-day share)
    lake._event(ALICE_PHONE, day(-95, "10:00:00"), "product_view", properties={"price": 20.0}),
    lake._event(ALICE_PHONE, day(-95, "10:05:00"), "add_to_cart", properties={"quantity": 1, "price": 20.0}),
    # never counted as of AS_OF: the day after; the day before but landed two days after
    lake._event(ALICE_PHONE, day(1, "09:00:00"), "product_view", properties={"price": 20.0}),
    lake._event(ALICE_PHONE, day(1, "09:05:00"), "add_to_cart", properties={"quantity": 1, "price": 20.0}),
    lake._event(ALICE_PHONE, day(-1, "12:00:00"), "product_view", properties={"price": 20.0}, day=day(2)[:10]),
]


def _visit(number: int, at: str) -> dict:
    return {"visit_id": f"V10000000{number:02d}", "loyalty_id": "L100000001", "store_id": "S001", "visited_at": at,
            "dwell_minutes": 10.0, "purchase_amount": 0.0, "_day": at[:10]}


STORE_VISITS = [_visit(1, day(0, "12:00:00")), _visit(2, day(-89)), _visit(3, day(-90)), _visit(4, day(1))]

HAND_LAKE = {"crm_customers": CRM, "orders": ORDERS, "order_items": ORDER_ITEMS, "events": EVENTS,
             "store_visits": STORE_VISITS}

# by hand, as of AS_OF (see the rows above)
EXPECTED = {
    ALICE: {
        "days_since_last_order": 0,
        "orders_30d": 2,  # O1, O2
        "orders_90d": 4,  # O1..O4
        "spend_30d": Decimal("30.00"),
        "spend_90d": Decimal("100.00"),
        "avg_order_value_90d": 25.0,
        "discount_share_90d": round(20 / 120, 6),  # (10 + 10) of (20 + 20 + 40 + 40)
        "return_share_90d": 0.2,  # O6 of O1..O4 + O6; the cancelled O7 is neither
        "web_share_90d": 0.5,
        "app_share_90d": 0.25,
        "store_share_90d": 0.25,
        "sessions_30d": 2,  # S1, S2
        "sessions_90d": 4,  # S1, S2, S3, S5
        "product_views_30d": 3,  # S1, S2 and S5's view after midnight
        "cart_adds_30d": 2,  # S1, S2
        "cart_abandonment_share_90d": round(2 / 3, 6),  # S1 and S3 of the cart sessions S1, S2, S3
        "store_visits_90d": 2,
    },
    # no activity at all: counts 0, money 0, every ratio and the recency NULL
    BOB: {
        "days_since_last_order": None,
        "orders_30d": 0,
        "orders_90d": 0,
        "spend_30d": Decimal("0.00"),
        "spend_90d": Decimal("0.00"),
        "avg_order_value_90d": None,
        "discount_share_90d": None,
        "return_share_90d": None,
        "web_share_90d": None,
        "app_share_90d": None,
        "store_share_90d": None,
        "sessions_30d": 0,
        "sessions_90d": 0,
        "product_views_30d": 0,
        "cart_adds_30d": 0,
        "cart_abandonment_share_90d": None,
        "store_visits_90d": 0,
    },
    # orders without lines: discount share NULL although order lines exist in the lake
    CARL: {
        "days_since_last_order": 5,
        "orders_30d": 5,  # 25, 20, 15, 10, 5 days back
        "orders_90d": 8,
        "spend_30d": Decimal("50.00"),
        "spend_90d": Decimal("80.00"),
        "avg_order_value_90d": 10.0,
        "discount_share_90d": None,
        "return_share_90d": 0.0,
        "web_share_90d": 1.0,
        "app_share_90d": 0.0,
        "store_share_90d": 0.0,
        "sessions_30d": 0,
        "sessions_90d": 0,
        "product_views_30d": 0,
        "cart_adds_30d": 0,
        "cart_abandonment_share_90d": None,
        "store_visits_90d": 0,
    },
}
DAILY = (AS_OF - dt.timedelta(days=1), AS_OF, AS_OF + dt.timedelta(days=1))
# Carl's last order is 5 days before AS_OF: in the window for 24 more days, out of it on the 25th
CARL_DATES = (AS_OF + dt.timedelta(days=24), AS_OF + dt.timedelta(days=25))


def _write_hand_lake(root: Path, rows: dict[str, list[dict]], key_from: Path | None = None) -> config.Settings:
    for source, source_rows in rows.items():
        lake.write_source(root, source, source_rows)
    config.write_deployment(root, {"reporting_currency": "EUR"}, "")
    if key_from is not None:  # the same PII key: the same person ids
        config.pii_key(key_from)
        shutil.copytree(key_from / "secrets", root / "secrets")
    return config.load(root)


def _cut_rows(rows: dict[str, list[dict]], cut: dt.date) -> dict[str, list[dict]]:
    end = (cut + dt.timedelta(days=1)).isoformat()
    return {source: [r for r in source_rows if r["_day"] <= cut.isoformat()
                     and (source not in STAMPED or r[STAMPED[source]] < end)]
            for source, source_rows in rows.items()}


def _customer_ids(settings) -> dict[str, str]:
    """customer id -> person id."""
    return {r["identifier_value"]: r["person_id"] for r in _rows(
        settings, "select identifier_value, person_id from intermediate.int_identities_resolved "
        "where identifier_type = 'customer_id'")}


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("behaviour_hand")
    daily = _write_hand_lake(root / "daily", HAND_LAKE)
    seen: dict[str, Any] = {"settings": daily}
    # daily runs D-1, D (with every test), D+1 on the whole lake, which also holds later rows
    _run(daily, DAILY[0])
    seen["summary"] = _build(daily, AS_OF)
    seen["mart"] = _mart(daily)
    seen["persons"] = _customer_ids(daily)
    seen["behaviour"] = _by_person(daily, MART)
    _run(daily, DAILY[2])
    seen["history"] = _history(daily)
    # from scratch for each date (--full-refresh), on a second data directory over the same lake
    scratch = _clone(daily.paths.root, root / "scratch")
    seen["scratch"] = {}
    for as_of in (*DAILY, *CARL_DATES):
        _run(scratch, as_of, full_refresh=True)
        seen["scratch"][as_of] = {"mart": _mart(scratch), "behaviour": _by_person(scratch, MART),
                                  "features": _by_person(scratch, FEATURES)}
    # the lake as it was on D: nothing landed or stamped after it
    cut = _write_hand_lake(root / "cut", _cut_rows(HAND_LAKE, AS_OF), key_from=daily.paths.root)
    _build(cut, AS_OF)
    seen["cut_mart"] = _mart(cut)
    return seen


def test_the_features_step_builds_both_behaviour_models_green_on_the_hand_lake(hand):
    summary = hand["summary"]
    assert summary["success"] and set(summary["status_counts"]) <= {"success", "pass"}, summary["status_counts"]
    built = _rows(hand["settings"], "select table_name from information_schema.tables where table_schema = 'marts'")
    assert {"customer_behaviour_features", "customer_behaviour_features_history"} <= {r["table_name"] for r in built}


def test_window_edges_shares_and_null_rules_match_a_hand_computation(hand):
    persons, behaviour = hand["persons"], hand["behaviour"]
    for customer_id, expected in EXPECTED.items():
        row = behaviour[persons[customer_id]]
        assert row["as_of_date"] == AS_OF
        assert row["customer_id"] == customer_id
        # ratios are rounded to 6 places and money is DECIMAL, so the values compare exactly
        assert {k: row[k] for k in expected} == expected, customer_id
    # one row per person of customer_features, and every column documented above is there
    features = _by_person(hand["settings"], FEATURES)
    assert set(behaviour) == set(features)
    assert set(next(iter(behaviour.values()))) == {"person_id", "customer_id", "as_of_date", *EXPECTED[ALICE]}


def test_a_build_on_a_lake_holding_later_data_equals_a_build_on_the_lake_cut_at_the_as_of_date(hand):
    assert hand["cut_mart"] == hand["mart"]
    assert len(hand["mart"]) == 3


def test_daily_incremental_history_equals_a_full_refresh_per_date_on_the_hand_lake(hand):
    history = hand["history"]
    assert set(history) == set(DAILY)
    for as_of in DAILY:
        assert history[as_of] == _without_as_of(hand["scratch"][as_of]["mart"]), as_of
    # and the dates differ (the windows moved), so the comparison is not between copies of one date
    alice = hand["persons"][ALICE]
    views = [hand["scratch"][d]["behaviour"][alice]["product_views_30d"] for d in DAILY]
    # D-1 still sees S3's view (30 days before D); D+1 sees its own view but no longer S2's and S5's, and not
    # yet the view of D-1 that lands on D+2
    assert views == [4, 3, 2], views


def test_orders_30d_falls_to_zero_within_30_days_of_the_last_order_while_lifetime_totals_stay(hand):
    carl = hand["persons"][CARL]
    dates = (AS_OF, *CARL_DATES)
    behaviour = [hand["scratch"][d]["behaviour"][carl] for d in dates]
    features = [hand["scratch"][d]["features"][carl] for d in dates]
    assert [b["orders_30d"] for b in behaviour] == [5, 1, 0]
    assert [b["spend_30d"] for b in behaviour] == [Decimal("50.00"), Decimal("10.00"), Decimal("0.00")]
    assert [b["days_since_last_order"] for b in behaviour] == [5, 29, 30]
    assert [b["orders_90d"] for b in behaviour] == [8, 8, 8]  # still inside the 90-day window
    assert [(f["frequency"], f["monetary"]) for f in features] == [(8, Decimal("80.00"))] * 3


def test_sources_without_data_give_null_features_and_the_others_count(orders_only_lake):
    settings, summaries = orders_only_lake
    assert summaries["features"]["success"]
    absent = ("discount_share_90d", "sessions_30d", "sessions_90d", "product_views_30d", "cart_adds_30d",
              "cart_abandonment_share_90d", "store_visits_90d")
    present = ("orders_30d", "orders_90d", "spend_30d", "spend_90d")
    rows = list(_by_person(settings, MART).values())
    assert rows and all(r[c] is None for r in rows for c in absent)
    assert all(r[c] is not None for r in rows for c in present)
    assert any(r["orders_30d"] > 0 for r in rows)


def test_the_features_gate_passes_the_built_mart_and_fails_a_missing_person_or_a_stale_date(hand, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(hand["settings"].paths.root, root, ignore=shutil.ignore_patterns("dbt"))
    settings = config.load(root)
    built_for = DAILY[-1]  # the last build of the fixture's data directory
    assert run_gate(settings, "features", built_for).success
    with warehouse.connect(settings) as con:
        con.execute(f"update {MART} set as_of_date = as_of_date - 1 where person_id = (select min(person_id) from {MART})")
        con.execute(f"delete from {MART} where person_id = (select max(person_id) from {MART})")
    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "features", built_for)
    failed = {(r.suite, r.key) for r in raised.value.result.expectations if not r.success}
    assert failed == {("mart__customer_behaviour_features", "row_count_matches"),
                      ("mart__customer_behaviour_features", "as_of_date.as_of_matches")}


# --- the generated lake --------------------------------------------------------------------------------------

END = dt.date(2025, 3, 31)
CUSTOMERS = 1500
DAYS = 45
GENERATED_DAILY = (END - dt.timedelta(days=2), END - dt.timedelta(days=1), END)
STOP = END - dt.timedelta(days=30)  # a person without orders after STOP has orders_30d = 0 on END
CUT = END - dt.timedelta(days=10)
LATE_DAY = CUT - dt.timedelta(days=1)  # its orders, lines, events and visits are delivered two days late


def _deliver_late(settings, day: dt.date, landed: dt.date) -> int:
    """Move the files landed on `day` of the activity sources into the partition of `landed` (a delivery two
    days late, which the generator does not make): as of CUT the lake holds rows of CUT - 1 it had not landed
    yet. Returns the rows moved."""
    moved = 0
    con = duckdb.connect()
    try:
        for source in ("orders", "order_items", "events", "store_visits"):
            for file in sorted((settings.paths.raw / source / f"ingest_date={day.isoformat()}").glob("*.parquet")):
                target = settings.paths.raw / source / f"ingest_date={landed.isoformat()}" / f"late-{file.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                moved += con.execute(f"select count(*) from read_parquet('{file}')").fetchone()[0]
                file.rename(target)
    finally:
        con.close()
    return moved


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("behaviour_generated")
    settings = config.load(root / "daily")
    generate.run(settings.paths, customers=CUSTOMERS, days=DAYS, end=END, seed=23)
    landing.land_all(settings, END)
    seen: dict[str, Any] = {"settings": settings, "late_rows": _deliver_late(settings, LATE_DAY, CUT + dt.timedelta(days=1))}
    _run(settings, GENERATED_DAILY[0])
    _run(settings, GENERATED_DAILY[1])
    seen["summary"] = _build(settings, END)
    seen["seconds"] = _model_seconds(settings, "customer_behaviour_features")
    seen["history"] = _history(settings)
    scratch = _clone(settings.paths.root, root / "scratch")
    seen["scratch"] = {}
    for as_of in (STOP, CUT, *GENERATED_DAILY):
        _run(scratch, as_of, full_refresh=True)
        seen["scratch"][as_of] = {"mart": _mart(scratch), "behaviour": _by_person(scratch, MART),
                                  "features": _by_person(scratch, FEATURES)}
    cut = _clone(settings.paths.root, root / "cut", cut=CUT)
    _run(cut, CUT)
    seen["cut_mart"] = _mart(cut)
    return seen


def _recomputed(settings, as_of: dt.date) -> dict[str, dict[str, Any]]:
    """The behaviour features recomputed in Python from the relations the model reads (orders, sessions, events,
    store visits as dbt built them as of `as_of`): the window and NULL rules written a second time."""

    def window(days: int, value: dt.date | None) -> bool:
        return value is not None and as_of - dt.timedelta(days=days - 1) <= value <= as_of

    def ratio(numerator, denominator):
        return None if not denominator else float(numerator) / float(denominator)

    people = {r["person_id"]: defaultdict(lambda: 0) for r in _rows(settings, "select person_id from marts.customers")}
    last: dict[str, dt.date] = {}
    for o in _rows(settings, "select * from intermediate.int_orders_attributed where person_id is not null"):
        p = people.get(o["person_id"])
        if p is None:
            continue
        done = o["status"] == "completed"
        if done:
            last[o["person_id"]] = max(last.get(o["person_id"], o["order_date"]), o["order_date"])
        for days in (30, 90):
            if done and window(days, o["order_date"]):
                p[f"orders_{days}d"] += 1
                p[f"spend_{days}d"] += o["amount_reporting"]
        if window(90, o["order_date"]):
            p["kept_or_returned"] += o["status"] in ("completed", "returned")
            p["returned"] += o["status"] == "returned"
            if done:
                p[f"{o['channel']}_orders"] += 1
                if o["gross_item_amount"] is not None:
                    p["discount"] += o["discount_amount"]
                    p["gross"] += o["gross_item_amount"]
                    p["with_lines"] += 1
    for s in _rows(settings, "select * from marts.sessions where person_id is not null"):
        p = people.get(s["person_id"])
        if p is None:
            continue
        p["sessions_30d"] += window(30, s["session_date"])
        p["sessions_90d"] += window(90, s["session_date"])
        p["cart_sessions"] += window(90, s["session_date"]) and s["has_add_to_cart"]
        p["abandoned"] += window(90, s["session_date"]) and s["is_cart_abandoned"]
    for e in _rows(settings, "select sessions.person_id, events.event_type, events.event_date "
                   "from intermediate.int_events_sessionized as events join marts.sessions using (session_id) "
                   "where sessions.person_id is not null"):
        p = people.get(e["person_id"])
        if p is not None and window(30, e["event_date"]):
            p["product_views_30d"] += e["event_type"] == "product_view"
            p["cart_adds_30d"] += e["event_type"] == "add_to_cart"
    for v in _rows(settings, "select person_id, visit_date from intermediate.int_store_visits_attributed"):
        p = people.get(v["person_id"])
        if p is not None:
            p["store_visits_90d"] += window(90, v["visit_date"])
    out = {}
    for person_id, p in people.items():
        out[person_id] = {
            "days_since_last_order": (as_of - last[person_id]).days if person_id in last else None,
            **{k: p[k] for k in ("orders_30d", "orders_90d", "sessions_30d", "sessions_90d", "product_views_30d",
                                 "cart_adds_30d", "store_visits_90d")},
            "spend_30d": Decimal(p["spend_30d"]),
            "spend_90d": Decimal(p["spend_90d"]),
            "avg_order_value_90d": ratio(p["spend_90d"], p["orders_90d"]),
            "discount_share_90d": ratio(p["discount"], p["gross"]) if p["with_lines"] else None,
            "return_share_90d": ratio(p["returned"], p["kept_or_returned"]),
            **{f"{c}_share_90d": ratio(p[f"{c}_orders"], p["orders_90d"]) for c in ("web", "app", "store")},
            "cart_abandonment_share_90d": ratio(p["abandoned"], p["cart_sessions"]),
        }
    return out


def test_the_features_step_is_green_on_the_generated_lake(generated):
    summary = generated["summary"]
    assert summary["success"] and set(summary["status_counts"]) <= {"success", "pass"}, summary["status_counts"]
    assert summary["by_resource_type"]["model"] == {"success": 4}
    assert generated["seconds"] < 30, generated["seconds"]


def test_generated_features_equal_a_python_recomputation_of_the_windows(generated):
    settings = generated["settings"]
    actual = _by_person(settings, MART)
    expected = _recomputed(settings, END)
    assert set(actual) == set(expected) and len(actual) > 1000
    mismatches = []
    for person_id, want in expected.items():
        got = {k: actual[person_id][k] for k in want}
        for key, value in want.items():
            if value is None or got[key] is None:
                same = got[key] is value
            elif isinstance(value, float):  # the model rounds ratios to 6 places
                same = got[key] == pytest.approx(value, abs=1e-6)
            else:  # counts and DECIMAL money: exact
                same = got[key] == value
            if not same:
                mismatches.append((person_id, key, got[key], value))
    assert not mismatches, mismatches[:10]
    # the data exercises every rule: buyers inside and outside the 30-day window, cart sessions, store visits
    rows = actual.values()
    assert sum(r["orders_30d"] > 0 for r in rows) > 100
    assert sum(r["orders_90d"] > r["orders_30d"] for r in rows) > 100
    assert sum(r["orders_90d"] == 0 for r in rows) > 10
    assert sum(r["cart_abandonment_share_90d"] is not None for r in rows) > 100
    assert sum(r["store_visits_90d"] > 0 for r in rows) > 100


def test_generated_build_on_the_whole_lake_equals_a_build_on_the_lake_cut_at_the_as_of_date(generated):
    whole = generated["scratch"][CUT]["mart"]
    assert len(whole) > 1000 and generated["late_rows"] > 500  # the whole lake holds a day delivered late
    assert generated["cut_mart"] == whole


def test_generated_daily_incremental_history_equals_a_full_refresh_per_date(generated):
    history = generated["history"]
    assert set(history) == set(GENERATED_DAILY)
    for as_of in GENERATED_DAILY:
        assert history[as_of] == _without_as_of(generated["scratch"][as_of]["mart"]), as_of
    assert history[GENERATED_DAILY[0]] != history[GENERATED_DAILY[2]]


def test_generated_buyers_who_stop_fall_to_zero_orders_30d_while_lifetime_totals_stay(generated):
    before, after = generated["scratch"][STOP], generated["scratch"][END]
    orders = _rows(generated["settings"], "select person_id, max(order_date) as last_order_date, count(*) as n "
                   "from marts.orders where status = 'completed' group by person_id")
    stopped = [
        o["person_id"] for o in orders
        if o["last_order_date"] <= STOP and o["person_id"] in before["behaviour"]
        and (before["behaviour"][o["person_id"]]["orders_30d"] or 0) > 0
        # nothing of theirs landed late: the orders known on END are the ones known on STOP
        and before["features"][o["person_id"]]["frequency"] == o["n"]
    ]
    assert len(stopped) >= 20, len(stopped)
    for person_id in stopped:
        now, then = after["behaviour"][person_id], before["behaviour"][person_id]
        assert (now["orders_30d"], now["spend_30d"]) == (0, 0), person_id
        assert now["days_since_last_order"] == then["days_since_last_order"] + 30
        lifetime = [(s["features"][person_id]["frequency"], s["features"][person_id]["monetary"])
                    for s in (before, after)]
        assert lifetime[0] == lifetime[1], person_id
    # and buyers who keep ordering keep a non-zero window
    active = [o["person_id"] for o in orders if o["last_order_date"] > STOP]
    assert active and all(after["behaviour"][p]["orders_30d"] > 0 for p in active)
