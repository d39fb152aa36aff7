"""Checks on a generated data directory, used by the tests and to tune personas.yml.

`person_features` computes the ML features of config/settings.yml (ml.features) per true person, straight
from the incoming files, attributing rows to people with the truth identities (so it measures how separable
the personas are, not how good identity resolution is). `persona_recovery` clusters them with K-Means and
reports the adjusted Rand index against the true personas.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pandas as pd

from seg.core.config import Paths

FEATURE_SQL = """
with
ids as (select * from read_parquet('{truth}/identities.parquet')),
cust as (select id_value as customer_id, person_id from ids where id_type = 'customer_id'),
em as (select id_value as email, person_id from ids where id_type = 'email'),
anon as (select id_value as anonymous_id, min(person_id) as person_id from ids where id_type = 'anonymous_id'
         group by 1),
loy as (select id_value as loyalty_id, person_id from ids where id_type = 'loyalty_id'),
people as (select person_id from read_parquet('{truth}/personas.parquet')),
o as (
  select o.*, coalesce(c.person_id, e.person_id) as person_id
  from read_parquet('{inc}/orders/*/*.parquet', union_by_name = true) o
  left join cust c using (customer_id)
  left join em e on lower(trim(o.email)) = e.email
),
it as (select * from read_parquet('{inc}/order_items/*/*.parquet', union_by_name = true)),
ord as (
  select person_id, count(*) as frequency, sum(amount) as monetary, avg(amount) as avg_order_value,
         date_diff('day', max(ordered_at)::date, date '{end}') as recency_days,
         avg((channel = 'web')::int) as web_order_share, avg((channel = 'app')::int) as app_order_share,
         avg((channel = 'store')::int) as store_order_share
  from o group by 1
),
disc as (
  select o.person_id, sum(quantity * unit_price * discount) / nullif(sum(quantity * unit_price), 0) as discount_share
  from it join o using (order_id) group by 1
),
sv as (
  select l.person_id, count(*) as store_visit_count, sum(purchase_amount) as store_spend
  from read_parquet('{inc}/store_visits/*/*.parquet', union_by_name = true) v join loy l using (loyalty_id)
  group by 1
),
ev as (
  select e.*, coalesce(c.person_id, a.person_id) as person_id,
         coalesce(session_id, anonymous_id || strftime(occurred_at, '%Y%m%d')) as sess
  from read_parquet('{inc}/events/*/*.parquet', union_by_name = true) e
  left join cust c using (customer_id) left join anon a using (anonymous_id)
),
sess as (
  select person_id, sess, max((event_type = 'add_to_cart')::int) as carted, max((event_type = 'purchase')::int) as bought
  from ev group by 1, 2
),
evf as (
  select person_id, count(*) as event_count, count(distinct sess) as session_count,
         sum((event_type = 'product_view')::int) as product_view_count,
         sum((event_type = 'add_to_cart')::int) as add_to_cart_count
  from ev group by 1
),
ab as (
  select person_id, avg(case when bought = 1 then 0 else 1 end) as cart_abandonment_rate
  from sess where carted = 1 group by 1
),
sr as (
  select coalesce(c.person_id, e.person_id) as person_id, question_id, answer, answered_at
  from read_parquet('{inc}/survey_responses/*/*.parquet', union_by_name = true) r
  left join cust c using (customer_id) left join em e on lower(trim(r.email)) = e.email
),
sv2 as (
  select person_id,
         max(case when question_id = 'price_sensitivity' then answer::int end) as price_sensitivity,
         max(case when question_id = 'brand_loyalty' then answer::int end) as brand_loyalty
  from sr group by 1
)
select p.person_id,
  ord.recency_days, coalesce(ord.frequency, 0) as frequency, coalesce(ord.monetary, 0) as monetary,
  ord.avg_order_value, disc.discount_share,
  coalesce(sv.store_visit_count, 0) as store_visit_count, coalesce(sv.store_spend, 0) as store_spend,
  coalesce(evf.event_count, 0) as event_count, coalesce(evf.session_count, 0) as session_count,
  coalesce(evf.product_view_count, 0) as product_view_count, coalesce(evf.add_to_cart_count, 0) as add_to_cart_count,
  ab.cart_abandonment_rate, ord.web_order_share, ord.app_order_share, ord.store_order_share,
  sv2.price_sensitivity, sv2.brand_loyalty
from people p
left join ord using (person_id) left join disc using (person_id) left join sv using (person_id)
left join evf using (person_id) left join ab using (person_id) left join sv2 using (person_id)
order by p.person_id
"""


def _settings_ml():
    from seg.core.config import load

    return load().ml


def person_features(paths: Paths) -> pd.DataFrame:
    meta = json.loads((paths.truth / "generation.json").read_text())
    end = dt.date.fromisoformat(meta["end"]) + dt.timedelta(days=1)
    sql = FEATURE_SQL.format(truth=paths.truth.as_posix(), inc=paths.incoming.as_posix(), end=end.isoformat())
    con = duckdb.connect()
    try:
        con.execute("set threads = 2")
        df = con.execute(sql).df()
        personas = con.execute(f"select person_id, persona, persona_after_drift from "
                               f"read_parquet('{paths.truth.as_posix()}/personas.parquet') order by person_id").df()
    finally:
        con.close()
    return df.merge(personas, on="person_id")


def feature_matrix(df: pd.DataFrame, features: list[str], log_features: list[str]) -> np.ndarray:
    """log1p the count/amount features, impute NULLs with the median plus a missing flag, standardise."""
    cols = []
    for f in features:
        x = df[f].astype(float).to_numpy()
        if f in log_features:
            x = np.log1p(np.clip(x, 0, None))
        miss = np.isnan(x)
        if miss.any():
            med = np.nanmedian(x) if (~miss).any() else 0.0
            x = np.where(miss, med, x)
            cols.append(miss.astype(float))
        cols.append(x)
    m = np.column_stack(cols)
    sd = m.std(axis=0)
    return (m - m.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def persona_recovery(paths: Paths, random_state: int = 42) -> dict:
    """K-Means (k = number of personas) on the ML features; adjusted Rand index against the true personas."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    ml = _settings_ml()
    df = person_features(paths)
    x = feature_matrix(df, list(ml.features), list(ml.log_features))
    k = df["persona"].nunique()
    labels = KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(x)
    ari = adjusted_rand_score(df["persona"], labels)
    means = df.groupby("persona")[list(ml.features)].mean()
    return {"ari": float(ari), "k": int(k), "people": len(df), "means": means,
            "crosstab": pd.crosstab(df["persona"], labels)}


def domain_matrix(df: pd.DataFrame, features: list[str], log_features: list[str], window_days: int) -> np.ndarray:
    """Alternative preprocessing: NULLs get their business meaning (no orders: recency = window length, shares,
    values and rates 0; no survey answer: neutral 3), then log1p and standardise."""
    fill = {"recency_days": float(window_days), "price_sensitivity": 3.0, "brand_loyalty": 3.0}
    cols = []
    for f in features:
        x = df[f].astype(float).to_numpy()
        x = np.where(np.isnan(x), fill.get(f, 0.0), x)
        if f in log_features:
            x = np.log1p(np.clip(x, 0, None))
        cols.append(x)
    m = np.column_stack(cols)
    sd = m.std(axis=0)
    return (m - m.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
