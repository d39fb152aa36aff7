"""A Shopify orders export through examples/shopify/mapping.yml, end to end: one order per Name from the order's
first row, statuses and channels from the export's own fields, the buyer by normalised email."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from .conftest import EXAMPLES, FIXTURES, assert_every_customer_has_one_segment, import_and_run, landing, rejected_lines

pytestmark = pytest.mark.e2e
DAY = dt.date(2024, 3, 5)  # the day after the last order
EXPORT = FIXTURES / "shopify_orders.csv"
MAPPING = EXAMPLES / "shopify" / "mapping.yml"
CHANNELS = {"web": "web", "pos": "store", "iphone": "app", "android": "app"}


def shop_orders() -> dict[str, dict]:
    """Name -> the order as its first row states it (computed here with the csv module)."""
    with EXPORT.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    orders: dict[str, dict] = {}
    for r in rows:
        order = orders.setdefault(r["Name"], {"lines": 0, **r})
        order["lines"] += 1
    for o in orders.values():
        o["email_norm"] = o["Email"].strip().lower() or None
        o["status"] = "cancelled" if o["Cancelled at"] else "returned" if o["Financial Status"] == "refunded" else "completed"
        o["channel"] = CHANNELS.get(o["Source"])
        o["at"] = dt.datetime.strptime(o["Created at"], "%Y-%m-%d %H:%M:%S %z").astimezone(dt.UTC).replace(tzinfo=None)
    return orders


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return import_and_run(tmp_path_factory.mktemp("shopify") / "data", DAY, (EXPORT, MAPPING))


def test_orders_and_lines_land_and_orders_without_a_buyer_are_quarantined(run):
    orders = shop_orders()
    lines = sum(o["lines"] for o in orders.values())
    no_email = sum(1 for o in orders.values() if o["email_norm"] is None)
    assert no_email == 2
    assert landing(run.settings) == {
        "orders": {"rows_in": len(orders), "landed": len(orders) - no_email, "quarantined": no_email,
                   "reasons": {"rule customer_id_or_email": no_email}},
        "order_items": {"rows_in": lines, "landed": lines, "quarantined": 0, "reasons": {}},
    }
    assert rejected_lines(run.settings, DAY) == []


def test_status_channel_time_and_amount_come_from_the_first_row(run):
    expected = {name: (o["status"], o["channel"], o["at"], Decimal(o["Total"]), o["lines"])
                for name, o in shop_orders().items() if o["email_norm"]}
    got = {r[0]: tuple(r[1:]) for r in run.query(
        "select order_id, status, channel, ordered_at, amount, line_count from marts.orders")}
    assert got == expected
    assert {s for s, *_ in expected.values()} == {"completed", "cancelled", "returned"}


def test_buyers_are_persons_by_email_with_rfm_and_a_segment(run):
    orders = shop_orders()
    per_email = defaultdict(lambda: [0, Decimal("0")])
    for o in orders.values():
        if o["email_norm"] and o["status"] == "completed":
            per_email[o["email_norm"]][0] += 1
            per_email[o["email_norm"]][1] += Decimal(o["Total"])
    emails = {o["email_norm"] for o in orders.values() if o["email_norm"]}
    assert assert_every_customer_has_one_segment(run) == len(emails)
    rows = run.query("""
        select i.identifier_value, r.frequency, r.monetary
        from marts.customer_rfm as r
        inner join intermediate.int_identities_resolved as i on i.person_id = r.person_id and i.identifier_type = 'email'""")
    assert {e: [f, m] for e, f, m in rows} == dict(per_email)
