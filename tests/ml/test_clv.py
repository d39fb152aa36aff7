"""ml.clv against the literature, against `lifetimes` (test-only reference) and on hand-computed data.

The CDNOW sample (2,357 customers who first bought in Q1 1997, every purchase to 1998-06-30) ships inside the
`lifetimes` wheel as CDNOW_sample.txt, with Fader & Hardie's own calibration summary
(cdnow_customers_summary_with_transactions.csv: x, t_x, T in weeks, zbar = mean repeat-purchase value). Calibration
is the 39 weeks 1997-01-01..1997-09-30, holdout the next 39 weeks. Published values:

- BG/NBD (Fader, Hardie & Lee 2005, Marketing Science 24(2), table / section 3): r = 0.243, alpha = 4.414,
  a = 0.793, b = 2.426, LL = -9582.4, in weeks. Issue #20's bar: parameters within 1 %, LL within 0.5.
- Gamma-Gamma (Fader, Hardie & Lee 2005, JMR 42(4); Fader & Hardie's gamma-gamma note): p = 6.25, q = 3.74,
  v = 15.44 on the 946 repeat buyers.

No network: the data files come from the installed wheel.
"""

from __future__ import annotations

import importlib.util
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import ml.clv as clv
from ml.clv import BgNbd, ClvFitError, GammaGamma

DATASETS = Path(importlib.util.find_spec("lifetimes").origin).parent / "datasets"
CDNOW_LOG = DATASETS / "CDNOW_sample.txt"
CDNOW_SUMMARY = DATASETS / "cdnow_customers_summary_with_transactions.csv"
CALIBRATION_END = date(1997, 9, 30)  # 39 weeks from 1997-01-01, end date inside the period
HOLDOUT_END = date(1998, 6, 30)  # the next 39 weeks

PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


# --- data ---------------------------------------------------------------------------------------------------------


def _cdnow_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with `marts.orders` shaped like ours (person_id, order_date, amount_reporting,
    is_completed) holding the CDNOW purchase log: customer (sample id), YYYYMMDD date, CDs, dollars."""
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        f"""
        create table marts.orders as
        with lines as (
            select regexp_split_to_array(trim(line), '\\s+') as f
            from read_csv('{CDNOW_LOG}', header = false, delim = '\\t', columns = {{'line': 'VARCHAR'}})
            where trim(line) <> ''
        )
        select
            'P' || f[2] as person_id,
            strptime(f[3], '%Y%m%d')::date as order_date,
            cast(f[5] as decimal(18, 2)) as amount_reporting,
            true as is_completed
        from lines
        """
    )
    return con


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """Our SQL summary of the CDNOW log, in weeks, with the holdout count; ordered by Fader & Hardie's ID."""
    with _cdnow_connection() as con:
        summary = clv.summary_from_orders(con, calibration_end=CALIBRATION_END, holdout_end=HOLDOUT_END, unit="weeks")
    summary["ID"] = summary["person_id"].str[1:].astype(int)
    return summary.sort_values("ID").reset_index(drop=True)


@pytest.fixture(scope="module")
def cdnow_fit(cdnow) -> BgNbd:
    return BgNbd("weeks").fit(cdnow["x"], cdnow["t_x"], cdnow["T"])


@pytest.fixture(scope="module")
def cdnow_boot(cdnow) -> clv.ClvBootstrap:
    return clv.bootstrap(cdnow, unit="weeks", n_resamples=40, seed=11)


# --- summary_from_orders ------------------------------------------------------------------------------------------


def _tiny_orders(con) -> None:
    """Hand-built orders; the expected summary is worked out in the test below."""
    con.execute("create schema marts")
    con.execute(
        """
        create table marts.orders (person_id varchar, order_date date, amount_reporting decimal(18, 2),
                                   is_completed boolean);
        insert into marts.orders values
            -- A: first 01-01, repeats 01-08 (two orders, one day: 10 + 5) and 01-29; one cancelled 01-20;
            --    one after the calibration end (holdout) on 02-10
            ('A', '2024-01-01', 20.00, true),
            ('A', '2024-01-08', 10.00, true),
            ('A', '2024-01-08',  5.00, true),
            ('A', '2024-01-20', 99.00, false),
            ('A', '2024-01-29', 45.00, true),
            ('A', '2024-02-10', 12.00, true),
            -- B: a single purchase on 01-15 (x = 0), two orders that day
            ('B', '2024-01-15', 30.00, true),
            ('B', '2024-01-15',  7.00, true),
            -- C: first purchase after the calibration end: not a calibration customer
            ('C', '2024-02-05', 50.00, true),
            -- D: only a cancelled order: not a customer
            ('D', '2024-01-03', 40.00, false),
            -- a guest order without a person
            (null, '2024-01-02', 11.00, true);
        """
    )


def test_summary_from_orders_counts_repeat_purchase_days_by_hand():
    with duckdb.connect() as con:
        _tiny_orders(con)
        days = clv.summary_from_orders(con, calibration_end=date(2024, 1, 31), holdout_end=date(2024, 2, 29))
        weeks = clv.summary_from_orders(con, calibration_end=date(2024, 1, 31), unit="weeks")

    assert list(days["person_id"]) == ["A", "B"]
    a, b = days.iloc[0], days.iloc[1]
    # A: purchase days 01-01, 01-08, 01-29 -> x = 2; last - first = 28 days; end - first = 30 days;
    # repeat spend (15 + 45) / 2 = 30; holdout: 02-10 (02-05 is C's) -> 1; holdout length 29 days.
    assert (a["x"], a["t_x"], a["T"], a["mean_spend"]) == (2, 28.0, 30.0, 30.0)
    assert (a["x_holdout"], a["holdout_length"]) == (1, 29.0)
    # B: one purchase day 01-15 -> x = 0, t_x = 0, T = 16 days, no repeat spend.
    assert (b["x"], b["t_x"], b["T"]) == (0, 0.0, 16.0)
    assert np.isnan(b["mean_spend"])
    assert b["x_holdout"] == 0
    # weeks = days / 7, no holdout columns when no holdout_end
    assert list(weeks.columns) == ["person_id", "x", "t_x", "T", "mean_spend"]
    np.testing.assert_allclose(weeks["t_x"], [4.0, 0.0])
    np.testing.assert_allclose(weeks["T"], [30 / 7, 16 / 7])


def test_summary_from_orders_counts_every_row_without_an_include_column():
    with duckdb.connect() as con:
        _tiny_orders(con)
        summary = clv.summary_from_orders(con, include_col=None, calibration_end=date(2024, 1, 31))
    # D's cancelled order now makes D a customer; A's cancelled 01-20 order is a fourth purchase day.
    assert list(summary["person_id"]) == ["A", "B", "D"]
    assert summary.loc[0, "x"] == 3
    assert summary.loc[0, "mean_spend"] == pytest.approx((15 + 99 + 45) / 3)


def test_summary_of_the_cdnow_log_matches_fader_hardies_own_summary(cdnow):
    published = pd.read_csv(CDNOW_SUMMARY)
    assert len(cdnow) == len(published) == 2357
    assert (cdnow["ID"].to_numpy() == published["ID"].to_numpy()).all()
    assert (cdnow["x"].to_numpy() == published["x"].to_numpy()).all()
    # published times and spend are rounded to 2 decimals
    np.testing.assert_allclose(cdnow["t_x"], published["t_x"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(cdnow["T"], published["T"], atol=0.005 + 1e-9)
    np.testing.assert_allclose(cdnow["mean_spend"].fillna(0), published["zbar"], atol=0.005 + 1e-9)


def test_summary_from_orders_refuses_names_it_cannot_quote():
    with duckdb.connect() as con, pytest.raises(ValueError, match="relation"):
        clv.summary_from_orders(con, "orders; drop table x", calibration_end=date(2024, 1, 1))
    with duckdb.connect() as con, pytest.raises(ValueError, match="holdout_end"):
        clv.summary_from_orders(con, calibration_end=date(2024, 1, 1), holdout_end=date(2024, 1, 1))
    with duckdb.connect() as con, pytest.raises(ValueError, match="unit"):
        clv.summary_from_orders(con, calibration_end=date(2024, 1, 1), unit="months")


# --- the published CDNOW fits -------------------------------------------------------------------------------------


def test_bgnbd_reproduces_the_published_cdnow_parameters_and_log_likelihood(cdnow_fit):
    fitted = cdnow_fit.params_.as_dict()
    print(
        "\nBG/NBD on CDNOW (weeks):",
        {k: round(v, 4) for k, v in fitted.items()},
        "LL",
        round(cdnow_fit.log_likelihood_, 2),
    )
    for name, published in PUBLISHED_BGNBD.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), name
    assert abs(cdnow_fit.log_likelihood_ - PUBLISHED_LL) < 0.5


def test_the_fit_on_fader_hardies_rounded_summary_agrees_too():
    published = pd.read_csv(CDNOW_SUMMARY)
    fit = BgNbd("weeks").fit(published["x"], published["t_x"], published["T"])
    for name, value in PUBLISHED_BGNBD.items():
        assert getattr(fit.params_, name) == pytest.approx(value, rel=0.01), name
    assert abs(fit.log_likelihood_ - PUBLISHED_LL) < 0.5


def test_gamma_gamma_reproduces_the_published_cdnow_parameters(cdnow):
    fit = GammaGamma().fit(cdnow["x"], cdnow["mean_spend"])
    fitted = fit.params_.as_dict()
    print("\nGamma-Gamma on CDNOW:", {k: round(v, 3) for k, v in fitted.items()}, "repeat buyers", fit.n_customers_)
    assert fit.n_customers_ == 946
    for name, published in PUBLISHED_GG.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), name


def test_bgnbd_recovers_the_parameters_of_simulated_customers():
    """Customers drawn from the BG/NBD story itself: the fit must find the parameters they were drawn with."""
    rng = np.random.default_rng(7)
    n, r, alpha, a, b = 20_000, 0.5, 5.0, 0.8, 2.5
    lam, p_drop, T = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), rng.uniform(20, 40, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p_drop[i]:
                break
    fit = BgNbd("weeks").fit(x, t_x, T).params_
    assert fit.r == pytest.approx(r, rel=0.10)
    assert fit.alpha == pytest.approx(alpha, rel=0.10)
    assert fit.a / (fit.a + fit.b) == pytest.approx(a / (a + b), rel=0.10)  # mean drop-out probability
    assert fit.a == pytest.approx(a, rel=0.25)
    assert fit.b == pytest.approx(b, rel=0.25)


# --- parity with lifetimes (test-only import) ---------------------------------------------------------------------


def test_predictions_match_lifetimes_for_a_handful_of_customers(cdnow, cdnow_fit):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    ref = BetaGeoFitter().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    for name in PUBLISHED_BGNBD:
        assert getattr(cdnow_fit.params_, name) == pytest.approx(ref.params_[name], rel=1e-3), name

    # same parameters in both, so any difference is in the formulas
    params = clv.BgNbdParams(*(float(ref.params_[k]) for k in ("r", "alpha", "a", "b")))
    rows = cdnow.iloc[[0, 1, 2, 5, 6, 17, 157, 1515]]  # 0-7+ repeat purchases, recent and lapsed
    assert rows["x"].nunique() >= 5
    x, t_x, T = rows["x"].to_numpy(float), rows["t_x"].to_numpy(), rows["T"].to_numpy()
    for weeks in (1, 10, 39, 52):
        ours = clv.bgnbd.expected_purchases(params, weeks, x, t_x, T)
        theirs = ref.conditional_expected_number_of_purchases_up_to_time(weeks, x, t_x, T)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(
        clv.bgnbd.p_alive(params, x, t_x, T), ref.conditional_probability_alive(x, t_x, T), rtol=1e-6
    )
    np.testing.assert_allclose(
        cdnow_fit.expected_purchases_new([7, 70, 273]),
        ref.expected_number_of_purchases_up_to_time(np.array([1, 10, 39])),
        rtol=1e-3,
    )

    repeat = cdnow[cdnow["x"] > 0]
    gg_ref = GammaGammaFitter().fit(repeat["x"], repeat["mean_spend"])
    gg_params = clv.GammaGammaParams(*(float(gg_ref.params_[k]) for k in ("p", "q", "v")))
    np.testing.assert_allclose(
        clv.gamma_gamma.expected_spend(gg_params, rows["x"], rows["mean_spend"]),
        gg_ref.conditional_expected_average_profit(rows["x"], rows["mean_spend"].fillna(0)),
        rtol=1e-8,
    )


# --- holdout validation -------------------------------------------------------------------------------------------


def test_holdout_repeat_purchases_by_calibration_frequency(cdnow, cdnow_fit):
    """Fader, Hardie & Lee's conditional-expectation check: customers grouped by calibration repeat purchases
    (0..7+), mean predicted vs actual repeat purchases in the 39 holdout weeks."""
    predicted = cdnow_fit.expected_purchases(cdnow["holdout_length"] * 7, cdnow["x"], cdnow["t_x"], cdnow["T"])
    frame = cdnow.assign(bucket=np.minimum(cdnow["x"], 7), predicted=predicted)
    table = frame.groupby("bucket").agg(
        customers=("x", "size"),
        actual=("x_holdout", "mean"),
        predicted=("predicted", "mean"),
        actual_total=("x_holdout", "sum"),
        predicted_total=("predicted", "sum"),
    )
    table.index = [*map(str, range(7)), "7+"]
    total_actual, total_predicted = table["actual_total"].sum(), table["predicted_total"].sum()
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(f"\nCDNOW 39-week holdout, repeat purchases by calibration frequency\n{table}")
    print(f"total actual {total_actual}, predicted {total_predicted:.1f} ({total_predicted / total_actual - 1:+.1%})")

    assert table["customers"].sum() == 2357
    assert total_actual == 1882
    # BG/NBD under-forecasts the CDNOW holdout in aggregate (lifetimes gives the same 1653.4); the published
    # parameters predict 12 % too few. A formula or data error moves this by far more.
    assert abs(total_predicted / total_actual - 1) < 0.15
    assert (np.abs(table["predicted"] / table["actual"] - 1) < 0.30).all()
    # more calibration purchases, more holdout purchases: in the data and in the model
    assert table["actual"].is_monotonic_increasing
    assert table["predicted"].is_monotonic_increasing
    # individual-level predictions add up to the model's aggregate forecast (E[X(T+39)] - E[X(T)] per customer)
    aggregate = (
        cdnow_fit.expected_purchases_new((cdnow["T"] + 39) * 7) - cdnow_fit.expected_purchases_new(cdnow["T"] * 7)
    ).sum()
    assert total_predicted == pytest.approx(aggregate, rel=0.02)


# --- CLV, bootstrap, segments -------------------------------------------------------------------------------------


def test_undiscounted_clv_is_expected_purchases_times_expected_spend(cdnow):
    model = clv.fit(cdnow, unit="weeks")
    plain = clv.customer_values(model, cdnow, annual_discount_rate=0.0)
    np.testing.assert_allclose(plain["clv"], plain["expected_purchases_365d"] * plain["expected_spend"], rtol=1e-9)
    discounted = clv.customer_values(model, cdnow)  # 10 % a year, monthly
    assert (discounted["clv"] < plain["clv"]).all()
    # monthly cash flows over one year at 10 %: the discount is between the end-of-year one and none
    assert (discounted["clv"] > plain["clv"] / 1.10).all()
    # a customer with no repeat purchase is worth the population's mean spend times their purchases
    one_off = cdnow["x"] == 0
    np.testing.assert_allclose(plain.loc[one_off, "expected_spend"], model.spend.population_mean_spend)
    assert plain["p_alive"].between(0, 1).all()
    assert (plain["expected_purchases_90d"] < plain["expected_purchases_365d"]).all()


def test_bootstrap_interval_contains_the_point_estimate_and_is_seeded(cdnow, cdnow_boot):
    assert cdnow_boot.n_failed == 0 and len(cdnow_boot.draws) == 40
    values = clv.customer_lifetime_value(cdnow, cdnow_boot)
    inside = (values["clv_lower"] <= values["clv"]) & (values["clv"] <= values["clv_upper"])
    assert inside.mean() > 0.95
    assert (values["clv_upper"] > values["clv_lower"]).all()

    again = clv.bootstrap(cdnow, unit="weeks", n_resamples=5, seed=11)
    assert again.parameter_table().equals(cdnow_boot.parameter_table().head(5))
    other = clv.bootstrap(cdnow, unit="weeks", n_resamples=5, seed=12)
    assert not other.parameter_table().equals(again.parameter_table())


def test_bootstrap_interval_narrows_with_more_customers(cdnow, cdnow_boot):
    def relative_width(summary, boot):
        totals = clv.segment_totals(summary, pd.Series("all", index=summary["person_id"]), boot)
        return float((totals["clv_total_upper"] - totals["clv_total_lower"]).iloc[0] / totals["clv_total"].iloc[0])

    quarter = cdnow.sample(frac=0.25, random_state=3).reset_index(drop=True)
    small = clv.bootstrap(quarter, unit="weeks", n_resamples=40, seed=11)
    wide, narrow = relative_width(quarter, small), relative_width(cdnow, cdnow_boot)
    print(f"\n90 % interval of total CLV / total: {len(quarter)} customers {wide:.1%}, {len(cdnow)} {narrow:.1%}")
    # a quarter of the customers: about twice the relative width (1/sqrt(n)); ask for clearly wider
    assert wide > 1.4 * narrow


def test_segment_totals_add_up_and_carry_intervals(cdnow, cdnow_boot):
    segment = pd.Series(np.where(cdnow["x"] > 0, "repeat", "one-off"), index=cdnow["person_id"])
    totals = clv.segment_totals(cdnow, segment, cdnow_boot).set_index("segment")
    print(f"\nCLV per segment (365 days, 10 %/year, 90 % bootstrap interval)\n{totals.round(2)}")
    values = clv.customer_values(cdnow_boot.point, cdnow)
    assert totals["customers"].to_dict() == {"one-off": 1411, "repeat": 946}
    assert totals["clv_total"].sum() == pytest.approx(values["clv"].sum())
    np.testing.assert_allclose(totals["clv_mean"], totals["clv_total"] / totals["customers"])
    assert (totals["clv_total_lower"] < totals["clv_total"]).all()
    assert (totals["clv_total"] < totals["clv_total_upper"]).all()
    assert totals.loc["repeat", "clv_mean"] > totals.loc["one-off", "clv_mean"]

    with pytest.raises(ValueError, match="no segment"):
        clv.segment_totals(cdnow, segment.iloc[:-3], cdnow_boot)


# --- data that cannot be fitted -----------------------------------------------------------------------------------


def test_no_repeat_buyers_is_refused_with_what_to_change():
    n = 100
    with pytest.raises(ClvFitError, match="no customer bought more than once"):
        BgNbd("weeks").fit(np.zeros(n), np.zeros(n), np.full(n, 30.0))
    with pytest.raises(ClvFitError, match="repeat buyers"):
        GammaGamma().fit(np.zeros(n), np.full(n, np.nan))


def test_too_few_customers_is_refused():
    with pytest.raises(ClvFitError, match="at least 50 customers, got 3"):
        BgNbd().fit([0, 1, 2], [0, 5, 9], [10, 10, 10])
    with pytest.raises(ClvFitError, match="at least 30 repeat buyers"):
        GammaGamma().fit([1, 2, 0], [10.0, 12.0, np.nan])


def test_data_the_model_cannot_describe_does_not_pass_as_a_fit():
    # everyone bought repeatedly and last bought at the calibration end: nobody ever drops out, a -> 0
    T = np.linspace(20, 40, 200)
    with pytest.raises(ClvFitError, match="BG/NBD fit"):
        BgNbd("weeks").fit(np.full(200, 5.0), T, T)
    # Cauchy-tailed spend: the mean spend has no finite expectation (q <= 1)
    rng = np.random.default_rng(0)
    with pytest.raises(ClvFitError, match="q = .* <= 1"):
        GammaGamma().fit(rng.integers(1, 5, 500), np.exp(rng.standard_cauchy(500)))
    with pytest.raises(ClvFitError, match="same mean spend"):
        GammaGamma().fit(np.ones(50), np.full(50, 9.99))


def test_inputs_that_break_the_definitions_are_refused():
    with pytest.raises(ValueError, match="exceeds T"):
        BgNbd().fit([1] * 60, [20] * 60, [10] * 60)
    with pytest.raises(ValueError, match="negative"):
        BgNbd().fit([-1] * 60, [0] * 60, [10] * 60)
    with pytest.raises(ValueError, match="x = 0 repeat purchases must have t_x = 0"):
        BgNbd().fit([0] * 60, [3] * 60, [10] * 60)
    with pytest.raises(ValueError, match="positive amount"):
        GammaGamma().fit([1] * 40, [0.0] * 40)
    with pytest.raises(ValueError, match="unit"):
        BgNbd("months").fit([1] * 60, [5] * 60, [10] * 60)
    with pytest.raises(ValueError, match="summary lacks"):
        clv.fit(pd.DataFrame({"x": [1]}), unit="days")
