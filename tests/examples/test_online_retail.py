"""The invoice-line export (UCI "Online Retail" shape) through examples/online_retail/mapping.yml, end to end.

The expected figures are computed here from the fixture with the csv module alone: guests, cancellations and
malformed lines decide what is quarantined, and RFM per customer is recomputed from the invoice lines.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import pytest

from .conftest import EXAMPLES, FIXTURES, assert_every_customer_has_one_segment, import_and_run, landing, rejected_lines

pytestmark = pytest.mark.e2e
DAY = dt.date(2011, 7, 1)
EXPORT = FIXTURES / "online_retail_sample.csv"
MAPPING = EXAMPLES / "online_retail" / "mapping.yml"
LONDON = ZoneInfo("Europe/London")


def read_export():
    """(rows with 8 fields, line numbers of the lines without) of the export, as the file has them."""
    with EXPORT.open(encoding="latin-1", newline="") as fh:
        records = list(csv.reader(fh))
    header, rows = records[0], records[1:]
    good = [dict(zip(header, r, strict=True)) for r in rows if len(r) == len(header)]
    broken = [n for n, r in enumerate(rows, start=2) if len(r) != len(header)]
    return good, broken


def invoices():
    """Invoice -> its parsed facts, computed independently of the mapping."""
    rows, _ = read_export()
    by_invoice = defaultdict(list)
    for r in rows:
        by_invoice[r["InvoiceNo"].strip()].append(r)
    result = {}
    for number, lines in by_invoice.items():
        customer = lines[0]["CustomerID"].strip().removesuffix(".0") or None
        try:
            local = [dt.datetime.strptime(r["InvoiceDate"].strip(), "%m/%d/%Y %H:%M") for r in lines]
            at = min(t.replace(tzinfo=LONDON).astimezone(dt.UTC) for t in local)
        except ValueError:
            at = None
        try:
            amount = abs(sum(int(r["Quantity"]) * Decimal(r["UnitPrice"]) for r in lines)).quantize(Decimal("0.01"))
        except InvalidOperation:
            amount = None
        cancelled = number.startswith("C") or all(int(r["Quantity"]) < 0 for r in lines)
        result[number] = {"customer": customer, "at": at, "amount": amount, "cancelled": cancelled, "lines": lines}
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return import_and_run(tmp_path_factory.mktemp("online_retail") / "data", DAY, (EXPORT, MAPPING))


def test_every_line_is_landed_quarantined_or_kept_aside_with_its_reason(run):
    rows, broken = read_export()
    inv = invoices()
    # the broken line (an unquoted comma in the description) is kept aside by the importer, with its text
    rejected = rejected_lines(run.settings, DAY)
    assert [n for n, _, _ in rejected] == broken and len(broken) == 1
    assert rejected[0][1].startswith("536478,21035,SET/2 RED RETROSPOT TEA TOWELS, BOXED") and "too many columns" in rejected[0][2]
    assert "input: 312 lines: 311 read, 1 rejected" in run.imports[0] and len(rows) == 311

    totals = landing(run.settings)
    assert set(totals) == {"crm_customers", "orders", "order_items"}
    for t in totals.values():
        assert t["rows_in"] == t["landed"] + t["quarantined"]
    guests = sum(1 for i in inv.values() if i["customer"] is None)
    assert totals["orders"]["rows_in"] == len(inv)
    assert totals["orders"]["reasons"] == {
        "rule customer_id_or_email": guests,
        "ordered_at: not a timestamp": sum(1 for i in inv.values() if i["at"] is None),
        "amount: not a double": sum(1 for i in inv.values() if i["amount"] is None),
    }
    assert totals["order_items"] == {"rows_in": len(rows), "landed": len(rows) - 1, "quarantined": 1,
                                     "reasons": {"unit_price: not a double": 1}}
    assert totals["crm_customers"]["quarantined"] == 0
    assert guests == 5


def test_cancellations_are_cancelled_orders_with_positive_amounts(run):
    inv = invoices()
    cancelled = {n: i["amount"] for n, i in inv.items() if i["cancelled"] and i["customer"] and i["at"]}
    assert any(n.startswith("C") for n in cancelled)
    rows = run.query("select order_id, amount from marts.orders where status = 'cancelled' order by 1")
    assert {order_id: amount for order_id, amount in rows} == cancelled
    assert all(amount > 0 for _, amount in rows)


def test_rfm_per_customer_matches_the_invoices(run):
    measured = defaultdict(lambda: {"frequency": 0, "monetary": Decimal("0"), "last": None})
    for i in invoices().values():
        if i["cancelled"] or i["customer"] is None or i["at"] is None or i["amount"] is None:
            continue
        m = measured[i["customer"]]
        m["frequency"] += 1
        m["monetary"] += i["amount"]
        m["last"] = max(filter(None, [m["last"], i["at"].date()]))
    expected = {c: (m["frequency"], m["monetary"], (DAY - m["last"]).days) for c, m in measured.items()}
    rows = run.query("""
        select c.customer_id, r.frequency, r.monetary, r.recency_days
        from marts.customer_rfm as r inner join marts.customers as c using (person_id)""")
    assert {c: (f, m, r) for c, f, m, r in rows} == expected
    # the British Summer Time invoice counts on its UTC date: 0:30 on 15 June in London is 14 June
    bst = next(i for i in invoices().values() if i["lines"][0]["InvoiceDate"] == "6/15/2011 0:30")
    assert bst["at"].date() == dt.date(2011, 6, 14)


def test_customers_keep_their_ids_and_countries_and_all_have_a_segment(run):
    rows, _ = read_export()
    ids = {r["CustomerID"].strip().removesuffix(".0") for r in rows} - {""}
    assert assert_every_customer_has_one_segment(run) == len(ids)
    got = dict(run.query("select customer_id, country from marts.customers"))
    assert set(got) == ids
    assert {"United Kingdom", "EIRE"} <= set(got.values())
