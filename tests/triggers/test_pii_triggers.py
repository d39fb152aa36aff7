"""The trigger tables and Redis hold no email or phone, in clear or unkeyed: a guest the identity graph does not
know yet is keyed by the HMAC of the normalised email, exactly marts.identities' key for that email (so the
member keeps one key once dbt has seen them), lapsing's activity cache keeps only that HMAC, and tables of
earlier runs with clear-text member keys are re-keyed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re

import duckdb
import pytest

from seg.core.warehouse import configure
from seg.triggers import definitions, sessions, sql, tables
from seg.triggers import redis as trigger_redis
from seg.triggers.batch import evaluate_and_write
from tests.dbt.test_pii_marts import TOKEN, leaks, personal_tokens
from tests.triggers.conftest import END, REDIS_URL

AT = dt.datetime.combine(END + dt.timedelta(days=1), dt.time())


def _hmac(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def _forget_emails(settings) -> None:
    """The identity graph has not seen the lake's emails yet (as for guests who ordered since dbt last ran)."""
    con = duckdb.connect(str(settings.paths.warehouse))
    try:
        con.execute("delete from marts.identities where identifier_type like 'email%'")
    finally:
        con.close()


def _redis_tokens(r, prefix: str) -> list[str]:
    """Every key name, member, field and value under the prefix, as text."""
    out = []
    for key in r.scan_iter(f"{prefix}:*", count=10_000):
        out.append(key.decode())
        kind = r.type(key).decode()
        if kind == "string":
            out.append(r.get(key).decode())
        elif kind == "set":
            out += [m.decode() for m in r.smembers(key)]
        elif kind == "hash":
            out += [x.decode() for kv in r.hgetall(key).items() for x in kv]
        elif kind == "list":
            out += [m.decode() for m in r.lrange(key, 0, -1)]
        elif kind == "stream":
            out += [x.decode() for _, fields in r.xrange(key) for kv in fields.items() for x in kv]
    return out


def test_no_email_or_phone_in_the_trigger_tables_or_redis_when_guests_are_unresolved(lake_copy, cfg):
    _forget_emails(lake_copy)
    evaluate_and_write(lake_copy, AT, cfg, since=AT - dt.timedelta(days=60))
    con = duckdb.connect(str(lake_copy.paths.warehouse), read_only=True)
    try:
        found = leaks(con, lake_copy.paths.raw)
        email_keyed = con.execute(f"select count(*) from {tables.ACTIVITY_CACHE} "
                                  "where source = 'orders' and customer_id is null").fetchone()[0]
    finally:
        con.close()
    assert found == {}
    assert email_keyed > 0  # guest orders are in the cache, by their keyed email

    trigger_redis.publish_redis(lake_copy, AT, cfg, url=REDIS_URL)
    import redis

    tokens = personal_tokens(lake_copy.paths.raw)
    published = _redis_tokens(redis.Redis.from_url(REDIS_URL), cfg.redis_prefix)
    assert len(published) > 100
    leaked = sorted({piece for text in published for piece in re.findall(TOKEN, text.lower()) if piece in tokens})
    assert leaked == []


def test_a_guest_email_keys_the_member_as_marts_identities_does(lake_copy):
    key = lake_copy.pii_key
    con = configure(duckdb.connect(str(lake_copy.paths.warehouse)), lake_copy)
    try:
        orders = sql._lake(lake_copy.paths, "orders", None, AT.date())
        guest = con.execute(f"select nullif(lower(trim(email)), '') from {orders} where customer_id is null "
                            "and email is not null and ordered_at > ? order by order_id limit 1",
                            [AT - dt.timedelta(days=20)]).fetchone()[0]
        digest = _hmac(key, guest)
        (identifier_key, person_id) = con.execute("select identifier_key, person_id from marts.identities "
                                                  "where identifier_value = ?", [digest]).fetchone()
        assert identifier_key == f"email_hmac:{digest}"
        sql.prepare(con, lake_copy.paths, AT, AT - dt.timedelta(days=20), sessions.gap(lake_copy))
        known = {r[0] for r in con.execute(f"select distinct o.member_key from ord o join {orders} x using (order_id) "
                                           "where nullif(lower(trim(x.email)), '') = ? and x.customer_id is null",
                                           [guest]).fetchall()}
        assert known == {person_id}  # the identity graph knows the guest: their person
        con.execute("delete from marts.identities where identifier_value = ?", [digest])  # not (yet) known
        sql.prepare(con, lake_copy.paths, AT, AT - dt.timedelta(days=20), sessions.gap(lake_copy))
        unknown = {r[0] for r in con.execute(f"select distinct o.member_key from ord o join {orders} x using (order_id) "
                                             "where nullif(lower(trim(x.email)), '') = ? and x.customer_id is null",
                                             [guest]).fetchall()}
    finally:
        con.close()
    assert unknown == {identifier_key}


def test_the_triggers_hash_as_pythons_hmac_for_any_key():
    con = duckdb.connect()
    try:
        for key in ("k" * 16, "a-longer-key-" * 8, "ünï-cödé-key-0123456789", "1234567890123456"):
            con.execute(f"set variable {tables.PII_KEY_VARIABLE} = ?", [key])
            for value in ("anna@example.com", "+491701234567", "a'b\\x41@ex.com", ""):
                assert con.execute(f"select {tables.pii_hmac('?')}", [value]).fetchone()[0] == _hmac(key, value)
    finally:
        con.close()


def test_hashing_without_the_key_fails_instead_of_hashing_to_null():
    con = duckdb.connect()
    try:
        with pytest.raises(duckdb.Error, match=tables.PII_KEY_VARIABLE):
            con.execute(f"select {tables.pii_hmac('?')}", ["anna@example.com"]).fetchall()
    finally:
        con.close()


def test_an_activity_cache_of_clear_emails_or_another_key_is_rebuilt(lake_copy, monkeypatch):
    activity = sql.activity_sources(lake_copy.paths, definitions.load())
    con = configure(duckdb.connect(str(lake_copy.paths.warehouse)), lake_copy)
    try:
        # the layout of earlier versions: the normalised email in clear
        con.execute("create schema if not exists triggers")
        con.execute(f"create table {tables.ACTIVITY_CACHE} (source varchar, ingest_date date, customer_id varchar, "
                    "anonymous_id varchar, email varchar, loyalty_id varchar, last_at timestamp, orders bigint, "
                    "first_order_at timestamp)")
        con.execute(f"insert into {tables.ACTIVITY_CACHE} values ('orders', date '2026-10-10', null, null, "
                    "'guest@example.com', null, timestamp '2026-10-10 10:00:00', 1, timestamp '2026-10-10 10:00:00')")
        con.execute(f"create table {tables.ACTIVITY_CACHE_PARTITIONS} (source varchar, ingest_date date, signature varchar)")
        tables.refresh_activity_cache(con, lake_copy.paths, activity, AT)
        columns = {r[0] for r in con.execute(f"describe {tables.ACTIVITY_CACHE}").fetchall()}
        assert "email" not in columns and "email_hmac" in columns
        assert con.execute(f"select count(*) from {tables.ACTIVITY_CACHE} where email_hmac like '%@%'").fetchone()[0] == 0
        before = con.execute(f"select min(email_hmac) from {tables.ACTIVITY_CACHE} where email_hmac is not null").fetchone()[0]
        # a new key (SEG_PII_KEY set on the service): every cached day is aggregated again under it
        monkeypatch.setenv("SEG_PII_KEY", "the-rotated-service-key-0123456789")
        tables.refresh_activity_cache(con, lake_copy.paths, activity, AT)
        after = {r[0] for r in con.execute(f"select distinct email_hmac from {tables.ACTIVITY_CACHE}").fetchall()}
    finally:
        con.close()
    assert before not in after and len(after) > 1


def test_clear_email_member_keys_of_earlier_runs_are_rekeyed(lake_copy, cfg):
    evaluate_and_write(lake_copy, AT, cfg)
    old = "email:old.guest@example.com"
    con = duckdb.connect(str(lake_copy.paths.warehouse))
    try:
        # rows as earlier versions wrote them: a guest keyed by the normalised email in clear (a closed lapse)
        con.execute(f"""
            insert into {tables.HISTORY}
            select * replace ('old-occurrence' as occurrence_id, 'lapsing' as trigger, '{old}' as member_key,
                              null as person_id, null as customer_id, null as anonymous_id,
                              anchor_at - interval 60 day as anchor_at, entered_at - interval 60 day as entered_at,
                              entered_at - interval 59 day as exited_at, 'expired' as exit_reason)
            from {tables.HISTORY} limit 1
        """)
        con.execute(f"insert into {tables.CHANGES} select * replace ('{old}' as member_key, 'old-occurrence' as "
                    f"occurrence_id, null as person_id) from {tables.CHANGES} limit 1")
    finally:
        con.close()
    evaluate_and_write(lake_copy, AT + dt.timedelta(minutes=15), cfg)
    expected = f"email_hmac:{_hmac(lake_copy.pii_key, 'old.guest@example.com')}"
    con = duckdb.connect(str(lake_copy.paths.warehouse), read_only=True)
    try:
        clear = {t: con.execute(f"select count(*) from {t} where member_key like 'email:%' or member_key like '%@%'")
                 .fetchone()[0] for t in (tables.HISTORY, tables.CHANGES, tables.CURRENT)}
        # with the id an evaluation gives the re-keyed member (md5 of trigger, member key and anchor)
        history = con.execute(f"select occurrence_id, md5('lapsing|' || member_key || '|' || cast(anchor_at as varchar)) "
                              f"from {tables.HISTORY} where member_key = ?", [expected]).fetchall()
        changes = con.execute(f"select occurrence_id from {tables.CHANGES} where member_key = ?", [expected]).fetchall()
    finally:
        con.close()
    assert clear == dict.fromkeys(clear, 0)
    [(occurrence_id, evaluated_id)] = history
    assert occurrence_id == evaluated_id and changes == [(occurrence_id,)]
