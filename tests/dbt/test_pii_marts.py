"""Personal identifiers leave marts.customers only as keyed hashes (HMAC-SHA256 with the deployment's key,
Settings.pii_key), and the key itself is in no dbt log, artifact or warehouse file.

`leaks` is shared with tests/triggers/test_pii_triggers.py: it scans every text column of every table and view
(outside dbt's working layers staging/intermediate and outside marts.customers) for the lake's emails and phones,
in clear or as an unkeyed digest (sha256, md5, md5 of 'email:<address>', the old guest person id).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import duckdb

from seg.core import config

# dbt's working layers hold identifiers before hashing (identity resolution needs them); marts.customers is the
# customer mart and keeps its matching hashes (unkeyed SHA-256, what ad platforms match audiences on)
INTERNAL_SCHEMAS = ("staging", "intermediate")
ALLOWED = {"marts.customers"}
# pieces of a text value: identifiers sit between these (member keys 'email:..', JSON, lists, key=value)
TOKEN = r"""[^\s:"'|,;{}\[\]=()]+"""
PERSONAL = (("crm_customers", ("email", "phone")), ("orders", ("email",)), ("survey_responses", ("email",)))


def _digests(value: str) -> dict[str, str]:
    return {hashlib.sha256(value.encode()).hexdigest(): "sha256", hashlib.md5(value.encode()).hexdigest(): "md5",
            hashlib.md5(f"email:{value}".encode()).hexdigest(): "md5 of the email key"}


def personal_tokens(raw: Path) -> dict[str, str]:
    """token -> what it is: every email and phone of the landed lake (as landed, normalised as dbt normalises
    them, phones also without the +) and their unkeyed digests."""
    con = duckdb.connect()
    values: set[str] = set()
    try:
        for source, columns in PERSONAL:
            if not any((raw / source).glob("ingest_date=*/*.parquet")):
                continue
            relation = f"read_parquet('{raw / source}/ingest_date=*/*.parquet', union_by_name = true)"
            present = {r[0] for r in con.execute(f"describe select * from {relation}").fetchall()}
            for column in (c for c in columns if c in present):
                values |= {r[0] for r in con.execute(f"select distinct {column} from {relation} "
                                                      f"where {column} is not null").fetchall()}
    finally:
        con.close()
    tokens: dict[str, str] = {}
    for value in values:
        kind = "email" if "@" in value else "phone"
        forms = {value.strip().lower()} if kind == "email" else {
            re.sub(r"[^0-9+]", "", value.strip()), re.sub(r"[^0-9]", "", value)}
        for form in (f for f in forms if len(f) >= 6):
            tokens[form] = kind
            tokens.update(_digests(form))
    return tokens


def leaks(con: duckdb.DuckDBPyConnection, raw: Path, allowed: set[str] = ALLOWED) -> dict[str, tuple[str, int]]:
    """{schema.table.column: (what leaks, rows)} for every text column holding a personal token."""
    tokens = personal_tokens(raw)
    assert tokens, "the lake holds no email or phone: nothing to look for"
    con.execute("create or replace temp table pii_tokens (token varchar, kind varchar)")
    con.executemany("insert into pii_tokens values (?, ?)", list(tokens.items()))
    catalog = con.execute("select current_database()").fetchone()[0]
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_catalog = ? and data_type in ('VARCHAR', 'JSON') and table_schema not in (?, ?) order by all",
        [catalog, *INTERNAL_SCHEMAS]).fetchall()
    pattern = TOKEN.replace("'", "''")
    found = {}
    for schema, table, column in columns:
        if f"{schema}.{table}" in allowed:
            continue
        hit = con.execute(f"""
            select list(distinct p.kind order by p.kind), count(*)
            from (select unnest(regexp_extract_all(lower(cast("{column}" as varchar)), '{pattern}')) as token
                  from "{schema}"."{table}") v
            join temp.main.pii_tokens p using (token)
        """).fetchone()
        if hit[1]:
            found[f"{schema}.{table}.{column}"] = (", ".join(hit[0]), hit[1])
    return found


def _hmac(key: str, value: str) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_no_email_or_phone_in_clear_or_unkeyed_hash_in_the_marts_outside_customers(full_lake):
    settings, _ = full_lake
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        found = leaks(con, settings.paths.raw)
    finally:
        con.close()
    assert found == {}


def test_identities_key_an_email_by_its_hmac_with_the_deployment_key(full_lake, full_query):
    settings, _ = full_lake
    dan = _hmac(settings.pii_key, "dan@example.com")  # a guest: orders only, no customer id
    assert full_query("select identifier_key, identifier_type from marts.identities where identifier_value = ?",
                      [dan]) == [(f"email_hmac:{dan}", "email_hmac")]
    types = {r[0] for r in full_query("select distinct identifier_type from marts.identities")}
    assert types == {"customer_id", "email_hmac", "loyalty_id", "anonymous_id"}


def test_a_person_known_only_by_an_email_gets_a_keyed_person_id(full_lake, full_query):
    settings, _ = full_lake
    (person_id,) = full_query("select distinct person_id from marts.identities where identifier_value = ?",
                              [_hmac(settings.pii_key, "dan@example.com")])[0]
    assert person_id == _hmac(settings.pii_key, "email:dan@example.com")[:32]
    assert person_id != hashlib.md5(b"email:dan@example.com").hexdigest()
    # people with a CRM record keep their id (md5 of their customer id key): segment history stays continuous
    (anna,) = full_query("select person_id from marts.identities where identifier_key = 'customer_id:C00000001'")[0]
    assert anna == hashlib.md5(b"customer_id:C00000001").hexdigest()


def test_the_customer_mart_keeps_its_matching_hashes(full_query):
    # unkeyed SHA-256 of the normalised email / phone: the form audience matching takes (and tests/dbt asserts)
    rows = full_query("select email_sha256 from marts.customers where customer_id = 'C00000001'")
    assert rows == [(hashlib.sha256(b"anna@example.com").hexdigest(),)]


def test_another_data_directory_hashes_the_same_email_differently(full_lake, orders_only_lake, query_for):
    (full, _), (other, _) = full_lake, orders_only_lake
    assert full.pii_key != other.pii_key
    hashed = {}
    for settings in (full, other):
        with query_for(settings) as query:
            hashed[settings.paths.root] = {r[0] for r in query(
                "select identifier_value from marts.identities where identifier_type = 'email_hmac'")}
            assert _hmac(settings.pii_key, "dan@example.com") in hashed[settings.paths.root]
    assert not hashed[full.paths.root] & hashed[other.paths.root]


def test_the_key_is_in_no_dbt_log_artifact_or_warehouse_file(full_lake):
    settings, _ = full_lake
    key = settings.pii_key.encode()
    key_file = settings.paths.root / config.PII_KEY_FILE
    holding = [str(p.relative_to(settings.paths.root)) for p in settings.paths.root.rglob("*")
               if p.is_file() and p != key_file and key in p.read_bytes()]
    assert holding == []
    assert (settings.paths.root / "dbt" / "logs" / "dbt.log").stat().st_size > 0  # dbt did log (at debug)


def test_dbt_refuses_to_run_without_the_key_and_never_shows_it():
    import pytest

    from seg.transform.dbt_pii import Plugin

    with pytest.raises(ValueError, match="seg.transform.dbt"):
        Plugin("dbt_pii", {})
    plugin = Plugin("dbt_pii", {"key": "a-key-of-sixteen-or-more"})
    assert "a-key-of-sixteen-or-more" not in repr(plugin)
