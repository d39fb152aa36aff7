"""The generator's second profile (`five_groups`): other planted groups, fewer sources, the same truth files."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from seg.core.config import Paths
from seg.generate import profiles, run
from seg.generate.params import load_params

END = dt.date(2025, 3, 1)
ARGS = {"customers": 2000, "days": 60, "end": END, "seed": 5, "profile": "five_groups"}
GROUPS = {"bulk_planner", "frequent_topup", "gone_quiet", "window_shopper", "steady_regular"}
SOURCES = {"crm_customers", "orders", "order_items", "events"}


@pytest.fixture(scope="module")
def five_groups(tmp_path_factory) -> tuple[Paths, dict]:
    paths = Paths(tmp_path_factory.mktemp("five_groups"))
    return paths, run(paths, **ARGS)


def _group_means(paths: Paths) -> dict[str, dict[str, float]]:
    """Per planted group: orders, average order value, days since the last order and events per person."""
    inc, truth = paths.incoming.as_posix(), paths.truth.as_posix()
    rows = duckdb.sql(f"""
        with people as (select person_id, customer_id, persona from read_parquet('{truth}/personas.parquet')),
        o as (select customer_id, count(*) as orders, avg(amount) as aov,
                     date_diff('day', max(ordered_at)::date, date '{END}') as recency
              from read_parquet('{inc}/orders/*/*.parquet') group by 1),
        e as (select customer_id, count(*) as events from read_parquet('{inc}/events/*/*.parquet') group by 1)
        select persona, avg(coalesce(orders, 0)), avg(aov), avg(recency), avg(coalesce(events, 0))
        from people left join o using (customer_id) left join e using (customer_id) group by 1""").fetchall()
    return {r[0]: {"orders": r[1], "aov": r[2], "recency": r[3], "events": r[4]} for r in rows}


def test_the_profiles_are_listed_and_an_unknown_one_is_refused_naming_them(tmp_path):
    assert profiles()[0] == "default" and "five_groups" in profiles()
    with pytest.raises(ValueError, match="unknown generator profile 'nope': one of default, five_groups"):
        run(Paths(tmp_path), customers=10, days=2, end=END, seed=1, profile="nope")
    assert not (tmp_path / "incoming").exists()


def test_a_fault_on_a_source_the_profile_does_not_deliver_is_refused(tmp_path):
    with pytest.raises(ValueError, match="profile five_groups delivers no store_visits"):
        run(Paths(tmp_path), customers=10, days=2, end=END, seed=1, profile="five_groups",
            faults=[f"store_visits:wrong_units:{END}"])


def test_five_groups_delivers_crm_orders_items_and_events_only(five_groups):
    paths, summary = five_groups
    assert {p.name for p in paths.incoming.iterdir()} == SOURCES
    assert set(summary["rows"]) == SOURCES and min(summary["rows"].values()) > 0
    assert load_params(profile="five_groups").sources == ("crm_customers", "orders", "order_items", "events")


def test_the_truth_records_the_planted_group_of_every_person(five_groups):
    paths, _ = five_groups
    truth = paths.truth.as_posix()
    rows = duckdb.sql(f"select persona, count(*) from read_parquet('{truth}/personas.parquet') group by 1").fetchall()
    counts = dict(rows)
    assert set(counts) == GROUPS and sum(counts.values()) == ARGS["customers"]
    assert min(counts.values()) >= 0.08 * ARGS["customers"]
    meta = json.loads((paths.truth / "generation.json").read_text())
    assert meta["profile"] == "five_groups" and set(meta["personas"]) == GROUPS
    assert meta["sources"] == ["crm_customers", "orders", "order_items", "events"]


def test_the_groups_differ_in_basket_size_frequency_recency_and_browsing(five_groups):
    m = _group_means(five_groups[0])
    assert m["bulk_planner"]["aov"] > 4 * m["steady_regular"]["aov"]  # basket size
    assert m["frequent_topup"]["aov"] < 0.5 * m["steady_regular"]["aov"]
    assert m["frequent_topup"]["orders"] > 2 * m["steady_regular"]["orders"]  # frequency
    assert m["gone_quiet"]["recency"] > 2 * m["steady_regular"]["recency"]  # recency
    assert m["window_shopper"]["events"] > 2 * m["steady_regular"]["events"]  # browsing intensity
    assert m["window_shopper"]["orders"] < 0.3 * m["steady_regular"]["orders"]


def test_the_same_arguments_give_the_same_files(five_groups, tmp_path):
    paths, first = five_groups
    again = Paths(tmp_path)
    second = run(again, **ARGS)
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items() if k != "seconds"}
    for f in sorted(paths.incoming.rglob("*.parquet"))[:20]:
        assert f.read_bytes() == (again.incoming / f.relative_to(paths.incoming)).read_bytes(), f


def test_the_cli_passes_the_profile_through():
    from seg.pipeline.cli import build_parser

    args = build_parser().parse_args(["generate", "--end", "2025-03-01", "--profile", "five_groups"])
    assert args.profile == "five_groups"
    assert build_parser().parse_args(["generate", "--end", "2025-03-01"]).profile == "default"
