"""The data agrees with itself and with the truth: identities, orders vs items vs purchase events, login
semantics, CRM exports, personas, and the planted triggers (recomputed independently from the files)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from seg.generate.params import load_params

DATASETS = ["small", "window60"]


@pytest.fixture(params=DATASETS)
def gen(request):
    return request.getfixturevalue(request.param)


def ids_cte(gen) -> str:
    return f"""
      ids as (select * from read_parquet('{gen.truth("identities.parquet")}')),
      cust as (select id_value as customer_id, person_id from ids where id_type = 'customer_id'),
      em as (select id_value as email, person_id from ids where id_type = 'email'),
      shared as (select id_value from ids where id_type = 'anonymous_id' group by 1 having count(*) > 1),
      owner as (select id_value as anonymous_id, min(person_id) as person_id from ids where id_type = 'anonymous_id'
                and id_value not in (select id_value from shared) group by 1),
      -- people who use a shared device: their anonymous events cannot be attributed from the files
      sharers as (select distinct person_id from ids where id_type = 'anonymous_id'
                  and id_value in (select id_value from shared))"""


# ------------------------------------------------------------------------------------------------ identities
def test_every_identifier_in_the_data_is_in_the_identity_truth(gen):
    g = gen.glob
    checks = {
        "customer ids": f"""select customer_id from read_parquet('{g("crm_customers")}') union
                            select customer_id from read_parquet('{g("orders")}') union
                            select customer_id from read_parquet('{g("events")}') union
                            select customer_id from read_parquet('{g("survey_responses")}')""",
        "emails": f"""select lower(trim(email)) from read_parquet('{g("crm_customers")}') union
                      select lower(trim(email)) from read_parquet('{g("orders")}') union
                      select lower(trim(email)) from read_parquet('{g("survey_responses")}')""",
        "anonymous ids": f"select anonymous_id from read_parquet('{g('events')}')",
        "loyalty ids": f"""select loyalty_id from read_parquet('{g("store_visits")}') union
                           select loyalty_id from read_parquet('{g("crm_customers")}')""",
    }
    kinds = {"customer ids": "customer_id", "emails": "email", "anonymous ids": "anonymous_id",
             "loyalty ids": "loyalty_id"}
    for name, sql in checks.items():
        (missing,), = gen.sql(f"""with v(x) as ({sql})
            select count(*) from v where x is not null and x not in
            (select id_value from read_parquet('{gen.truth("identities.parquet")}') where id_type = '{kinds[name]}')""")
        assert missing == 0, name


def test_identity_truth_shape(gen):
    df = gen.df(f"select * from read_parquet('{gen.truth('identities.parquet')}')")
    persons = gen.df(f"select * from read_parquet('{gen.truth('personas.parquet')}')")
    n = len(persons)
    assert set(df.id_type) == {"customer_id", "email", "anonymous_id", "loyalty_id"}
    # customer ids, emails and loyalty ids belong to exactly one person
    for kind in ("customer_id", "email", "loyalty_id"):
        sub = df[df.id_type == kind]
        assert sub.id_value.is_unique, kind
    assert (df[df.id_type == "email"].id_value == df[df.id_type == "email"].id_value.str.strip().str.lower()).all()
    # ~3 % have a second CRM record
    per_person = df[df.id_type == "customer_id"].groupby("person_id").size()
    assert per_person.max() == 2 and 0.015 <= (per_person == 2).mean() <= 0.05
    # 1-3 own devices, ~0.5 % of devices shared by two people
    anon = df[df.id_type == "anonymous_id"]
    users = anon.groupby("id_value").size()
    assert users.max() == 2
    assert 0.001 <= (users == 2).mean() <= 0.012
    assert anon.groupby("person_id").size().between(1, 4).all()
    assert anon.person_id.nunique() == n
    # store-first people always have a loyalty card; customer_id in personas is the primary CRM id
    loyal = set(df[df.id_type == "loyalty_id"].person_id)
    assert set(persons[persons.persona == "store_first_loyal"].person_id) <= loyal
    assert persons.customer_id.is_unique
    assert set(persons.persona) == set(load_params().names) and len(set(persons.persona)) >= 6


def test_second_crm_record_email_differs_only_in_case_or_whitespace(gen):
    rows = gen.df(f"""with {ids_cte(gen)},
        crm as (select distinct customer_id, email from read_parquet('{gen.glob("crm_customers")}'))
        select c.person_id, crm.email from crm join cust c using (customer_id)
        where c.person_id in (select person_id from cust group by 1 having count(*) = 2)""")
    assert len(rows) > 0
    for _, grp in rows.groupby("person_id"):
        emails = list(grp.email)
        assert len(emails) == 2 and emails[0] != emails[1]
        assert emails[0].strip().lower() == emails[1].strip().lower()


# ------------------------------------------------------------------------------------------------ orders
def test_orders_reconcile_with_items(gen):
    (n_orders, bad, no_items, orphans), = gen.sql(f"""
        with o as (select * from read_parquet('{gen.glob("orders")}')),
             i as (select * from read_parquet('{gen.glob("order_items")}')),
             s as (select order_id, round(sum(quantity * unit_price * (1 - discount)), 2) as total, count(*) as n,
                          max(line_no) as max_line from i group by 1)
        select (select count(*) from o),
               (select count(*) from o join s using (order_id) where abs(o.amount - s.total) > 0.0051
                   or s.n <> s.max_line),
               (select count(*) from o where order_id not in (select order_id from i)),
               (select count(*) from i where order_id not in (select order_id from o))""")
    assert n_orders > 0
    assert (bad, no_items, orphans) == (0, 0, 0)


def test_web_and_app_orders_have_their_purchase_event(gen):
    df = gen.df(f"""
        with o as (select * from read_parquet('{gen.glob("orders")}')),
             p as (select *, json_extract_string(properties, '$.order_id') as oid,
                          json_extract(properties, '$.revenue')::double as revenue
                   from read_parquet('{gen.glob("events")}') where event_type = 'purchase')
        select o.order_id, o.channel, o.customer_id as order_cid, o.amount, p.customer_id as event_cid, p.revenue,
               p.event_id, p.occurred_at, o.ordered_at
        from o full join p on p.oid = o.order_id""")
    online = df[df.channel.isin(["web", "app"])]
    store = df[df.channel == "store"]
    assert len(online) > 0 and len(store) > 0
    assert online.event_id.notna().all() and not online.order_id.duplicated().any()
    assert df.order_id.notna().all()  # no purchase event without an order
    assert store.event_id.isna().all()
    assert (online.revenue.round(2) == online.amount.round(2)).all()
    assert (online.occurred_at == online.ordered_at).all()
    logged = online[online.order_cid.notna()]
    assert (logged.event_cid == logged.order_cid).all()
    guests = online[online.order_cid.isna()]
    assert guests.event_cid.isna().all()  # guest checkout: the session never logged in


def test_cart_and_checkout_precede_purchases(gen):
    (missing,), = gen.sql(f"""
        with e as (select * from read_parquet('{gen.glob("events")}') where session_id is not null)
        select count(*) from e p where p.event_type = 'purchase' and (
            not exists (select 1 from e a where a.session_id = p.session_id and a.event_type = 'add_to_cart'
                        and a.occurred_at <= p.occurred_at)
            or not exists (select 1 from e c where c.session_id = p.session_id and c.event_type = 'checkout_started'
                           and c.occurred_at <= p.occurred_at))""")
    assert missing == 0


def test_events_are_anonymous_until_login_in_the_session(gen):
    (bad, logged_sessions, anon_before), = gen.sql(f"""
        with e as (select * from read_parquet('{gen.glob("events")}') where session_id is not null),
             lg as (select session_id, min(occurred_at) as t, any_value(customer_id) as cid
                    from e where event_type = 'login' group by 1)
        select count(*) filter (where (lg.t is null and e.customer_id is not null)
                                   or (lg.t is not null and e.occurred_at < lg.t and e.customer_id is not null)
                                   or (lg.t is not null and e.occurred_at > lg.t and e.customer_id is distinct from lg.cid)),
               count(distinct lg.session_id),
               count(*) filter (where lg.t is not null and e.occurred_at < lg.t)
        from e left join lg using (session_id)""")
    assert bad == 0
    assert logged_sessions > 0 and anon_before > 0


def test_shared_devices_see_logins_of_both_people(window60):
    (n,), = window60.sql(f"""with {ids_cte(window60)}
        select count(*) from (
          select e.anonymous_id from read_parquet('{window60.glob("events")}') e join cust c using (customer_id)
          where e.anonymous_id in (select id_value from shared)
          group by 1 having count(distinct c.person_id) = 2)""")
    assert n >= 1


def test_store_visits_only_carry_loyalty_ids_of_people_with_a_card(gen):
    cols = gen.df(f"select * from read_parquet('{gen.glob('store_visits')}') limit 1").columns
    assert "customer_id" not in cols and "email" not in cols
    (with_purchase, zero), = gen.sql(f"""select count(*) filter (where purchase_amount > 0),
        count(*) filter (where purchase_amount = 0) from read_parquet('{gen.glob("store_visits")}')""")
    assert with_purchase > 0 and zero > 0


# ------------------------------------------------------------------------------------------------ CRM
def test_crm_initial_export_new_signups_and_updates(window60):
    g = window60
    start = g.args["end"] - dt.timedelta(days=g.args["days"] - 1)
    df = g.df(f"""select *, regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.parquet$', 1)::date as day
                  from read_parquet('{g.glob("crm_customers")}', filename = true)""")
    first = df[df.day == pd.Timestamp(start)]
    later = df[df.day > pd.Timestamp(start)]
    # every record signed up before the window is in the first file
    before = df[df.signup_at < pd.Timestamp(start)].customer_id.unique()
    assert set(before) <= set(first.customer_id)
    # later files: new records on their signup day, or updates of known records with a later updated_at
    new = later[~later.customer_id.isin(first.customer_id)].sort_values("updated_at").drop_duplicates("customer_id")
    assert len(new) > 0 and (new.signup_at.dt.normalize() == new.day).all()
    updates = later[later.customer_id.duplicated(keep=False) | later.customer_id.isin(first.customer_id)]
    assert len(updates) > 0
    merged = updates.merge(df.sort_values("updated_at").drop_duplicates("customer_id")[
        ["customer_id", "updated_at", "marketing_opt_in"]], on="customer_id", suffixes=("", "_first"))
    changed = merged[merged.updated_at > merged.updated_at_first]
    assert len(changed) > 0 and (changed.marketing_opt_in != changed.marketing_opt_in_first).all()
    # new customers sign up inside the window, the others before it
    personas = g.df(f"select * from read_parquet('{g.truth('personas.parquet')}')")
    signup = personas.merge(df.drop_duplicates("customer_id")[["customer_id", "signup_at"]], on="customer_id")
    inside = signup.signup_at >= pd.Timestamp(start)
    assert inside[signup.persona == "new_customer"].all()
    assert not inside[signup.persona != "new_customer"].any()


# ------------------------------------------------------------------------------------------------ personas
def test_lapsing_customers_are_active_early_and_silent_at_the_end(window60):
    g = window60
    end = g.args["end"]
    df = g.df(f"""with {ids_cte(g)},
        act as (
          select c.person_id, ordered_at as t from read_parquet('{g.glob("orders")}') o join cust c using (customer_id)
          union all
          select c.person_id, occurred_at from read_parquet('{g.glob("events")}') e join cust c using (customer_id))
        select p.person_id, p.persona, max(t) as last, count(t) as n
        from read_parquet('{g.truth("personas.parquet")}') p left join act using (person_id) group by all""")
    lapsing = df[df.persona == "lapsing_customer"]
    quiet_from = pd.Timestamp(end - dt.timedelta(days=20))
    assert (lapsing.n > 0).mean() > 0.9
    # (a session started before midnight may end a few minutes after it)
    assert (lapsing.last.dropna() < quiet_from + pd.Timedelta(hours=1)).all()
    others = df[df.persona.isin(["loyal_high_spender", "discount_hunter", "new_customer"])]
    assert (others.last >= quiet_from).mean() > 0.8


def test_new_customers_act_only_after_signup(window60):
    g = window60
    (bad, n), = g.sql(f"""with {ids_cte(g)},
        crm as (select customer_id, min(signup_at) as signup from read_parquet('{g.glob("crm_customers")}') group by 1),
        ev as (select customer_id, occurred_at as t from read_parquet('{g.glob("events")}') where customer_id is not null
               union all select customer_id, ordered_at from read_parquet('{g.glob("orders")}')
               where customer_id is not null)
        select count(*) filter (where ev.t < crm.signup), count(*) from ev join crm using (customer_id)""")
    assert n > 0 and bad == 0


def test_personas_are_recoverable_with_kmeans_on_the_ml_features(window60):
    from seg.generate.validate import persona_recovery

    result = persona_recovery(window60.paths)
    assert result["k"] == len(load_params().names)
    assert result["ari"] >= 0.8, result["crosstab"]


def test_every_pair_of_personas_differs_clearly_in_at_least_three_features(window60):
    """|difference of persona means| > 1.5 x the mean within-persona standard deviation, in >= 3 ML features
    (log1p where settings say so, NULLs imputed with the median, standardised)."""
    import numpy as np

    from seg.core.config import load
    from seg.generate.validate import domain_matrix, person_features

    ml = load().ml
    feats = list(ml.features)
    df = person_features(window60.paths)
    cols = []
    for f in feats:
        x = df[f].astype(float).to_numpy()
        if f in ml.log_features:
            x = np.log1p(np.clip(x, 0, None))
        cols.append(np.where(np.isnan(x), np.nanmedian(x), x))
    m = np.column_stack(cols)
    m = (m - m.mean(axis=0)) / m.std(axis=0)
    names = sorted(df.persona.unique())
    mean = {p: m[(df.persona == p).to_numpy()].mean(axis=0) for p in names}
    sd = {p: m[(df.persona == p).to_numpy()].std(axis=0) for p in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ratio = np.abs(mean[a] - mean[b]) / np.maximum((sd[a] + sd[b]) / 2, 1e-9)
            assert (ratio > 1.5).sum() >= 3, (a, b, dict(zip(feats, ratio.round(2), strict=True)))
    assert domain_matrix(df, feats, list(ml.log_features), 60).shape == (len(df), len(feats))


# ------------------------------------------------------------------------------------------------ triggers
def _triggers(gen, kind: str) -> pd.DataFrame:
    return gen.df(f"select * from read_parquet('{gen.truth('triggers.parquet')}') where trigger = '{kind}'")


def test_cart_abandonment_truth_matches_a_recomputation_from_the_files(gen):
    end = gen.args["end"] + dt.timedelta(days=1)
    found = gen.df(f"""with {ids_cte(gen)},
        ev as (select * from read_parquet('{gen.glob("events")}') where session_id is not null),
        sess as (select session_id, any_value(customer_id) filter (where customer_id is not null) as cid,
                        any_value(anonymous_id) as anonymous_id,
                        max(occurred_at) filter (where event_type = 'add_to_cart') as last_add
                 from ev group by 1 having count(*) filter (where event_type = 'add_to_cart') > 0),
        sp as (select s.*, coalesce(c.person_id, o.person_id) as person_id from sess s
               left join cust c on c.customer_id = s.cid left join owner o using (anonymous_id)),
        ord as (select coalesce(c.person_id, e.person_id) as person_id, ordered_at
                from read_parquet('{gen.glob("orders")}') o left join cust c using (customer_id)
                left join em e on e.email = lower(trim(o.email)))
        select person_id, last_add as at, session_id from sp
        where person_id is not null and person_id not in (select person_id from sharers)
          and last_add + interval 24 hour <= timestamp '{end}'
          and not exists (select 1 from ord where ord.person_id = sp.person_id
                          and ord.ordered_at between sp.last_add and sp.last_add + interval 24 hour)""")
    truth = _triggers(gen, "cart_abandonment")
    truth["session_id"] = truth.evidence.str.extract(r'"session_id": "(s-[0-9a-f]{16})"')[0]
    sharers = set(gen.df(f"with {ids_cte(gen)} select person_id from sharers").person_id)
    truth = truth[truth.session_id.notna() & ~truth.person_id.isin(sharers)]
    assert len(truth) > 0
    key = ["person_id", "at", "session_id"]
    a = set(map(tuple, found[key].astype(str).values))
    b = set(map(tuple, truth[key].astype(str).values))
    assert a == b


def test_repeated_product_view_truth_matches_a_recomputation_from_the_files(gen):
    end = gen.args["end"] + dt.timedelta(days=1)
    found = gen.df(f"""with {ids_cte(gen)},
        ev as (select e.*, coalesce(c.person_id, o.person_id) as person_id
               from read_parquet('{gen.glob("events")}') e left join cust c using (customer_id)
               left join owner o using (anonymous_id) where event_type = 'product_view'),
        w as (select person_id, product_id, occurred_at as t,
                     lag(occurred_at, 2) over win as t2,
                     lag(occurred_at, 1) over win as t1, lag(occurred_at, 3) over win as t3
              from ev where person_id not in (select person_id from sharers)
              window win as (partition by person_id, product_id order by occurred_at)),
        c as (select *, t2 is not null and t - t2 <= interval 24 hour as cond,
                        t3 is not null and t1 - t3 <= interval 24 hour as prev_cond from w),
        bought as (select coalesce(c.person_id, e.person_id) as person_id, 'P' || substr(i.sku, 5) as product_id,
                          o.ordered_at
                   from read_parquet('{gen.glob("order_items")}') i join read_parquet('{gen.glob("orders")}') o
                   using (order_id) left join cust c on c.customer_id = o.customer_id
                   left join em e on e.email = lower(trim(o.email)))
        select person_id, t as at, product_id from c
        where cond and not prev_cond and t + interval 24 hour <= timestamp '{end}'
          and not exists (select 1 from bought b where b.person_id = c.person_id and b.product_id = c.product_id
                          and b.ordered_at between c.t2 and c.t + interval 24 hour)""")
    truth = _triggers(gen, "repeated_product_view")
    truth["product_id"] = truth.evidence.str.extract(r'"product_id": "(P\d{5})"')[0]
    sharers = set(gen.df(f"with {ids_cte(gen)} select person_id from sharers").person_id)
    truth = truth[~truth.person_id.isin(sharers)]
    assert len(truth) > 0
    key = ["person_id", "at", "product_id"]
    assert set(map(tuple, found[key].astype(str).values)) == set(map(tuple, truth[key].astype(str).values))


def test_lapsing_trigger_truth_matches_a_recomputation_from_the_files(window60):
    g = window60
    end = g.args["end"] + dt.timedelta(days=1)
    found = g.df(f"""with {ids_cte(g)},
        loy as (select id_value as loyalty_id, person_id from ids where id_type = 'loyalty_id'),
        ord as (select coalesce(c.person_id, e.person_id) as person_id, ordered_at as t
                from read_parquet('{g.glob("orders")}') o left join cust c using (customer_id)
                left join em e on e.email = lower(trim(o.email))),
        act as (select person_id, t from ord
                union all select coalesce(c.person_id, o.person_id), occurred_at
                from read_parquet('{g.glob("events")}') e left join cust c using (customer_id)
                left join owner o using (anonymous_id)
                union all select l.person_id, visited_at from read_parquet('{g.glob("store_visits")}') join loy l
                using (loyalty_id)
                union all select coalesce(c.person_id, e.person_id), answered_at
                from read_parquet('{g.glob("survey_responses")}') r left join cust c using (customer_id)
                left join em e on e.email = lower(trim(r.email))),
        last as (select person_id, max(t) as last from act group by 1)
        select person_id, last + interval 21 day as at from last
        where person_id in (select person_id from ord) and person_id not in (select person_id from sharers)
          and last + interval 21 day <= timestamp '{end}'""")
    truth = _triggers(g, "lapsing")
    sharers = set(g.df(f"with {ids_cte(g)} select person_id from sharers").person_id)
    truth = truth[~truth.person_id.isin(sharers)]
    assert len(truth) > 0
    assert set(map(tuple, found[["person_id", "at"]].astype(str).values)) == \
        set(map(tuple, truth[["person_id", "at"]].astype(str).values))
    personas = g.df(f"select person_id, persona from read_parquet('{g.truth('personas.parquet')}')")
    share = truth.merge(personas, on="person_id").persona.eq("lapsing_customer").mean()
    assert share > 0.6  # the lapsing persona is what produces them


def test_triggers_table_shape(gen):
    df = gen.df(f"select * from read_parquet('{gen.truth('triggers.parquet')}')")
    personas = gen.df(f"select person_id, customer_id from read_parquet('{gen.truth('personas.parquet')}')")
    assert list(df.columns) == ["person_id", "customer_id", "trigger", "at", "evidence"]
    assert set(df.trigger) <= {"cart_abandonment", "repeated_product_view", "lapsing"}
    merged = df.merge(personas, on="person_id", suffixes=("", "_truth"))
    assert len(merged) == len(df) and (merged.customer_id == merged.customer_id_truth).all()
    assert df.evidence.str.startswith("{").all()
