"""Training and assignment on data shaped like a user's: the CDNOW purchase log (orders only, heavy tails).

tests/fixtures/cdnow_customers_0001_2000.txt holds every purchase of CDNOW's customers 1-2000 (6 503 lines, as
shipped in the `lifetimes` wheel). marts.customer_features is computed from it with DuckDB SQL as dbt builds it
for an orders-only deployment (tests/ml/cdnow.py): recency, frequency, monetary and average order value, every
other feature NULL. The real settings, a real DuckDB file and a real MLflow store in a temp directory; no mocks.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from ml import assign, tracking, train
from seg.core.config import load
from seg.core.warehouse import connect
from seg.pipeline import daily as pipeline

from . import cdnow
from .conftest import write_features

FIXTURE = cdnow.SAMPLE.with_name("cdnow_customers_0001_2000.txt")
CUSTOMERS = 2000


def _settings(root):
    return load(root)


def _frame(settings, as_of=cdnow.AS_OF):
    from ml import features

    return cdnow.features_frame(FIXTURE, features.configured_features(settings), as_of)


def _assignments(settings):
    with connect(settings, read_only=True) as con:
        return con.execute("select person_id, segment_id, model_version from ml_stage.customer_assignments").df()


@pytest.fixture(scope="module")
def cdnow_world(tmp_path_factory):
    settings = _settings(tmp_path_factory.mktemp("cdnow") / "data")
    frame = _frame(settings)
    assert len(frame) == CUSTOMERS
    write_features(settings, frame)
    result = train.run(settings, cdnow.AS_OF)
    return settings, frame, result


def test_the_fixture_is_heavy_tailed_like_the_real_log(cdnow_world):
    _, frame, _ = cdnow_world
    assert (frame["frequency"] == 1).mean() > 0.3  # a mass of one-order customers
    assert frame["monetary"].max() > 20 * frame["monetary"].median()  # a long tail
    assert frame["discount_share"].isna().all() and frame["tenure_days"].isna().all()


def test_first_training_on_orders_only_data_promotes_a_champion(cdnow_world):
    settings, _, result = cdnow_world
    assert result["promoted"] is True
    champion = tracking.champion_version(settings)
    assert champion is not None and str(champion.version) == result["model_version"]
    assert pipeline.load_champion(settings, cdnow.AS_OF)["model_version"] == result["model_version"]
    assert result["features"] == ["recency_days", "frequency", "monetary", "avg_order_value"]
    assert result["dropped_features"]["store_spend"] == "all NULL"
    assert isinstance(result["weaknesses"], list)
    tag = "; ".join(result["weaknesses"]) or "none"
    assert champion.tags["promotion_weaknesses"] == tag
    run = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(result["run_id"])
    assert run.data.tags["promotion_weaknesses"] == tag


def test_the_rfm_baseline_is_a_candidate_and_is_stable_on_heavy_tails(cdnow_world):
    settings, _, result = cdnow_world
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    parent = client.get_run(result["run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'"
    )
    rfm = [c for c in children if c.data.params["family"] == "rfm"]
    ks = sorted(int(c.data.params["k"]) for c in rfm)
    assert ks and set(ks) <= set(range(settings.ml.k_min, settings.ml.k_max + 1))
    assert all(c.data.params["scores"] == "recency_days,frequency,monetary" for c in rfm)
    # force the RFM baseline to be chosen (all other families off) and look at its bootstrap stability
    from ml import candidates, features, selection

    frame = _frame(settings)
    used = result["features"]
    pre = features.build_preprocessor(used, [f for f in settings.ml.log_features if f in used], 5.0)
    xt = pre.fit_transform(frame[used])
    cands = candidates.fit_rfm(xt, [3, 5], settings.ml, features.value_columns(pre))
    assert [c.k for c in cands] == [3, 5]
    assert all(selection.stability(c, xt, settings.ml) >= 0.9 for c in cands)


def test_every_customer_gets_exactly_one_segment(cdnow_world):
    settings, frame, result = cdnow_world
    out = assign.run(settings, cdnow.AS_OF)
    table = _assignments(settings)
    assert out["rows"] == len(table) == CUSTOMERS
    assert table["person_id"].is_unique and set(table["person_id"]) == set(frame["person_id"])
    assert table["segment_id"].notna().all()
    assert set(table["model_version"]) == {result["model_version"]}
    assert table["segment_id"].nunique() == result["k"]


def test_a_rerun_of_the_date_reuses_the_champion_and_changes_nothing(cdnow_world):
    settings, _, result = cdnow_world
    before = _assignments(settings).sort_values("person_id", ignore_index=True)
    go, reason = pipeline.should_train(settings, "none", cdnow.AS_OF)
    assert go is False and "already trained" in reason
    assert pipeline.load_champion(settings, cdnow.AS_OF)["model_version"] == result["model_version"]
    assign.run(settings, cdnow.AS_OF)
    assert _assignments(settings).sort_values("person_id", ignore_index=True).equals(before)


def test_a_date_left_without_a_champion_trains_again_on_rerun_and_assigns(cdnow_world):
    """The state the issue left behind: the date's only version is a challenger and no champion exists (the
    first training of an older release). The rerun must not reuse it; it trains, promotes and assigns. Runs last
    in this module: it changes the registry."""
    settings, _, result = cdnow_world
    client = tracking.client(settings)
    name = settings.ml.registered_model_name
    client.delete_registered_model_alias(name, tracking.CHAMPION)
    client.set_registered_model_alias(name, tracking.CHALLENGER, result["model_version"])
    with pytest.raises(RuntimeError, match="rerun the date"):
        pipeline.load_champion(settings, cdnow.AS_OF)

    go, reason = pipeline.should_train(settings, "none", cdnow.AS_OF)
    assert go is True and "not a champion" in reason
    second = pipeline.train(settings, cdnow.AS_OF)
    assert second["promoted"] is True and second["model_version"] != result["model_version"]
    # the alias waits for the segments gate: the day assigns with the new version, the promote step moves it
    assert tracking.champion_version(settings) is None
    assigned = pipeline.assign(settings, cdnow.AS_OF)
    assert (assigned["rows"], assigned["model_version"]) == (CUSTOMERS, second["model_version"])
    assert pipeline.promote(settings, cdnow.AS_OF)["champion_moved"] is True
    assert pipeline.load_champion(settings, cdnow.AS_OF)["model_version"] == second["model_version"]
    # and from now on the date is settled
    assert pipeline.should_train(settings, "none", cdnow.AS_OF)[0] is False


def test_a_first_model_below_the_bars_is_champion_with_its_weaknesses_recorded(tmp_path):
    # no candidate reaches min_stability, not even the RFM baseline
    settings = _settings(tmp_path / "data").with_overrides(
        {"ml": {"selection": {"min_stability": 0.9999, "min_silhouette": 0.99}}}
    )
    write_features(settings, _frame(settings))
    result = train.run(settings, cdnow.AS_OF)

    assert result["promoted"] is True
    assert "none of the top" in result["selection_reason"]
    assert any(w.startswith("stability ") and "< 0.9999" in w for w in result["weaknesses"]), result["weaknesses"]
    assert any(w.startswith("silhouette ") and "< 0.99" in w for w in result["weaknesses"]), result["weaknesses"]
    assert "despite its weaknesses" in result["promotion_reason"]
    champion = tracking.champion_version(settings)
    assert str(champion.version) == result["model_version"]
    assert champion.tags["promotion_weaknesses"] == "; ".join(result["weaknesses"])
    run = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(result["run_id"])
    assert run.data.tags["promotion_weaknesses"] == "; ".join(result["weaknesses"])
    assert run.data.metrics["n_weaknesses"] == len(result["weaknesses"])
    assert assign.run(settings, cdnow.AS_OF)["rows"] == CUSTOMERS


def test_data_that_cannot_be_segmented_fails_saying_what_to_change(tmp_path):
    settings = _settings(tmp_path / "data")
    frame = _frame(settings)

    write_features(settings, frame.head(20))
    with pytest.raises(RuntimeError, match=r"holds 20 customers: at least 30 .*lower ml.k_min"):
        train.run(settings, cdnow.AS_OF)

    same = frame.head(500).copy()
    for f in ("recency_days", "frequency", "monetary", "avg_order_value"):
        same[f] = same[f].iloc[0]
    write_features(settings, same)
    with pytest.raises(RuntimeError, match="no feature of marts.customer_features can separate customers"):
        train.run(settings, cdnow.AS_OF)  # every feature constant: all dropped

    few = frame.head(500).copy()
    few[["recency_days", "frequency", "monetary", "avg_order_value"]] = [
        [10.0, 1.0, 5.0, 5.0],
        [20.0, 2.0, 9.0, 4.5],
    ] * 250
    write_features(settings, few)
    with pytest.raises(RuntimeError, match=r"only 2 distinct feature vector\(s\)"):
        train.run(settings, cdnow.AS_OF)
    assert tracking.champion_version(settings) is None
