"""The triggers key people by the published, gated identity graph marts.identities (emails only keyed there, as
HMAC-SHA256 with the deployment's key), never by dbt's intermediate tables."""

from __future__ import annotations

import datetime as dt

import duckdb

from seg.core.warehouse import configure
from seg.triggers import sessions, sql, tables
from tests.triggers.conftest import END

AT = dt.datetime.combine(END + dt.timedelta(days=1), dt.time())


def test_the_published_identities_hold_no_clear_text_email(trigger_lake):
    con = duckdb.connect(str(trigger_lake.paths.warehouse), read_only=True)
    try:
        types = dict(con.execute("select identifier_type, count(*) from marts.identities group by 1").fetchall())
        clear = con.execute("select count(*) from marts.identities where identifier_value like '%@%'").fetchone()[0]
    finally:
        con.close()
    assert set(types) == {"customer_id", "email_hmac", "loyalty_id", "anonymous_id"} and clear == 0


def test_orders_and_events_resolve_through_marts_identities_alone(lake_copy):
    con = configure(duckdb.connect(str(lake_copy.paths.warehouse)), lake_copy)
    try:
        con.execute("drop schema intermediate cascade")  # what the triggers read must be published
        con.execute("drop schema staging cascade")
        sql.prepare(con, lake_copy.paths, AT, AT - dt.timedelta(days=20), sessions.gap(lake_copy))
        orders = sql._lake(lake_copy.paths, "orders", None, AT.date())
        guests = con.execute(f"""
            select count(*), count(*) filter (where o.member_key like 'email%:%'),
                   count(*) filter (where o.member_key = i.person_id)
            from ord o
            join (select order_id, nullif(lower(trim(email)), '') as email from {orders} where customer_id is null) g
                using (order_id)
            left join marts.identities i on i.identifier_type = 'email_hmac'
                and i.identifier_value = {tables.pii_hmac('g.email')}
        """).fetchone()
        events = con.execute("select count(*), count(*) filter (where member_key = person_id) from ev").fetchone()
    finally:
        con.close()
    n_guest, by_email_key, by_person = guests
    assert n_guest > 0 and by_email_key == 0 and by_person == n_guest  # guest checkouts: the person of their email
    assert events[1] > 0.5 * events[0]  # most events belong to a known person
