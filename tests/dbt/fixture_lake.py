"""A small hand-made lake in the layout landing writes, with known answers for the dbt tests.

`$SEG_DATA_DIR/lake/raw/<source>/ingest_date=YYYY-MM-DD/<name>.parquet`: the contract columns with their DuckDB
types (json as VARCHAR) + `_source_file` + `_row_number`. Until the generator and landing exist this is the only
lake the dbt tests see; it is small on purpose and every row has a reason to be here.

People (as of 2025-03-31):
- Anna: two CRM records C00000001 / C00000002 whose emails differ only in case and spaces (must merge), a
  loyalty card, her own phone (device a...a1, logs in as C00000001), a guest order with her email, a USD order,
  store visits, survey answers. Her first CRM record is updated on 03-10 (city, opt-in).
- Ben C00000003: his phone (b...b1, one event of its session lands 3 days late) and the family tablet
  (f...f1); 2 completed + 1 returned order.
- Cara C00000004: logs in on the same family tablet (the tablet must NOT merge Ben and Cara); 4 orders.
  A CRM update after the as-of date (country) must not be visible.
- Dan: guest orders only (dan@example.com), no customer id.
- Eve C00000005: no orders; events and survey answers.
- An anonymous device (c...c1) that never logs in: a visitor, not a customer.
After the as-of date: an order, an event, a store visit and a CRM update (must not leak). One order is re-sent in
a later file (dedupe).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from seg.core.contract import load_contract

AS_OF = "2025-03-31"

ANNA_1, ANNA_2, BEN, CARA, EVE = "C00000001", "C00000002", "C00000003", "C00000004", "C00000005"
ANNA_PHONE, BEN_PHONE, FAMILY_TABLET, EVE_LAPTOP, VISITOR = (
    "aaaaaaaaaaaaaaa1",
    "bbbbbbbbbbbbbbb1",
    "fffffffffffffff1",
    "eeeeeeeeeeeeeee1",
    "ccccccccccccccc1",
)

LAKE_TYPES = {"JSON": "VARCHAR"}


def _crm(cid, email, day, updated_at, *, loyalty=None, city="Berlin", country="DE", opt_in=True, phone=None):
    return {
        "customer_id": cid,
        "email": email,
        "phone": phone,
        "first_name": "First",
        "last_name": "Last",
        "birth_date": "1990-05-17",
        "gender": "F",
        "country": country,
        "region": "BE",
        "city": city,
        "signup_at": "2025-01-15 09:00:00",
        "loyalty_id": loyalty,
        "marketing_opt_in": opt_in,
        "updated_at": updated_at,
        "_day": day,
    }


CRM = [
    _crm(
        ANNA_1,
        "anna@example.com",
        "2025-03-01",
        "2025-03-01 08:00:00",
        loyalty="L000000001",
        opt_in=False,
        phone="+49 170 1234567",
    ),
    _crm(ANNA_2, "  Anna@Example.COM ", "2025-03-02", "2025-03-02 08:00:00", city="Potsdam"),
    _crm(BEN, "ben@example.com", "2025-03-01", "2025-03-01 09:00:00", loyalty="L000000003"),
    _crm(CARA, "cara@example.com", "2025-03-01", "2025-03-01 10:00:00", country="DE"),
    _crm(EVE, "eve@example.com", "2025-03-03", "2025-03-03 10:00:00"),
    # Anna's first record changed on 03-10: new city, opted in
    _crm(
        ANNA_1,
        "anna@example.com",
        "2025-03-10",
        "2025-03-10 12:00:00",
        loyalty="L000000001",
        city="Hamburg",
        opt_in=True,
        phone="+49 170 1234567",
    ),
    # after the as-of date: must not be visible
    _crm(CARA, "cara@example.com", "2025-04-01", "2025-04-01 10:00:00", country="FR"),
]


def _order(oid, cid, email, at, channel, amount, *, status="completed", currency="EUR", day=None):
    return {
        "order_id": oid,
        "customer_id": cid,
        "email": email,
        "ordered_at": at,
        "channel": channel,
        "status": status,
        "amount": amount,
        "currency": currency,
        "_day": day or at[:10],
    }


ORDERS = [
    # Anna: 3 completed orders under three identifiers (web EUR, app USD, guest web with her email)
    _order("O0000000001", ANNA_1, "anna@example.com", "2025-03-05 10:00:00", "web", 100.0),
    _order("O0000000002", ANNA_2, None, "2025-03-12 11:00:00", "app", 50.0, currency="USD"),
    _order("O0000000003", None, "ANNA@example.com ", "2025-03-20 12:00:00", "web", 30.0),
    # the first order re-sent in a later file: one order
    _order("O0000000001", ANNA_1, "anna@example.com", "2025-03-05 10:00:00", "web", 100.0, day="2025-03-06"),
    # Ben: 2 completed (store, web) + 1 returned
    _order("O0000000004", BEN, None, "2025-03-02 09:00:00", "store", 20.0),
    _order("O0000000005", BEN, "ben@example.com", "2025-03-25 09:30:00", "web", 40.0),
    _order("O0000000006", BEN, None, "2025-03-26 09:30:00", "web", 15.0, status="returned"),
    # Cara: 4 completed app orders, the last at the very end of the as-of day
    _order("O0000000007", CARA, None, "2025-03-01 10:00:00", "app", 10.0),
    _order("O0000000008", CARA, None, "2025-03-03 10:00:00", "app", 10.0),
    _order("O0000000009", CARA, None, "2025-03-08 10:00:00", "app", 10.0),
    _order("O0000000010", CARA, None, "2025-03-10 10:00:00", "app", 12.0),
    # Dan: guest orders only; one cancelled
    _order("O0000000011", None, "dan@example.com", "2025-03-31 23:59:59", "web", 200.0),
    _order("O0000000012", None, "Dan@example.com", "2025-03-15 10:00:00", "web", 5.0, status="cancelled"),
    # landed on the as-of day but stamped after its end, and an order after the as-of date: neither may leak
    _order("O0000000013", BEN, None, "2025-04-01 00:00:00", "web", 999.0, day="2025-03-31"),
    _order("O0000000014", CARA, None, "2025-04-01 10:00:00", "web", 999.0),
]


def _item(oid, line, qty, price, discount=0.0, category="shoes", day=None):
    first = next(o for o in ORDERS if o["order_id"] == oid)
    return {
        "order_id": oid,
        "line_no": line,
        "sku": f"SKU-{line:05d}",
        "category": category,
        "quantity": qty,
        "unit_price": price,
        "discount": discount,
        "_day": day or first["_day"],
    }


ORDER_ITEMS = [
    _item("O0000000001", 1, 2, 50.0, 0.0),
    _item("O0000000002", 1, 1, 50.0, 0.0, category="bags"),
    _item("O0000000003", 1, 1, 40.0, 0.25),  # 10 of 40 discounted
    _item("O0000000004", 1, 1, 20.0),
    _item("O0000000005", 1, 2, 25.0, 0.2),  # 10 of 50 discounted
    _item("O0000000006", 1, 1, 15.0),
    _item("O0000000007", 1, 1, 10.0),
    _item("O0000000008", 1, 1, 10.0),
    _item("O0000000009", 1, 1, 10.0),
    _item("O0000000010", 1, 1, 12.0),
    _item("O0000000011", 1, 4, 50.0),
    _item("O0000000011", 2, 1, 0.5, category="socks"),
    _item("O0000000012", 1, 1, 5.0),
    _item("O0000000014", 1, 1, 999.0),
    # line 2 of order 1 re-sent: one line
    _item("O0000000001", 1, 2, 50.0, 0.0, day="2025-03-06"),
]

_event_counter = iter(range(1, 10_000))


def _event(anon, at, event_type, cid=None, properties=None, day=None):
    return {
        "event_id": f"E{next(_event_counter):012d}",
        "occurred_at": at,
        "anonymous_id": anon,
        "customer_id": cid,
        "session_id": None,
        "event_type": event_type,
        "taxonomy_version": 1,
        "device_type": "mobile",
        "os": "android",
        "country": "DE",
        "region": "BE",
        "page_url": "/p",
        "product_id": "P00001" if event_type in ("product_view", "add_to_cart") else None,
        "category": "shoes",
        "properties": json.dumps(properties or {}),
        "_day": day or at[:10],
    }


EVENTS = [
    # Anna's phone, session 1 (03-05): browse anonymously, log in, add to cart, buy
    _event(ANNA_PHONE, "2025-03-05 09:40:00", "page_view"),
    _event(ANNA_PHONE, "2025-03-05 09:45:00", "product_view", properties={"price": 50.0}),
    _event(ANNA_PHONE, "2025-03-05 09:50:00", "login", ANNA_1, {"method": "password"}),
    _event(ANNA_PHONE, "2025-03-05 09:55:00", "add_to_cart", ANNA_1, {"quantity": 2, "price": 50.0}),
    _event(ANNA_PHONE, "2025-03-05 10:00:00", "purchase", ANNA_1, {"order_id": "O0000000001", "revenue": 100.0}),
    # Anna's phone, session 2 (03-06, anonymous only): add to cart, abandoned; video watched
    _event(ANNA_PHONE, "2025-03-06 20:00:00", "product_view", properties={"price": 30.0}),
    _event(ANNA_PHONE, "2025-03-06 20:10:00", "add_to_cart", properties={"quantity": 1, "price": 30.0}),
    _event(ANNA_PHONE, "2025-03-06 20:20:00", "video_play", properties={"video_id": "v1", "video_percent": 80}),
    # Ben's phone (1 session, logs in)
    _event(BEN_PHONE, "2025-03-25 09:00:00", "login", BEN, {"method": "sso"}),
    _event(BEN_PHONE, "2025-03-25 09:10:00", "scroll_depth", BEN, {"scroll_percent": 60}),
    # a late event: happened in that session, landed three days later
    _event(BEN_PHONE, "2025-03-25 09:20:00", "product_view", BEN, {"price": 25.0}, day="2025-03-28"),
    # the family tablet: Ben logs in on one day, Cara on another
    _event(FAMILY_TABLET, "2025-03-10 18:00:00", "login", BEN, {"method": "password"}),
    _event(FAMILY_TABLET, "2025-03-10 18:05:00", "product_view", BEN, {"price": 20.0}),
    _event(FAMILY_TABLET, "2025-03-11 19:00:00", "page_view"),
    _event(FAMILY_TABLET, "2025-03-11 19:01:00", "login", CARA, {"method": "password"}),
    _event(FAMILY_TABLET, "2025-03-11 19:05:00", "add_to_cart", CARA, {"quantity": 1, "price": 10.0}),
    # Eve's laptop
    _event(EVE_LAPTOP, "2025-03-20 08:00:00", "login", EVE, {"method": "magic_link"}),
    _event(EVE_LAPTOP, "2025-03-20 08:10:00", "search", EVE, {"search_term": "boots", "results": 3}),
    # a visitor who never logs in
    _event(VISITOR, "2025-03-15 12:00:00", "page_view"),
    _event(VISITOR, "2025-03-15 13:00:00", "page_view"),
    # after the as-of date: must not leak
    _event(ANNA_PHONE, "2025-04-01 09:00:00", "page_view", ANNA_1),
]

STORE_VISITS = [
    {
        "visit_id": "V0000000001",
        "loyalty_id": "L000000001",
        "store_id": "S001",
        "visited_at": "2025-03-07 15:00:00",
        "dwell_minutes": 20.0,
        "purchase_amount": 35.0,
    },
    {
        "visit_id": "V0000000002",
        "loyalty_id": "L000000001",
        "store_id": "S001",
        "visited_at": "2025-03-21 15:00:00",
        "dwell_minutes": 10.0,
        "purchase_amount": 0.0,
    },
    {
        "visit_id": "V0000000003",
        "loyalty_id": "L000000003",
        "store_id": "S002",
        "visited_at": "2025-03-02 09:00:00",
        "dwell_minutes": 15.0,
        "purchase_amount": 20.0,
    },
    {
        "visit_id": "V0000000004",
        "loyalty_id": "L000000001",
        "store_id": "S001",
        "visited_at": "2025-04-01 15:00:00",
        "dwell_minutes": 5.0,
        "purchase_amount": 500.0,
    },
]
for _visit in STORE_VISITS:
    _visit["_day"] = _visit["visited_at"][:10]


def _answer(rid, question, answer, cid=None, email=None, at="2025-03-18 10:00:00"):
    return {
        "response_id": rid,
        "customer_id": cid,
        "email": email,
        "answered_at": at,
        "question_id": question,
        "answer": answer,
        "_day": at[:10],
    }


SURVEY_RESPONSES = [
    _answer("R0000000001", "price_sensitivity", "4", cid=ANNA_2),
    _answer("R0000000001", "brand_loyalty", "2", cid=ANNA_2),
    _answer("R0000000001", "preferred_channel", "web", cid=ANNA_2),
    # Eve answers twice: the later answer wins
    _answer("R0000000002", "price_sensitivity", "5", email="eve@example.com", at="2025-03-10 10:00:00"),
    _answer("R0000000003", "price_sensitivity", "1", cid=EVE, email="EVE@example.com", at="2025-03-25 10:00:00"),
    _answer("R0000000003", "sustainability_interest", "5", cid=EVE, at="2025-03-25 10:00:00"),
]

# Dated rates to EUR (the reporting currency: most of the orders are in EUR). Anna's USD order of 2025-03-12 takes
# the 03-10 rate (the latest on or before its date), not the later 03-14 one nor the stale 02-01 one.
FX_RATES = [
    {"rate_date": "2025-02-01", "from_currency": "USD", "to_currency": "EUR", "rate": 0.5, "_day": "2025-03-01"},
    {"rate_date": "2025-03-10", "from_currency": "USD", "to_currency": "EUR", "rate": 0.92, "_day": "2025-03-10"},
    {"rate_date": "2025-03-14", "from_currency": "USD", "to_currency": "EUR", "rate": 2.0, "_day": "2025-03-14"},
    {"rate_date": "2025-03-10", "from_currency": "USD", "to_currency": "GBP", "rate": 0.8, "_day": "2025-03-10"},
]

ALL = {
    "fx_rates": FX_RATES,
    "crm_customers": CRM,
    "orders": ORDERS,
    "order_items": ORDER_ITEMS,
    "events": EVENTS,
    "store_visits": STORE_VISITS,
    "survey_responses": SURVEY_RESPONSES,
}


def write_source(root: Path, source: str, rows: list[dict], name: str = "part-0") -> list[Path]:
    """Write rows as the landed partitions of one source: one file per ingest day, contract types."""
    spec = load_contract().source(source)
    columns = [(c.name, LAKE_TYPES.get(c.duckdb_type, c.duckdb_type)) for c in spec.columns.values()]
    written = []
    days = sorted({r["_day"] for r in rows})
    con = duckdb.connect()
    try:
        for day in days:
            day_rows = [r for r in rows if r["_day"] == day]
            target = root / "lake" / "raw" / source / f"ingest_date={day}" / f"{name}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            values = [
                [r.get(col) for col, _ in columns] + [f"incoming/{source}/{day}/{name}.parquet", i]
                for i, r in enumerate(day_rows, 1)
            ]
            ddl = ", ".join(f"{col} {typ}" for col, typ in columns)
            con.execute(f"create or replace temp table rows ({ddl}, _source_file varchar, _row_number bigint)")
            con.executemany(f"insert into rows values ({', '.join('?' for _ in range(len(columns) + 2))})", values)
            con.execute(f"copy rows to '{target}' (format parquet)")
            written.append(target)
    finally:
        con.close()
    return written


def write_lake(root: Path, sources: tuple[str, ...] | None = None) -> None:
    """Write the fixture lake (all six sources, or only `sources`) under root/lake/raw."""
    for source, rows in ALL.items():
        if sources is None or source in sources:
            write_source(root, source, rows)
