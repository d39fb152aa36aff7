"""Same arguments and seed give byte-identical files; drift_from changes behaviour only from that day on."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from seg.core.config import Paths
from seg.generate import run

from .conftest import DRIFT, DRIFT_FROM, SMALL, hashes


def test_same_seed_gives_identical_files(small, small_again):
    a, b = hashes(small.paths.root), hashes(small_again.paths.root)
    assert a == b
    assert len([k for k in a if k.startswith("incoming/")]) == small.summary["files"]


def test_another_seed_gives_different_data(small, small_other_seed):
    a, b = hashes(small.paths.incoming), hashes(small_other_seed.paths.incoming)
    # the day's exchange rates are a function of the date alone (seg.generate.rates_table), not of the seed
    common = {k for k in set(a) & set(b) if not k.startswith("fx_rates/")}
    assert common and all(a[k] != b[k] for k in common)
    assert all(a[k] == b[k] for k in set(a) & set(b) if k.startswith("fx_rates/"))


def test_rerun_into_the_same_directory_replaces_the_old_output(tmp_path):
    paths = Paths(tmp_path / "d")
    run(paths, **SMALL, faults=[f"orders:duplicate_file:{SMALL['end']}"])
    run(paths, **SMALL)
    assert not list(paths.incoming.rglob("*_copy.parquet"))
    assert json.loads((paths.truth / "faults.json").read_text()) == {"faults": []}


def _day(path: str) -> dt.date:
    return dt.date.fromisoformat(path.split("/")[1])


def test_drift_leaves_the_days_before_untouched(no_drift, drifted):
    a, b = hashes(no_drift.paths.incoming), hashes(drifted.paths.incoming)
    before = [k for k in a if _day(k) < DRIFT_FROM]
    after = [k for k in set(a) & set(b) if _day(k) >= DRIFT_FROM and not k.startswith(("crm_customers/", "fx_rates/"))]
    assert before and all(a[k] == b.get(k) for k in before)
    assert after and all(a[k] != b[k] for k in after)


def test_drift_switches_about_a_third_of_the_people(drifted, no_drift):
    p = drifted.df(f"select * from read_parquet('{drifted.truth('personas.parquet')}')")
    switched = p[p.persona_after_drift.notna()]
    assert 0.30 <= len(switched) / len(p) <= 0.40
    assert (switched.persona != switched.persona_after_drift).all()
    assert (pd.to_datetime(switched.drift_date) == pd.Timestamp(DRIFT_FROM)).all()
    assert p[p.persona_after_drift.isna()].drift_date.isna().all()
    assert set(switched.persona_after_drift) <= set(p.persona) - {"new_customer"}
    q = no_drift.df(f"select * from read_parquet('{no_drift.truth('personas.parquet')}')")
    assert q.persona_after_drift.isna().all() and (q.persona == p.persona).all()
    meta = json.loads((drifted.paths.truth / "generation.json").read_text())
    assert meta["drift_from"] == DRIFT_FROM.isoformat() and meta["switched_personas"] == len(switched)


def _activity(gen) -> pd.DataFrame:
    """Orders and logged-in events per person and period (before / after drift_from)."""
    return gen.df(f"""
        with cust as (select id_value as customer_id, person_id from read_parquet('{gen.truth("identities.parquet")}')
                      where id_type = 'customer_id'),
             o as (select c.person_id, o.ordered_at as t, 'order' as kind, o.order_id from read_parquet('{gen.glob("orders")}') o
                   join cust c using (customer_id)),
             i as (select o.person_id, sum(quantity * unit_price * discount) / sum(quantity * unit_price) as disc
                   from o join read_parquet('{gen.glob("order_items")}') using (order_id)
                   where o.t >= timestamp '{DRIFT_FROM}' group by 1),
             e as (select c.person_id, e.occurred_at as t from read_parquet('{gen.glob("events")}') e
                   join cust c using (customer_id))
        select p.person_id, p.persona, p.persona_after_drift,
               (select count(*) from o where o.person_id = p.person_id and o.t >= timestamp '{DRIFT_FROM}') as orders_after,
               (select count(*) from e where e.person_id = p.person_id and e.t >= timestamp '{DRIFT_FROM}' + interval 1 hour)
                   as events_after,
               i.disc as discount_after
        from read_parquet('{gen.truth("personas.parquet")}') p left join i using (person_id)""")


def test_switched_people_behave_like_their_new_persona(drifted, no_drift):
    after, base = _activity(drifted), _activity(no_drift)
    to_lapsing = after[after.persona_after_drift == "lapsing_customer"]
    assert len(to_lapsing) > 50
    # people who lapse stop completely
    assert (to_lapsing.orders_after == 0).all() and (to_lapsing.events_after == 0).all()
    was = base.set_index("person_id").loc[to_lapsing.person_id]
    assert was.orders_after.sum() > 20  # ... where they would have kept buying
    # browsers who turn into discount hunters start buying with discounts
    b2d = after[(after.persona == "browser_rarely_buys") & (after.persona_after_drift == "discount_hunter")]
    was = base.set_index("person_id").loc[b2d.person_id]
    assert b2d.orders_after.sum() > 3 * max(was.orders_after.sum(), 1)
    assert b2d.discount_after.mean() > 0.15
    # the persona mix in effect after the drift day differs from the one before
    effective = after.persona_after_drift.fillna(after.persona).value_counts(normalize=True)
    original = after.persona.value_counts(normalize=True)
    assert (effective.reindex(original.index, fill_value=0) - original).abs().max() > 0.05
    assert DRIFT["days"] == 20
