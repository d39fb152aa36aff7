"""Small lakes and warehouse tables for the gate tests, built by hand from the contract (no generator needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from seg.core import warehouse
from seg.core.contract import load_contract

DAY = dt.date(2025, 3, 10)
PREVIOUS_DAY = DAY - dt.timedelta(days=1)

ARROW_TYPES = {
    "varchar": pa.string(), "integer": pa.int32(), "bigint": pa.int64(), "double": pa.float64(),
    "boolean": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us"), "json": pa.string(),
}


def at(hour: int, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


def write_partition(settings, source: str, day: dt.date, rows: list[dict], name: str = "part-0") -> Path:
    """One raw Parquet file as landing writes it: contract columns in contract types + lineage columns."""
    spec = load_contract().source(source)
    unknown = {k for row in rows for k in row} - set(spec.columns)
    assert not unknown, f"not contract columns of {source}: {unknown}"
    schema = pa.schema([(c.name, ARROW_TYPES[c.type]) for c in spec.columns.values()])
    table = pa.Table.from_pylist([{c: row.get(c) for c in spec.columns} for row in rows], schema=schema)
    target = settings.paths.raw_partition(source, day.isoformat()) / f"{name}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    casts = ", ".join(f'cast("{c.name}" as {c.duckdb_type}) as "{c.name}"' for c in spec.columns.values())
    lineage = f"'{source}/{day.isoformat()}/{name}.parquet' as _source_file"
    con = duckdb.connect()
    try:
        con.register("rows_in", table)
        con.execute(
            f"copy (select {casts}, {lineage}, cast(row_number() over () as bigint) as _row_number from rows_in) "
            f"to '{target}' (format parquet)"
        )
    finally:
        con.close()
    return target


def good_rows(day: dt.date = DAY) -> dict[str, list[dict]]:
    """A clean day for every source."""
    return {
        "fx_rates": [{"rate_date": day, "from_currency": c, "to_currency": "EUR", "rate": r}
                     for c, r in (("GBP", 1.17), ("USD", 0.92))],
        "crm_customers": [
            {"customer_id": f"C0000000{i}", "email": f"p{i}@example.com", "phone": "+49 30 123", "first_name": "A",
             "last_name": "B", "birth_date": dt.date(1980 + i, 1, 1), "gender": "FMU"[i % 3], "country": "DE",
             "region": "BE", "city": "Berlin", "signup_at": at(8, dt.date(2024, 1, 1)),
             "loyalty_id": f"L00000000{i}", "marketing_opt_in": i % 2 == 0, "updated_at": at(8, day)}
            for i in range(1, 4)
        ],
        "orders": [
            {"order_id": "O0000000001", "customer_id": "C00000001", "ordered_at": at(9, day), "channel": "web",
             "status": "completed", "amount": 100.0, "currency": "EUR"},
            {"order_id": "O0000000002", "email": "guest@example.com", "ordered_at": at(10, day), "channel": "app",
             "status": "completed", "amount": 50.5, "currency": "EUR"},
            {"order_id": "O0000000003", "customer_id": "C00000002", "ordered_at": at(11, day), "channel": "store",
             "status": "cancelled", "amount": 20.0, "currency": "GBP"},
            {"order_id": "O0000000004", "customer_id": "C00000003", "ordered_at": at(12, day), "channel": "web",
             "status": "returned", "amount": 10.0, "currency": "USD"},
        ],
        "order_items": [
            {"order_id": "O0000000001", "line_no": 1, "sku": "SKU-00001", "category": "shoes", "quantity": 1,
             "unit_price": 60.0, "discount": 0.0},
            {"order_id": "O0000000001", "line_no": 2, "sku": "SKU-00002", "category": "socks", "quantity": 2,
             "unit_price": 20.0, "discount": 0.0},
            {"order_id": "O0000000002", "line_no": 1, "sku": "SKU-00003", "category": "bags", "quantity": 1,
             "unit_price": 55.0, "discount": 0.1},
        ],
        "events": [
            {"event_id": f"E00000000000{i}", "occurred_at": at(9 + i, day), "anonymous_id": "0123456789abcdef",
             "customer_id": "C00000001", "session_id": "s1", "event_type": event_type, "taxonomy_version": 1,
             "device_type": "desktop", "os": "linux", "country": "DE", "region": "BE", "page_url": "/p",
             "product_id": "P00001", "category": "shoes", "properties": '{"price": 60.0}'}
            for i, event_type in enumerate(["page_view", "product_view", "add_to_cart", "purchase"], start=1)
        ],
        "store_visits": [
            {"visit_id": f"V000000000{i}", "loyalty_id": "L000000001", "store_id": "S001", "visited_at": at(12, day),
             "dwell_minutes": 15.0, "purchase_amount": 0.0 if i == 1 else 35.0}
            for i in range(1, 3)
        ],
        "survey_responses": [
            {"response_id": "R0000000001", "customer_id": "C00000001", "answered_at": at(13, day),
             "question_id": "price_sensitivity", "answer": "4"},
            {"response_id": "R0000000001", "customer_id": "C00000001", "answered_at": at(13, day),
             "question_id": "preferred_channel", "answer": "web"},
        ],
    }


def previous_day_orders() -> list[dict]:
    """Orders landed the day before: O1 arrives again on DAY (completed wins over cancelled), O5 only here."""
    return [
        {"order_id": "O0000000001", "customer_id": "C00000001", "ordered_at": at(9, PREVIOUS_DAY), "channel": "web",
         "status": "cancelled", "amount": 100.0, "currency": "EUR"},
        {"order_id": "O0000000005", "customer_id": "C00000002", "ordered_at": at(15, PREVIOUS_DAY),
         "channel": "web", "status": None, "amount": 30.0, "currency": "EUR"},  # status NULL reads 'completed'
    ]


def write_lake(settings, rows: dict[str, list[dict]] | None = None, day: dt.date = DAY) -> None:
    for source, source_rows in (rows or good_rows(day)).items():
        if source_rows:
            write_partition(settings, source, day, source_rows)
    write_partition(settings, "orders", PREVIOUS_DAY, previous_day_orders())


def build_marts(settings, *, skip: tuple[str, ...] = (), sql: tuple[str, ...] = ()) -> None:
    """Marts consistent with write_lake(); `sql` statements run afterwards to break them on purpose."""
    statements = {
        "customers": """create or replace table marts.customers as select * from (values
            ('P1', 'C00000001'), ('P2', 'C00000002'), ('P3', 'C00000003'), ('P4', NULL), ('P5', NULL)
            ) t(person_id, customer_id)""",
        "customer_rfm": """create or replace table marts.customer_rfm as select * from (values
            ('P1', 5, 4, 5, 100.0), ('P2', 3, 2, 2, 30.0), ('P3', 1, 1, 1, 0.0), ('P4', 4, 3, 3, 50.5),
            ('P5', NULL, NULL, NULL, 0.0)) t(person_id, r_score, f_score, m_score, monetary)""",
        "orders": """create or replace table marts.orders as select * from (values
            ('O0000000001', 'P1', 'completed', 100.0, 'EUR'), ('O0000000002', 'P4', 'completed', 50.5, 'EUR'),
            ('O0000000003', 'P2', 'cancelled', 20.0, 'GBP'), ('O0000000004', 'P3', 'returned', 10.0, 'USD'),
            ('O0000000005', 'P2', 'completed', 30.0, 'EUR')) t(order_id, person_id, status, amount, currency)""",
        "customer_features": """create or replace table marts.customer_features as
            select person_id, 1.0 as frequency from marts.customers""",
        "customer_behaviour_features": f"""create or replace table marts.customer_behaviour_features as
            select person_id, DATE '{DAY.isoformat()}' as as_of_date, 0 as orders_30d from marts.customers""",
    }
    with warehouse.connect(settings) as con:
        con.execute("create schema if not exists marts")
        for name, statement in statements.items():
            if name not in skip:
                con.execute(statement)
        for statement in sql:
            con.execute(statement)


def build_assignments(settings, *, day: dt.date = DAY, sql: tuple[str, ...] = (), lens: str = "profile") -> None:
    """Five people in three segments (shares 0.4, 0.4, 0.2) of lens `lens`, as ml/assign.py writes them."""
    with warehouse.connect(settings) as con:
        con.execute("create schema if not exists ml_stage")
        con.execute(f"""create or replace table ml_stage.customer_assignments as
            select '{lens}' as segmentation, person_id, customer_id, segment_id, segment_name, DATE '{day.isoformat()}' as as_of_date,
                   '3' as model_version, distance_to_centroid
            from (values ('P1', 'C00000001', 0, 'Loyal', 0.5), ('P2', 'C00000002', 0, 'Loyal', 0.7),
                         ('P3', 'C00000003', 1, 'Browsers', 1.1), ('P4', NULL, 1, 'Browsers', 0.9),
                         ('P5', NULL, 2, 'Bargain', 0.3))
                 t(person_id, customer_id, segment_id, segment_name, distance_to_centroid)""")
        # the model's segments, as ml/assign.py writes them next to the assignments
        con.execute(f"""create or replace table ml_stage.segment_profiles as
            select '{lens}' as segmentation, segment_id, segment_name, size, size / 5 as share, '[]' as top_features, '3' as model_version,
                   DATE '{day.isoformat()}' as as_of_date
            from (values (0, 'Loyal', 2), (1, 'Browsers', 2), (2, 'Bargain', 1)) t(segment_id, segment_name, size)""")
        for statement in sql:
            con.execute(statement)


def failed(result) -> dict[tuple[str, str], str]:
    """{(suite, key): severity} of the failed expectations."""
    return {(r.suite, r.key): r.severity for r in result.expectations if not r.success}


def row(result, suite: str, key: str):
    matches = [r for r in result.expectations if r.suite == suite and r.key == key]
    assert len(matches) == 1, f"{suite} {key}: {len(matches)} rows"
    return matches[0]
