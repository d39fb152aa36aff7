"""The dbt project built for real on the fixture lakes (see fixture_lake.py for the people in it)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json

import pytest

from seg.core import config
from seg.transform import dbt as seg_dbt
from tests.dbt import fixture_lake as lake
from tests.dbt.conftest import EARLIER

MARTS = ("customers", "orders", "sessions", "customer_rfm", "customer_features")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def person_of(query, customer_id: str | None = None, email: str | None = None) -> str:
    sql = "select person_id from intermediate.int_identities_resolved where identifier_key = ?"
    key = f"customer_id:{customer_id}" if customer_id else f"email:{email}"
    rows = query(sql, [key])
    assert rows, f"no identity for {key}"
    return rows[0][0]


# --- the build itself --------------------------------------------------------------------------------------


def test_full_build_is_green_with_unit_and_data_tests(full_lake):
    _, summaries = full_lake
    core, features = summaries["core"], summaries["features"]
    assert core["success"] and features["success"]
    assert set(core["status_counts"]) <= {"success", "pass"}, core["status_counts"]
    assert core["by_resource_type"]["unit_test"]["pass"] >= 5
    assert core["by_resource_type"]["model"]["success"] >= 19
    assert core["by_resource_type"]["test"]["pass"] > 100
    # the features step builds exactly the tagged models (customer_features, customer_behaviour_features and
    # their histories) and their tests
    assert features["by_resource_type"]["model"] == {"success": 4}


def test_layers_land_in_their_own_schemas(full_query):
    rows = full_query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('staging', 'intermediate', 'marts')"
    )
    by_schema = {}
    for schema, table in rows:
        by_schema.setdefault(schema, set()).add(table)
    assert set(MARTS) <= by_schema["marts"]
    assert {"int_identities_resolved", "int_identity_edges_rejected"} <= by_schema["intermediate"]
    assert {"stg_lake__orders", "rfm_segments"} <= by_schema["staging"]


def test_customer_features_has_every_feature_the_model_reads(full_query):
    columns = {r[0] for r in full_query("select column_name from (describe marts.customer_features)")}
    wanted = set(config.load().ml.features) | {"person_id", "customer_id", "as_of_date"}
    assert wanted <= columns, wanted - columns


def test_one_feature_row_per_customer(full_query):
    assert full_query("select count(*) from marts.customer_features") == full_query(
        "select count(*) from marts.customers"
    )


# --- identity ----------------------------------------------------------------------------------------------


def test_identity_merges_email_variant_records_and_login_device_but_not_the_shared_tablet(full_query):
    anna = person_of(full_query, lake.ANNA_1)
    assert person_of(full_query, lake.ANNA_2) == anna  # '  Anna@Example.COM ' == 'anna@example.com'
    assert person_of(full_query, email="anna@example.com") == anna  # her guest order
    devices = dict(
        full_query(
            "select identifier_value, person_id from intermediate.int_identities_resolved where identifier_type = 'anonymous_id'"
        )
    )
    assert devices[lake.ANNA_PHONE] == anna
    ben, cara = person_of(full_query, lake.BEN), person_of(full_query, lake.CARA)
    assert ben != cara
    assert devices[lake.FAMILY_TABLET] not in {ben, cara}  # the tablet is a person of its own (a visitor)
    rejected = full_query(
        "select customer_id, identifier_value, rejection_reason from intermediate.int_identity_edges_rejected order by customer_id"
    )
    assert [(c, v) for c, v, _ in rejected] == [(lake.BEN, lake.FAMILY_TABLET), (lake.CARA, lake.FAMILY_TABLET)]
    assert all("2 persons" in reason for *_, reason in rejected)


def test_customers_are_known_persons_with_hashed_pii_and_latest_crm_demographics(full_query):
    rows = full_query(
        "select customer_id, customer_id_count, anonymous_id_count, email_sha256, phone_sha256, city, country, "
        "is_marketing_opt_in from marts.customers order by customer_id nulls last"
    )
    by_id = {r[0]: r for r in rows}
    assert set(by_id) == {lake.ANNA_1, lake.BEN, lake.CARA, lake.EVE, None}  # None: Dan, guest only
    anna = by_id[lake.ANNA_1]
    assert anna[1] == 2 and anna[2] == 1
    assert anna[3] == sha256("anna@example.com") and anna[4] == sha256("+491701234567")
    assert anna[5] == "Hamburg" and anna[7] is True  # from her latest record (03-10)
    assert by_id[None][3] == sha256("dan@example.com")
    # no clear-text PII in the customers mart
    text = repr(rows)
    assert "@" not in text and "1701234567" not in text
    # the never-logged-in visitor and the family tablet are not customers
    assert len(rows) == 5


def test_sessions_follow_the_login_on_the_shared_tablet(full_query):
    ben, cara = person_of(full_query, lake.BEN), person_of(full_query, lake.CARA)
    rows = full_query(
        "select session_date, person_id, event_count from marts.sessions where anonymous_id = ? order by started_at",
        [lake.FAMILY_TABLET],
    )
    assert rows == [(dt.date(2025, 3, 10), ben, 2), (dt.date(2025, 3, 11), cara, 3)]


# --- time ----------------------------------------------------------------------------------------------------


def test_nothing_after_the_as_of_date_leaks_into_any_model(full_query):
    end = dt.datetime.fromisoformat(lake.AS_OF) + dt.timedelta(days=1)
    checks = {
        "staging.stg_lake__orders": "ordered_at",
        "staging.stg_lake__events": "occurred_at",
        "staging.stg_lake__crm_customers": "updated_at",
        "staging.stg_lake__store_visits": "visited_at",
        "staging.stg_lake__survey_responses": "answered_at",
        "marts.orders": "ordered_at",
        "marts.sessions": "ended_at",
        "marts.customers": "last_seen_at",
        "intermediate.int_identity_edges_collected": "last_observed_at",
    }
    for table, column in checks.items():
        latest = full_query(f"select max({column}) from {table}")[0][0]
        assert latest < end, f"{table}.{column} = {latest}"
    order_ids = {r[0] for r in full_query("select order_id from marts.orders")}
    assert "O0000000011" in order_ids  # 23:59:59 on the as-of day counts
    assert not {"O0000000013", "O0000000014"} & order_ids  # after the end of the day
    assert full_query("select max(ingest_date) from staging.stg_lake__order_items")[0][0] <= dt.date.fromisoformat(
        lake.AS_OF
    )
    cara = full_query("select country from marts.customers where customer_id = ?", [lake.CARA])
    assert cara == [("DE",)]  # her 04-01 CRM update is not visible
    anna = person_of(full_query, lake.ANNA_1)
    visits = full_query(
        "select store_visit_count, store_spend from marts.customer_features where person_id = ?", [anna]
    )
    assert visits == [(2, 35.0)]  # the 04-01 visit (500 EUR) is not counted


def test_a_rebuild_for_an_earlier_date_sees_the_lake_as_it_was(earlier_lake, query_for):
    with query_for(earlier_lake[0]) as query:
        anna = person_of(query, lake.ANNA_1)
        assert person_of(query, lake.ANNA_2) == anna
        # latest CRM record by 03-09 is her second one (03-02); the 03-10 update of the first is not there yet
        assert query("select city from marts.customers where person_id = ?", [anna]) == [("Potsdam",)]
        assert query("select frequency, monetary from marts.customer_features where person_id = ?", [anna]) == [
            (1, 100.0)
        ]
        assert query("select max(as_of_date) from marts.customer_features") == [(dt.date(2025, 3, 9),)]


SESSIONIZED = (
    "select event_id, session_id, device_session_number, is_session_start, session_customer_id, session_started_at "
    "from intermediate.int_events_sessionized order by event_id"
)


def test_incremental_sessions_equal_a_full_rebuild_with_late_events_and_backfills(
    tmp_path_factory, full_lake, earlier_lake, query_for
):
    root = tmp_path_factory.mktemp("incremental")
    lake.write_lake(root)
    settings = config.load(root)
    select = "+int_events_sessionized"
    # 03-26: Ben's 09:20 event has not landed yet (it lands 03-28)
    seg_dbt.build(settings, "2025-03-26", select=select)
    with query_for(settings) as query:
        ben = query(
            "select count(*), count(distinct session_id) from intermediate.int_events_sessionized where anonymous_id = ?",
            [lake.BEN_PHONE],
        )
        assert ben == [(2, 1)]
    # 03-31 incrementally: the late event joins its session; the result equals a full build as of 03-31
    summary = seg_dbt.build(settings, lake.AS_OF, select=select)
    assert summary["success"]
    with query_for(settings) as query, query_for(full_lake[0]) as full:
        assert query(SESSIONIZED) == full(SESSIONIZED)
        ben = query(
            "select count(*), count(distinct session_id) from intermediate.int_events_sessionized where anonymous_id = ?",
            [lake.BEN_PHONE],
        )
        assert ben == [(3, 1)]
    # back to 03-09 incrementally: the stored future is dropped, equal to a full build as of 03-09
    seg_dbt.build(settings, EARLIER, select=select)
    with query_for(settings) as query, query_for(earlier_lake[0]) as earlier:
        assert query(SESSIONIZED) == earlier(SESSIONIZED)


# --- RFM -------------------------------------------------------------------------------------------------------


def _ntile(ordered: list[str], buckets: int = 5) -> dict[str, int]:
    """SQL ntile(): the first len % buckets groups get one row more."""
    n = len(ordered)
    size, extra = divmod(n, buckets)
    out, i = {}, 0
    for bucket in range(1, buckets + 1):
        for _ in range(size + (1 if bucket <= extra else 0)):
            out[ordered[i]] = bucket
            i += 1
    return out


def test_rfm_matches_a_hand_computation(full_query):
    # the conversion rule, by hand: the latest rate to EUR dated on or before the order date, at most 7 days old
    def rate(currency: str, day: dt.date) -> float:
        if currency == "EUR":
            return 1.0
        usable = [r for r in lake.FX_RATES if r["from_currency"] == currency and r["to_currency"] == "EUR"
                  and 0 <= (day - dt.date.fromisoformat(r["rate_date"])).days <= 7]
        return float(max(usable, key=lambda r: r["rate_date"])["rate"])

    segments = {
        (int(r["r_score"]), int(r["fm_score"])): r["rfm_segment"]
        for r in csv.DictReader(open(seg_dbt.PROJECT_DIR / "seeds" / "rfm_segments.csv"))
    }
    owner = {
        lake.ANNA_1: "anna",
        lake.ANNA_2: "anna",
        "anna@example.com": "anna",
        lake.BEN: "ben",
        lake.CARA: "cara",
        "dan@example.com": "dan",
    }
    as_of = dt.date.fromisoformat(lake.AS_OF)
    end = dt.datetime.fromisoformat(lake.AS_OF) + dt.timedelta(days=1)
    seen, stats = set(), {}
    for order in lake.ORDERS:
        at = dt.datetime.fromisoformat(order["ordered_at"])
        if order["order_id"] in seen or order["status"] != "completed" or at >= end:
            continue
        seen.add(order["order_id"])
        who = owner[order["customer_id"] or order["email"].strip().lower()]
        s = stats.setdefault(who, {"last": at.date(), "frequency": 0, "monetary": 0.0})
        s["last"] = max(s["last"], at.date())
        s["frequency"] += 1
        s["monetary"] += round(order["amount"] * rate(order["currency"], at.date()), 2)
    assert stats["anna"] == {"last": dt.date(2025, 3, 20), "frequency": 3, "monetary": pytest.approx(176.0)}
    for s in stats.values():
        s["recency_days"] = (as_of - s["last"]).days
    # this lake has no ties, so the tiebreaker (person_id) does not matter
    r = _ntile(sorted(stats, key=lambda p: -stats[p]["recency_days"]))
    f = _ntile(sorted(stats, key=lambda p: stats[p]["frequency"]))
    m = _ntile(sorted(stats, key=lambda p: stats[p]["monetary"]))
    person = {
        "anna": person_of(full_query, lake.ANNA_1),
        "ben": person_of(full_query, lake.BEN),
        "cara": person_of(full_query, lake.CARA),
        "dan": person_of(full_query, email="dan@example.com"),
    }
    rows = full_query(
        "select person_id, recency_days, frequency, monetary, r_score, f_score, m_score, rfm_segment from marts.customer_rfm"
    )
    actual = {r_[0]: r_[1:] for r_ in rows}
    assert set(actual) == set(person.values())  # Eve has no order: not scored
    for who, pid in person.items():
        s = stats[who]
        fm = -(-(f[who] + m[who]) // 2)
        expected = (
            s["recency_days"],
            s["frequency"],
            pytest.approx(s["monetary"]),
            r[who],
            f[who],
            m[who],
            segments[(r[who], fm)],
        )
        assert actual[pid] == expected, who
    eve = person_of(full_query, lake.EVE)
    assert full_query(
        "select recency_days, frequency, monetary from marts.customer_features where person_id = ?", [eve]
    ) == [(None, 0, 0.0)]


def test_features_of_present_sources_are_counted(full_query):
    anna = person_of(full_query, lake.ANNA_1)
    row = full_query(
        "select event_count, session_count, product_view_count, add_to_cart_count, cart_abandonment_rate, "
        "web_order_share, app_order_share, discount_share, price_sensitivity, brand_loyalty "
        "from marts.customer_features where person_id = ?",
        [anna],
    )[0]
    # 8 events in 2 sessions on her phone; 1 of 2 cart sessions bought; 2 web + 1 app orders;
    # 10 EUR discount on 100 + 50 + 40 gross; survey 4 / 2
    assert row[:5] == (8, 2, 2, 2, 0.5)
    # ratios are rounded to var ratio_decimals (6) places, so they compare exactly
    assert row[5:7] == (round(2 / 3, 6), round(1 / 3, 6))
    assert row[7] == round(10 / 190, 6)
    assert row[8:] == (4, 2)
    eve = person_of(full_query, lake.EVE)
    assert full_query(
        "select price_sensitivity, sustainability_interest from marts.customer_features where person_id = ?", [eve]
    ) == [(1, 5)]


# --- absent sources ------------------------------------------------------------------------------------------


def test_a_lake_with_only_orders_builds_with_null_features_for_the_absent_sources(orders_only_lake, orders_only_query):
    _, summaries = orders_only_lake
    assert set(summaries["core"]["status_counts"]) <= {"success", "pass"}
    available = dict(orders_only_query("select source_name, is_available from intermediate.int_sources_summarised"))
    assert available == {
        "crm_customers": False,
        "orders": True,
        "order_items": False,
        "events": False,
        "store_visits": False,
        "survey_responses": False,
    }
    absent = [
        "discount_share",
        "store_visit_count",
        "store_spend",
        "event_count",
        "session_count",
        "product_view_count",
        "add_to_cart_count",
        "cart_abandonment_rate",
        "price_sensitivity",
        "brand_loyalty",
        "tenure_days",
    ]
    nonnull = orders_only_query(
        "select " + ", ".join(f"count({c})" for c in absent) + ", count(*), count(frequency), count(web_order_share) "
        "from marts.customer_features"
    )[0]
    assert nonnull[: len(absent)] == (0,) * len(absent)
    n = nonnull[len(absent)]
    assert n > 0 and nonnull[-2:] == (n, n)  # order features are there for everyone who ordered
    # without the CRM, identities come from the orders alone
    assert orders_only_query("select count(*) from marts.customers where has_crm_record") == [(0,)]


def test_a_failing_data_test_raises_naming_the_node(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv(seg_dbt.VERBOSE_ENV, raising=False)  # dbt's default, quiet console
    # a currency without a rate: landing would have quarantined it; written straight into the lake, dbt refuses it
    rows = [dict(lake.ORDERS[0], currency="CHF")]
    lake.write_source(tmp_path, "orders", rows)
    config.write_deployment(tmp_path, {"reporting_currency": "EUR"}, "")
    settings = config.load(tmp_path)
    with pytest.raises(seg_dbt.DbtError) as caught:
        seg_dbt.build(settings, lake.AS_OF, exclude="tag:features")
    message = str(caught.value)
    assert "not_null_int_orders_attributed_amount_reporting" in message
    assert any(f["status"] == "fail" for f in caught.value.failures)
    # the quiet console still shows the failure and the closing stats line, but no per-node success lines
    console = capfd.readouterr().out
    assert "FAIL 1 not_null_int_orders_attributed_amount_reporting" in console
    assert "dbt build: Done. PASS=" in console and " ERROR=0 " not in console
    assert " OK created " not in console and "PASS not_null_" not in console
    # ... while the log file keeps every node at debug level
    log = (seg_dbt.dbt_paths(settings)["logs"] / "dbt.log").read_text()
    assert "OK created sql view model staging.stg_lake__orders" in log and "[debug]" in log


def test_as_of_date_must_be_an_iso_date(tmp_path):
    with pytest.raises(ValueError):
        seg_dbt.build(config.load(tmp_path), "31/03/2025")


def test_vars_come_from_settings_and_the_as_of_date(tmp_path):
    settings = config.load(tmp_path).with_overrides({"dbt": {"lookback_days": 5, "vars": {"identity_max_iterations": 4}}})
    assert seg_dbt._vars(settings, dt.date(2025, 3, 31)) == {
        "identity_max_iterations": 4,
        "lookback_days": 5,
        "session_gap_minutes": 30,
        "reporting_currency": "EUR",  # nothing configured, no order landed yet
        "fx_max_rate_age_days": 7,
        "as_of_date": "2025-03-31",
    }


def test_docs_generate_writes_the_site_into_the_data_directory(full_lake):
    settings, _ = full_lake
    index = seg_dbt.docs_generate(settings)
    assert index == settings.paths.root / "dbt" / "target" / "index.html"
    assert index.exists() and (index.parent / "catalog.json").exists()
    # the self-contained page (manifest + catalog embedded) documents the history snapshots too
    static = (index.parent / "static_index.html").read_text()
    assert "customer_features_history" in static and "assert_orders_reconcile_with_lake" in static


def test_every_model_and_column_is_described(full_lake, full_query):
    settings, _ = full_lake
    manifest = json.loads((settings.paths.root / "dbt" / "target" / "manifest.json").read_text())
    problems = []
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "seed"):
            continue
        columns = [
            r[0]
            for r in full_query(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [node["schema"], node["name"]],
            )
        ]
        described = {name for name, col in node["columns"].items() if col.get("description")}
        if not node["description"].strip():
            problems.append(f"{node['name']}: no description")
        if set(columns) - described:
            problems.append(f"{node['name']}: undescribed {sorted(set(columns) - described)}")
        if set(node["columns"]) - set(columns):
            problems.append(f"{node['name']}: documented but absent {sorted(set(node['columns']) - set(columns))}")
    assert not problems, problems
