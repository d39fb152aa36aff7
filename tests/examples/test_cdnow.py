"""CDNOW, both layouts that ship in the `lifetimes` wheel, through examples/cdnow/mapping*.yml, end to end.

tests/fixtures/cdnow_sample.txt is a slice of CDNOW_master.txt (header; id, date, CDs, dollars);
tests/fixtures/cdnow_sample_layout.txt the first 300 lines of CDNOW_sample.txt (no header; master id, sample
index, date, CDs, dollars; CRLF). Both are imported into one deployment: a purchase present in both files is the
same order (same customer id, same derived order id), so it counts once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from .conftest import EXAMPLES, FIXTURES, assert_every_customer_has_one_segment, import_and_run, landing, rejected_lines

pytestmark = pytest.mark.e2e
DAY = dt.date(1998, 7, 1)
MASTER = FIXTURES / "cdnow_sample.txt"
SAMPLE = FIXTURES / "cdnow_sample_layout.txt"


def purchases(path, skip_header: bool, id_field: int = 0) -> list[tuple[str, str, str]]:
    """(order id as the mapping derives it, customer id, dollars) per line, numbered independently here."""
    lines = [line.split() for line in path.read_text().splitlines()[1 if skip_header else 0:] if line.strip()]
    seen = Counter()
    out = []
    for f in lines:
        customer, day, dollars = f[id_field], f[-3], f[-1]
        seen[customer, day] += 1
        out.append((f"{customer}-{day}-{seen[customer, day]}", customer, dollars))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return import_and_run(tmp_path_factory.mktemp("cdnow") / "data", DAY,
                          (MASTER, EXAMPLES / "cdnow" / "mapping.yml"),
                          (SAMPLE, EXAMPLES / "cdnow" / "mapping_sample.yml"))


def test_every_line_of_both_layouts_lands(run):
    master, sample = purchases(MASTER, True), purchases(SAMPLE, False)
    totals = landing(run.settings)
    assert set(totals) == {"orders", "order_items"}
    for source in ("orders", "order_items"):
        assert totals[source] == {"rows_in": len(master) + len(sample), "landed": len(master) + len(sample),
                                  "quarantined": 0, "reasons": {}}
    assert rejected_lines(run.settings, DAY) == []


def test_the_two_layouts_name_the_same_customers_and_orders(run):
    master, sample = purchases(MASTER, True), purchases(SAMPLE, False)
    shared = {o for o, _, _ in master} & {o for o, _, _ in sample}
    assert shared, "the fixtures overlap (customer 00004 is in both)"
    orders = {o: (c, Decimal(d)) for o, c, d in master + sample}
    got = {order_id: (customer_id, amount) for order_id, customer_id, amount in
           run.query("select order_id, customer_id, amount from marts.orders")}
    assert got == orders
    assert "00001" in {c for c, _ in got.values()}, "ids are the file's text, zeros kept"


def test_customers_and_rfm_and_everyone_has_a_segment(run):
    orders = {o: (c, Decimal(d)) for o, c, d in purchases(MASTER, True) + purchases(SAMPLE, False)}
    per_customer = defaultdict(lambda: [0, Decimal("0")])
    for customer, dollars in orders.values():
        per_customer[customer][0] += 1
        per_customer[customer][1] += dollars
    assert assert_every_customer_has_one_segment(run) == len(per_customer)
    rows = run.query("""select c.customer_id, r.frequency, r.monetary
                        from marts.customer_rfm as r inner join marts.customers as c using (person_id)""")
    assert {c: [f, m] for c, f, m in rows} == {c: v for c, v in per_customer.items()}
