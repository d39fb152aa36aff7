"""Model selection generalises: on two differently shaped generated worlds, the platform's choice recovers the
planted groups at least as well as the plain baseline (MiniBatchKMeans, k by silhouette alone), within 0.02 ARI.

Issue #15 measured the opposite on an independent export (five planted groups, CRM + orders + events only): the
rank-of-three-indices rule chose a 3-segment Gaussian mixture (ARI 0.61) where plain MiniBatchKMeans with k by
silhouette found 6 segments (ARI 0.93). The worlds here:
- `five_groups`: the generator's second profile (seg/generate/profiles/five_groups.yml): five groups that differ
  in basket size, order frequency, recency and browsing intensity, with overlaps; CRM, orders, order items and
  events only. Features from FIVE_GROUPS_FEATURE_SQL below (the mart's definitions for the columns those sources
  fill, per true person, like seg.generate.validate.FEATURE_SQL);
- `default`: the generator's personas, features from seg.generate.validate.person_features (tests/ml/
  test_quality_bars.py does the same for its refit tests).

Each world is trained with the real ml: settings (`train.run`, every candidate family, the selection rule) on
5 000 customers x 60 days; the chosen model labels every person (its served pipeline). The baseline is fitted here,
independently of ml.candidates: MiniBatchKMeans (the ml: settings' batch size, n_init, max_iter, seed) for every k in
ml.k_min..ml.k_max on the model's own preprocessed features, the k with the best silhouette kept. MiniBatchKMeans
depends on the order of the rows: on `five_groups` the same rows in another order give k = 4..6 and ARI 0.57..0.72,
so the baseline's ARI is its median over BASELINE_ORDERS row orders (the typical result of the plain method, not
one lucky draw); the message lists every run.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from ml import tracking, train
from seg.core import config
from seg.generate import run as generate
from seg.generate import validate

from .conftest import default_settings, write_features

CUSTOMERS = 5000
DAYS = 60
END = dt.date(2025, 3, 1)
SEED = 7
TOLERANCE = 0.02  # the chosen model may recover the groups this much worse than the plain baseline
BASELINE_ORDERS = 5  # row orders the plain baseline is fitted in (the first: the frame's own)

# The ML features the four sources of `five_groups` fill, per true person (identities from the truth, as in
# seg.generate.validate.FEATURE_SQL), plus the lifecycle columns tenure_days and days_since_last_event.
FIVE_GROUPS_FEATURE_SQL = """
with
ids as (select * from read_parquet('{truth}/identities.parquet')),
cust as (select id_value as customer_id, person_id from ids where id_type = 'customer_id'),
em as (select id_value as email, person_id from ids where id_type = 'email'),
anon as (select id_value as anonymous_id, min(person_id) as person_id from ids where id_type = 'anonymous_id'
         group by 1),
people as (select person_id, customer_id, persona from read_parquet('{truth}/personas.parquet')),
crm as (
  select c.person_id, min(signup_at) as signup_at
  from read_parquet('{inc}/crm_customers/*/*.parquet', union_by_name = true) r join cust c using (customer_id)
  group by 1
),
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
         avg((channel = 'web')::int) as web_order_share, avg((channel = 'app')::int) as app_order_share
  from o group by 1
),
disc as (
  select o.person_id, sum(quantity * unit_price * discount) / nullif(sum(quantity * unit_price), 0) as discount_share
  from it join o using (order_id) group by 1
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
         sum((event_type = 'add_to_cart')::int) as add_to_cart_count,
         date_diff('day', max(occurred_at)::date, date '{end}') as days_since_last_event
  from ev group by 1
),
ab as (
  select person_id, avg(case when bought = 1 then 0 else 1 end) as cart_abandonment_rate
  from sess where carted = 1 group by 1
)
select p.person_id, p.customer_id, p.persona,
  ord.recency_days, coalesce(ord.frequency, 0) as frequency, coalesce(ord.monetary, 0) as monetary,
  ord.avg_order_value, disc.discount_share,
  coalesce(evf.event_count, 0) as event_count, coalesce(evf.session_count, 0) as session_count,
  coalesce(evf.product_view_count, 0) as product_view_count, coalesce(evf.add_to_cart_count, 0) as add_to_cart_count,
  ab.cart_abandonment_rate, ord.web_order_share, ord.app_order_share,
  date_diff('day', crm.signup_at::date, date '{end}') as tenure_days, evf.days_since_last_event
from people p
inner join crm using (person_id)
left join ord using (person_id) left join disc using (person_id)
left join evf using (person_id) left join ab using (person_id)
order by p.person_id
"""


def five_groups_features(paths: config.Paths, end: dt.date) -> pd.DataFrame:
    """FIVE_GROUPS_FEATURE_SQL of the files under `paths` (people whose CRM record arrived), with their group."""
    sql = FIVE_GROUPS_FEATURE_SQL.format(truth=paths.truth.as_posix(), inc=paths.incoming.as_posix(),
                                         end=(end + dt.timedelta(days=1)).isoformat())
    con = duckdb.connect()
    try:
        con.execute("set threads = 2")
        return con.execute(sql).df()
    finally:
        con.close()


def default_features(paths: config.Paths) -> pd.DataFrame:
    """seg.generate.validate.person_features with each person's customer id (the mart's key)."""
    df = validate.person_features(paths).drop(columns=["persona_after_drift"])
    ids = pd.read_parquet(paths.truth / "personas.parquet")[["person_id", "customer_id"]]
    return df.merge(ids, on="person_id")


def plain_baseline(xt: np.ndarray, ks: list[int], cfg) -> tuple[int, np.ndarray]:
    """MiniBatchKMeans (the ml: settings' batch size, n_init, max_iter, random_state) for every k, the k with the
    best silhouette (on ml.silhouette_sample_size seeded rows): (k, labels)."""
    seed, rows = int(cfg.random_state), int(cfg.silhouette_sample_size)
    best = None
    for k in ks:
        labels = MiniBatchKMeans(n_clusters=k, batch_size=int(cfg.batch_size), n_init=int(cfg.n_init),
                                 max_iter=int(cfg.max_iter), random_state=seed).fit_predict(xt)
        sil = silhouette_score(xt, labels, sample_size=min(rows, len(xt)), random_state=seed)
        if best is None or sil > best[0]:
            best = (sil, k, labels)
    return best[1], best[2]


def measure(root, profile: str) -> dict:
    """Generate the world, train with the real settings, label everyone: ARI of the choice and of the baseline."""
    settings = config.load(root)
    generate(settings.paths, customers=CUSTOMERS, days=DAYS, end=END, seed=SEED, profile=profile)
    frame = five_groups_features(settings.paths, END) if profile != "default" else default_features(settings.paths)
    frame["person_id"] = "P" + frame["person_id"].astype(str)
    frame["as_of_date"] = END
    truth = frame.pop("persona")
    write_features(settings, frame)
    result = train.run(settings, END)
    model = tracking.load_champion(settings)
    x = frame[model.features]
    chosen = np.asarray(model.pipeline.predict(x))
    xt = np.asarray(model.pipeline[:-1].transform(x), dtype=float)
    cfg = settings.ml
    ks = list(range(int(cfg.k_min), int(cfg.k_max) + 1))
    runs = []
    for order in range(BASELINE_ORDERS):
        perm = np.random.default_rng(order).permutation(len(xt)) if order else np.arange(len(xt))
        k, labels = plain_baseline(xt[perm], ks, cfg)
        runs.append((k, adjusted_rand_score(truth.to_numpy()[perm], labels)))
    return {
        "profile": profile,
        "chosen_ari": adjusted_rand_score(truth, chosen),
        "chosen": f"{result['family']} k={result['k']}",
        "reason": result["selection_reason"],
        "baseline_ari": float(np.median([ari for _, ari in runs])),
        "baseline_runs": ", ".join(f"k={k} {ari:.3f}" for k, ari in runs),
        "groups": int(truth.nunique()),
        "train_seconds": result["timings"].get("total_seconds"),
    }


def _message(m: dict) -> str:
    return (f"{m['profile']}: chosen {m['chosen']} ARI {m['chosen_ari']:.3f} vs plain MiniBatchKMeans, k by "
            f"silhouette, median ARI {m['baseline_ari']:.3f} over {BASELINE_ORDERS} row orders ({m['baseline_runs']}); "
            f"{m['groups']} planted groups; selection_reason: {m['reason']}")


@pytest.fixture(scope="module", params=["five_groups", "default"])
def measured(request, tmp_path_factory):
    got = measure(tmp_path_factory.mktemp(f"generalises_{request.param}") / "data", request.param)
    print(_message(got), f"(training {got['train_seconds']} s)")  # the measurement, also when the bar is met
    return got


def test_the_chosen_model_recovers_the_planted_groups_at_least_as_well_as_the_plain_baseline(measured):
    assert measured["chosen_ari"] >= measured["baseline_ari"] - TOLERANCE, _message(measured)


def test_the_selection_reason_says_why_the_winner_won(measured):
    reason = measured["reason"]
    assert reason.startswith(measured["chosen"].replace(" k=", "_k") + ":"), _message(measured)
    assert "plain baseline" in reason and "stability" in reason, _message(measured)


# ------------------------------------------------------------------ the rule on candidates with known metrics


def _candidate(family: str, k: int, silhouette: float, dbi: float, chi: float, stability: float = 0.95):
    from ml.candidates import Candidate

    return Candidate(family=family, k=k, centers=None, labels=np.zeros(1, dtype=int), metrics={
        "silhouette": silhouette, "davies_bouldin": dbi, "calinski_harabasz": chi, "min_segment_share": 0.05,
        "n_segments": float(k), "stability": stability})


def _issue_pool():
    """Issue #15's shape: a 3-component mixture is best on all three indices, plain k-means peaks at k = 6."""
    return [
        _candidate("kmeans", 3, 0.30, 1.20, 2500),
        _candidate("kmeans", 6, 0.33, 1.30, 2000),
        _candidate("gmm", 3, 0.35, 1.00, 2600, stability=0.999),
        _candidate("ward", 6, 0.32, 1.35, 1900),
    ]


def test_a_coarser_candidate_does_not_win_by_rank_averaging_over_the_plain_baseline():
    from ml.selection import plain_baseline, select

    cfg = default_settings().ml
    pool = _issue_pool()
    assert plain_baseline(pool).name == "kmeans_k6"
    chosen, reason = select(pool, cfg)
    assert chosen.name == "kmeans_k6", reason
    assert reason.startswith("kmeans_k6: the plain baseline itself: best mean rank")
    assert "at least the 6 segments of the plain baseline kmeans_k6" in reason and "2 coarser ones not" in reason


def test_a_finer_candidate_better_on_the_indices_beats_the_plain_baseline_and_the_reason_names_it():
    from ml.selection import select

    cfg = default_settings().ml
    pool = [*_issue_pool(), _candidate("ward", 7, 0.34, 1.10, 2300)]
    chosen, reason = select(pool, cfg)
    assert chosen.name == "ward_k7", reason
    assert "plain baseline kmeans_k6 (MiniBatchKMeans, k by silhouette: 0.330)" in reason


def test_without_a_kmeans_candidate_every_k_competes_and_the_reason_says_so():
    from ml.selection import select

    cfg = default_settings().ml
    chosen, reason = select([c for c in _issue_pool() if c.family != "kmeans"], cfg)
    assert chosen.name == "gmm_k3" and "no plain baseline: every k competed" in reason
