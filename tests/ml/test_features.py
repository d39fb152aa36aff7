"""Reading marts.customer_features from DuckDB and the preprocessing transformer."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ml import features
from seg.core.warehouse import connect

from .conftest import small_settings


@pytest.fixture
def table(tmp_path):
    """A 1000-row feature table: x = 0..999, y with a NULL every 4th row, an INTEGER and a DECIMAL column, one
    all-NULL column."""
    settings = small_settings(tmp_path / "data")
    with connect(settings) as con:
        con.execute("create schema marts")
        con.execute(
            """
            create table marts.customer_features as
            select 'p' || lpad(i::varchar, 4, '0') as person_id,
                   case when i % 3 = 0 then null else 'c' || i::varchar end as customer_id,
                   date '2024-03-04' as as_of_date,
                   i::double as x,
                   case when i % 4 = 0 then null else i % 10 end::integer as y,
                   (i / 7)::decimal(10, 2) as d,
                   null::double as empty
            from range(1000) r(i)
            """
        )
    return settings


def test_all_null_and_missing_features_are_dropped_and_reported(table):
    with connect(table, read_only=True) as con:
        selection = features.resolve_features(con, ["x", "empty", "y", "not_there"])
    assert selection.used == ["x", "y"]
    assert selection.dropped == {"empty": "all NULL", "not_there": "missing from table"}


def test_sample_is_deterministic_sized_and_numeric(table):
    with connect(table, read_only=True) as con:
        a = features.sample_frame(con, ["x", "y", "d"], 100, seed=42)
        b = features.sample_frame(con, ["x", "y", "d"], 100, seed=42)
        c = features.sample_frame(con, ["x", "y", "d"], 100, seed=7)
        everyone = features.sample_frame(con, ["x"], 5000, seed=42)
    assert len(a) == 100 and a["person_id"].is_unique
    assert a["person_id"].tolist() == b["person_id"].tolist()
    assert set(a["person_id"]) != set(c["person_id"])
    assert len(everyone) == 1000
    assert all(a[col].dtype == np.float64 for col in ("x", "y", "d"))
    assert a["y"].isna().any()


def test_chunks_cover_every_row_exactly_once(table):
    with connect(table, read_only=True) as con:
        chunks = list(features.iter_chunks(con, ["x", "y"], chunk_size=300))
    assert len(chunks) >= 4
    assert all(len(chunk) <= 300 for chunk in chunks)
    ids = pd.concat([chunk["person_id"] for chunk in chunks])
    assert len(ids) == 1000 and ids.is_unique


def test_quantile_bins_split_a_uniform_column_evenly_and_count_nulls(table):
    with connect(table, read_only=True) as con:
        edges = features.quantile_edges(con, ["x", "y"], bins=10)
        shares = features.bin_proportions(con, edges)
    assert len(edges["x"]) == 9
    assert shares["x"]["proportions"] == pytest.approx([0.1] * 10)
    assert shares["x"]["null_proportion"] == 0.0
    # y = i % 10 with every 4th row NULL: counted against numpy on the same edges
    y = np.array([np.nan if i % 4 == 0 else i % 10 for i in range(1000)])
    observed = y[~np.isnan(y)]
    expected = np.bincount(np.searchsorted(edges["y"], observed, side="left"), minlength=len(edges["y"]) + 1) / 1000
    assert shares["y"]["proportions"] == pytest.approx(expected.tolist())
    assert shares["y"]["null_proportion"] == pytest.approx(0.25)
    assert sum(shares["y"]["proportions"]) + shares["y"]["null_proportion"] == pytest.approx(1.0)


def test_preprocessor_logs_imputes_flags_and_scales_without_warnings():
    frame = pd.DataFrame(
        {"monetary": [10.0, 100.0, np.nan, -5.0, 1000.0, 50.0], "discount_share": [0.1, 0.2, 0.3, np.nan, 0.5, 0.4]}
    )
    pre = features.build_preprocessor(["monetary", "discount_share"], log_features=["monetary"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a negative amount must not reach log1p
        out = pre.fit_transform(frame)
    names = list(pre.get_feature_names_out())
    assert names == [
        "log__monetary",
        "log__missingindicator_monetary",
        "linear__discount_share",
        "linear__missingindicator_discount_share",
    ]
    assert not np.isnan(out).any()
    # indicators stay 0/1; value columns are standardised over the observed values
    assert set(out[:, 1]) == {0.0, 1.0} and out[2, 1] == 1.0
    observed = np.log1p(np.clip(frame["monetary"].dropna().to_numpy(), 0, None))
    assert out[0, 0] == pytest.approx((np.log1p(10.0) - observed.mean()) / observed.std())


def test_screening_drops_constant_almost_empty_and_near_constant_features_but_keeps_a_mass_at_one():
    n = 1000
    frame = pd.DataFrame(
        {
            "web_order_share": np.zeros(n),  # an export without channels
            "discount_share": [0.1] * 5 + [np.nan] * (n - 5),  # a value for 0.5 % of the rows
            "store_spend": [5.0] * 2 + [0.0] * (n - 2),  # one value in 99.8 %
            "frequency": np.where(np.arange(n) < 600, 1.0, np.arange(n) % 7 + 2.0),  # 60 % bought once
            "brand_loyalty": np.full(n, np.nan),
        }
    )
    dropped = features.screen_features(frame, list(frame.columns), 0.01, 0.995)
    assert set(dropped) == {"web_order_share", "discount_share", "store_spend", "brand_loyalty"}
    assert dropped["web_order_share"].startswith("constant")
    assert "min_non_null_share" in dropped["discount_share"]
    assert "max_mode_share" in dropped["store_spend"]


def test_preprocessor_winsorises_extreme_customers_at_clip_z():
    rng = np.random.default_rng(0)
    values = np.append(rng.normal(100.0, 10.0, 999), 10_000.0)  # one customer far out in the tail
    frame = pd.DataFrame({"recency_days": values})
    out = features.build_preprocessor(["recency_days"], [], clip_z=3.0).fit_transform(frame)
    assert out[:, 0].max() == pytest.approx(3.0)
    assert np.abs(out[:-1, 0]).max() < 3.0  # everyone else untouched
    unclipped = features.build_preprocessor(["recency_days"], []).fit_transform(frame)
    assert unclipped[:, 0].max() > 30


def test_value_columns_locate_each_feature_in_the_preprocessed_matrix():
    frame = pd.DataFrame({"monetary": [1.0, np.nan, 3.0], "recency_days": [5.0, 6.0, np.nan]})
    pre = features.build_preprocessor(["recency_days", "monetary"], ["monetary"], clip_z=5.0)
    pre.fit(frame)
    assert features.value_columns(pre) == {"monetary": 0, "recency_days": 2}
