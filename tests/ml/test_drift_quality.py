"""Quality bars of the drift policy on generated data, without running the DAG 20 times.

One generated population of 20 000 customers over 90 days (the generator's `drift_from` and `wrong_units`
variants are byte-identical before their day), one training, then for each as-of date: the features of that date
are computed from the files dated up to it and `ml.drift.monitor.compute` measures drift against the champion (the same
statistics and decision as `ml.drift.monitor.run`, without writing; the last test runs `run` once).

The features per date come from `seg.generate.validate.FEATURE_SQL` (the ML features of config/settings.yml computed
from the incoming files with the true identities, restricted to people whose CRM record has arrived), and
`marts.orders` from the orders files: the same definitions as the dbt marts, at ~0.3 s per date instead of ~25 s
for a dbt build. (The dbt + Airflow path of the drift step runs in tests/e2e/test_daily_dag.py.)

Bars: (a) 20 consecutive stationary days after a training give no `retrain`; (b) a persona-mix shift on day D is
flagged with `retrain` on D or D+1; (c) amounts x100 in one day's orders file are flagged as drift on the order
amount (and only warn: a unit error is not a reason to retrain).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from ml import tracking, train
from ml.drift import monitor, rules
from seg.core import config
from seg.core.warehouse import connect
from seg.generate import run as generate
from seg.generate.validate import FEATURE_SQL

from .conftest import small_settings

CUSTOMERS = 20_000
# The generator's population is stationary until its last ~35 days: lapsing customers stop 21-35 days before the
# end and new customers sign up during the last 28 (docs/generator.md). The 20 days are taken before that.
DAYS = 90
END = dt.date(2026, 3, 31)
TRAIN_DAY = END - dt.timedelta(days=60)  # a Friday
SHIFT_DAY = END - dt.timedelta(days=47)  # a Thursday
UNITS_DAY = END - dt.timedelta(days=43)  # a Monday
SEED = 3


def _files_up_to(paths: config.Paths, day: dt.date, out: Path) -> Path:
    """A directory of symlinks to the incoming day directories dated on or before `day`."""
    shutil.rmtree(out, ignore_errors=True)
    for source in paths.incoming.iterdir():
        for folder in source.iterdir():
            if dt.date.fromisoformat(folder.name) <= day:
                (out / source.name).mkdir(parents=True, exist_ok=True)
                (out / source.name / folder.name).symlink_to(folder)
    return out


def feature_query(paths: config.Paths, day: dt.date, inc: Path) -> str:
    """The features as of `day` of the people whose CRM record has arrived, from the files in `inc` (dated up to
    `day`): the rows this test puts in marts.customer_features in place of dbt's."""
    truth = paths.truth.as_posix()
    sql = FEATURE_SQL.format(truth=truth, inc=inc.as_posix(), end=(day + dt.timedelta(days=1)).isoformat())
    return f"""
            with features as ({sql}),
            signed_up as (
                select distinct i.person_id
                from read_parquet('{inc}/crm_customers/*/*.parquet') c
                inner join read_parquet('{truth}/identities.parquet') i
                    on i.id_type = 'customer_id' and i.id_value = c.customer_id),
            people as (select person_id, customer_id from read_parquet('{truth}/personas.parquet'))
            select 'P' || features.person_id as person_id, people.customer_id, date '{day}' as as_of_date,
                   features.* exclude (person_id)
            from features inner join signed_up using (person_id) inner join people using (person_id)"""


def write_day(settings, paths: config.Paths, day: dt.date) -> None:
    """(Re)create marts.customer_features and marts.orders as of `day` from the generated files."""
    inc = _files_up_to(paths, day, settings.paths.root / "files_up_to")
    with connect(settings) as con:
        con.execute("create schema if not exists marts")
        con.execute(f"create or replace table marts.customer_features as {feature_query(paths, day, inc)}")
        con.execute(f"""
            create or replace table marts.orders as
            select cast(ordered_at as date) as order_date, channel, status, amount
            from read_parquet('{inc}/orders/*/*.parquet', union_by_name = true)""")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift_quality")
    lakes = {
        "stationary": config.load(root / "stationary").paths,
        "shift": config.load(root / "shift").paths,
        "units": config.load(root / "units").paths,
    }
    generate(lakes["stationary"], customers=CUSTOMERS, days=DAYS, end=END, seed=SEED)
    generate(lakes["shift"], customers=CUSTOMERS, days=DAYS, end=END, seed=SEED, drift_from=SHIFT_DAY)
    generate(lakes["units"], customers=CUSTOMERS, days=DAYS, end=END, seed=SEED,
             faults=[f"orders:wrong_units:{UNITS_DAY.isoformat()}"])
    defaults = config.load(root / "defaults").ml
    settings = small_settings(root / "data").with_overrides(
        {
            "ml": {
                "features": list(defaults.features),
                "log_features": list(defaults.log_features),
                "k_min": 4,
                "k_max": 7,
            },
            "drift": {"segment_sample_size": 5000},
        }
    )
    write_day(settings, lakes["stationary"], TRAIN_DAY)
    train.run(settings, TRAIN_DAY)
    return settings, lakes, tracking.load_champion(settings)


def dbt_and_query_features(lake: config.Paths, day: dt.date, root: Path, features: list[str]):
    """marts.customer_features of the lake's files up to `day`, once built by dbt (landed, then seeds + models as
    the DAG runs them) and once from `feature_query`, joined on customer_id: (dbt frame, query frame)."""
    from seg.generate import DEPLOYMENT
    from seg.lake import landing
    from seg.lake.money import reporting_currency
    from seg.transform import dbt as seg_dbt

    for source in lake.incoming.iterdir():
        for folder in source.iterdir():
            if dt.date.fromisoformat(folder.name) <= day:
                shutil.copytree(folder, root / "incoming" / source.name / folder.name)
    config.write_deployment(root, DEPLOYMENT, "# the generator's deployment (tests/ml/test_drift_quality.py)\n")
    settings = config.load(root)
    landing.land_all(settings, day)
    seg_dbt.invoke(settings, ["build", "--resource-type", "seed", "--resource-type", "model"], day.isoformat(),
                   extra_vars={"reporting_currency": reporting_currency(settings)})
    columns = ", ".join(features)
    with connect(settings, read_only=True) as con:
        built = con.execute(f"select customer_id, {columns} from marts.customer_features "
                            "where customer_id is not null order by customer_id").df()
        ours = con.execute(f"select customer_id, {columns} from ({feature_query(lake, day, root / 'incoming')}) "
                           "order by customer_id").df()
    return built, ours


def feature_mismatches(built, ours, features: list[str]) -> dict[str, float]:
    """Per feature, the share of customers (in either frame) whose values differ (NULL = NULL; 1e-9 relative)."""
    import numpy as np

    both = built.merge(ours, on="customer_id", how="outer", suffixes=("_dbt", "_query"), indicator=True)
    out = {"customer_id": float((both["_merge"] != "both").mean())}
    for f in features:
        a, b = both[f"{f}_dbt"].astype(float).to_numpy(), both[f"{f}_query"].astype(float).to_numpy()
        same = (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=1e-9, atol=1e-9)
        out[f] = float((~same).mean())
    return out


def _decisions(world, lake: str, days: list[dt.date]) -> dict[dt.date, dict]:
    settings, lakes, model = world
    out = {}
    for day in days:
        write_day(settings, lakes[lake], day)
        out[day] = monitor.compute(settings, day, model)
    return out


def test_twenty_stationary_days_after_a_training_never_ask_for_a_retrain(world):
    days = [TRAIN_DAY + dt.timedelta(days=i) for i in range(1, 21)]
    reports = _decisions(world, "stationary", days)
    retrains = {d.isoformat(): r["reasons"] for d, r in reports.items() if r["decision"] == rules.RETRAIN}
    assert retrains == {}
    # lifetime totals are compared over the reference window: recency and the counts stay below the act level
    assert all(r["rescale_factor"] < 1.0 for r in reports.values())
    worst = max(f["psi"] for r in reports.values() for f in r["features"] if f["feature"] == "recency_days")
    assert worst < world[0].drift.psi_act


def test_a_persona_mix_shift_asks_for_a_retrain_on_its_first_or_second_day(world):
    before = SHIFT_DAY - dt.timedelta(days=1)
    reports = _decisions(world, "shift", [before, SHIFT_DAY, SHIFT_DAY + dt.timedelta(days=1)])
    assert reports[before]["decision"] != rules.RETRAIN
    flagged = [d for d in (SHIFT_DAY, SHIFT_DAY + dt.timedelta(days=1)) if reports[d]["decision"] == rules.RETRAIN]
    assert flagged, {d.isoformat(): r["reasons"] for d, r in reports.items()}
    assert any("behaviour changed" in reason for reason in reports[flagged[0]]["reasons"])


def test_amounts_times_100_in_one_orders_file_are_flagged_on_the_order_amount(world):
    settings, _, _ = world
    report = _decisions(world, "units", [UNITS_DAY])[UNITS_DAY]
    flows = {f["flow"]: f for f in report["flows"]}
    assert flows["orders.amount"]["status"] == rules.DRIFT
    assert flows["orders.amount"]["psi"] > 1.0
    assert flows["orders.channel"]["status"] == rules.STABLE
    assert report["decision"] == rules.WARN
    assert any("orders.amount" in r and "check the source" in r for r in report["reasons"])
    # the full run writes the report, the MLflow run and the monitoring rows for the day
    out = monitor.run(settings, UNITS_DAY)
    assert out["decision"] == rules.WARN
    with connect(settings, read_only=True) as con:
        (status,) = con.execute(
            "select status from monitoring.drift_metrics where as_of_date = ? and feature = 'orders.amount'",
            [UNITS_DAY],
        ).fetchone()
    assert status == rules.DRIFT
    assert "orders.amount" in Path(out["report_html"]).read_text()
    monitor.run(settings, UNITS_DAY)  # a rerun replaces the day's rows
    with connect(settings, read_only=True) as con:
        shares = con.execute(
            "select segment, value from monitoring.drift_segment_metrics where as_of_date = ? and kind = 'share'",
            [UNITS_DAY],
        ).fetchall()
        (features_rows,) = con.execute(
            "select count(*) from monitoring.drift_metrics where as_of_date = ? and kind = 'feature'", [UNITS_DAY]
        ).fetchone()
    assert len(shares) == len({s for s, _ in shares}) >= 2
    assert sum(v for _, v in shares) == pytest.approx(1.0)
    assert features_rows == len(report["features"])


def test_a_drift_retrain_replaces_the_champion_and_the_behaviour_change_is_acted_on_once(world):
    """Runs last: it changes the registry. The shift-day model is judged against the champion on the same day's
    customers (a stale champion's training silhouette is no yardstick once the population moved), so it can win;
    the days after it repeat the behaviour signal (their order-flow window is still pre-shift), which the policy
    remembers as acted on: warnings, not a new model a day."""
    settings, lakes, stale = world
    write_day(settings, lakes["shift"], SHIFT_DAY)
    assert monitor.run(settings, SHIFT_DAY)["decision"] == rules.RETRAIN  # recorded in monitoring.drift_decisions
    out = train.run(settings, SHIFT_DAY)
    assert out["promoted"], out["promotion_reason"]
    assert "today's fit sample" in out["promotion_reason"]
    fresh = tracking.load_champion(settings)
    assert fresh.version == out["model_version"] != stale.version
    reports = _decisions((settings, lakes, fresh), "shift", [SHIFT_DAY + dt.timedelta(days=i) for i in range(1, 7)])
    assert all(r["decision"] != rules.RETRAIN for r in reports.values()), {
        d.isoformat(): r["reasons"] for d, r in reports.items()}
    remembered = [d for d, r in reports.items() if any(f"already acted on: retrain decided on {SHIFT_DAY}" in reason
                                                       for reason in r["reasons"])]
    assert remembered, {d.isoformat(): r["reasons"] for d, r in reports.items()}


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "issue #14: the test's feature query (seg.generate.validate.FEATURE_SQL) and dbt's marts.customer_features "
    "disagree today. Measured on this lake as of TRAIN_DAY: recency_days is 1 day higher in the query for ~72 % of "
    "customers (it counts from day + 1), frequency / monetary / session and event counts are higher for ~13-15 % "
    "(query above dbt; cause not yet established), ~3 % of customers are in only one side (identity resolution "
    "vs the true identities, presumably). strict: once the definitions agree this XPASSes and fails, "
    "and the marker must go."))
def test_the_feature_query_gives_the_dbt_features_of_the_same_lake_and_date(tmp_path_factory):
    """The drift bars above stand on `feature_query` being dbt's features: build dbt's marts.customer_features once
    (one date, a smaller lake of the same generator, seed and dates: a definition does not depend on the scale) and
    compare every column the drift tests use, customer by customer."""
    root = tmp_path_factory.mktemp("feature_query_vs_dbt")
    lake = config.load(root / "lake").paths
    generate(lake, customers=3000, days=DAYS, end=END, seed=SEED)
    features = list(config.load(root / "defaults").ml.features)
    built, ours = dbt_and_query_features(lake, TRAIN_DAY, root / "dbt", features)
    assert len(built) > 1000 and len(ours) > 1000
    mismatches = feature_mismatches(built, ours, features)
    assert {f: share for f, share in mismatches.items() if share > 0} == {}
