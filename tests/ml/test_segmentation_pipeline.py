"""Train -> assign -> drift on planted blobs, against a real DuckDB file and MLflow SQLite store in a temp dir.

One training is shared by the module (it is the slow part: ~3-5 s); tests that change the table restore it.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.metrics import adjusted_rand_score

from ml import assign, explain, tracking, train
from ml.drift import monitor
from seg.core.warehouse import connect
from seg.transform import segments as publish

from .conftest import AS_OF, EMPTY_FEATURE, planted_blobs, small_settings, write_features

N_ROWS = 4000
N_BLOBS = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = small_settings(tmp_path_factory.mktemp("ml") / "data")
    frame, labels = planted_blobs(N_ROWS, N_BLOBS)
    write_features(settings, frame)
    result = train.run(settings, AS_OF)
    return settings, frame, labels, result


def _assignments(settings):
    with connect(settings, read_only=True) as con:
        return con.execute("select * from ml_stage.customer_assignments order by person_id").df()


def test_training_picks_the_planted_number_of_blobs(world):
    _, _, _, result = world
    assert result["k"] == N_BLOBS
    assert result["promoted"] is True
    assert result["metrics"]["silhouette"] > 0.5
    assert len(result["segment_names"]) == N_BLOBS
    assert len(set(result["segment_names"].values())) == N_BLOBS
    json.dumps(result)  # XCom-safe


def test_all_null_feature_is_dropped_and_recorded(world):
    settings, _, _, result = world
    assert EMPTY_FEATURE not in result["features"]
    assert result["dropped_features"] == {EMPTY_FEATURE: "all NULL"}
    champion = tracking.load_champion(settings)
    assert champion.features == result["features"]


def test_mlflow_has_parent_run_child_runs_metrics_artifacts_and_champion(world):
    settings, _, _, result = world
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    parent = client.get_run(result["run_id"])
    assert parent.data.tags["as_of_date"] == AS_OF.isoformat()
    assert parent.data.tags["rows"] == str(N_ROWS)
    assert parent.data.tags["features"] == ",".join(result["features"])
    assert parent.data.metrics["silhouette"] == pytest.approx(result["metrics"]["silhouette"])
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    kmeans = [c for c in children if c.data.params["family"] == "kmeans"]
    assert sorted(int(c.data.params["k"]) for c in kmeans) == list(range(2, 7))
    assert {c.data.params["family"] for c in children} >= {"kmeans", "ward", "gmm"}
    assert all(
        {"silhouette", "davies_bouldin", "calinski_harabasz", "inertia"} <= set(c.data.metrics) for c in children
    )
    chosen = [c for c in children if c.data.tags["chosen"] == "True"]
    assert len(chosen) == 1 and "stability" in chosen[0].data.metrics
    assert parent.data.metrics["input_rows"] == N_ROWS
    assert parent.inputs.dataset_inputs and parent.inputs.dataset_inputs[0].dataset.name.endswith(AS_OF.isoformat())
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {"plots/model_selection.png", "plots/pca_segments.png", "plots/segment_profiles.png"}
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.name == settings.ml.experiment_name
    assert experiment.artifact_location == settings.mlflow_artifact_root

    champion = tracking.champion_version(settings)
    assert champion is not None and str(champion.version) == result["model_version"]
    assert champion.run_id == result["run_id"]
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{settings.ml.registered_model_name}@champion"
    )
    reference = json.loads(Path(model_dir, "extra_files", "reference.json").read_text())
    assert set(reference["features"]) == set(result["features"])
    assert len(reference["features"]["monetary"]["edges"]) == settings.drift.psi_bins - 1
    assert sum(reference["segment_proportions"].values()) == pytest.approx(1.0)
    requirements = Path(model_dir, "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "pandas==" in requirements and "numpy==" in requirements


def test_assignment_recovers_the_planted_blobs(world):
    settings, frame, labels, _ = world
    assign.run(settings, AS_OF)
    got = _assignments(settings).set_index("person_id").loc[frame["person_id"]]
    assert adjusted_rand_score(labels, got["segment_id"].to_numpy()) >= 0.9


def test_assignment_writes_every_person_once_and_is_idempotent(world):
    settings, frame, _, result = world
    first = assign.run(settings, AS_OF)
    table_1 = _assignments(settings)
    second = assign.run(settings, AS_OF)
    table_2 = _assignments(settings)
    assert first["rows"] == second["rows"] == N_ROWS
    assert sum(first["counts"].values()) == N_ROWS
    assert len(table_1) == N_ROWS and table_1["person_id"].is_unique
    assert set(table_1["person_id"]) == set(frame["person_id"])
    assert table_1.equals(table_2)
    assert (table_1["model_version"] == result["model_version"]).all()
    assert (table_1["as_of_date"].astype(str) == AS_OF.isoformat()).all()
    assert table_1["customer_id"].isna().sum() == frame["customer_id"].isna().sum()
    assert (table_1["distance_to_centroid"] >= 0).all()
    names = table_1.groupby("segment_id")["segment_name"].unique()
    assert all(len(n) == 1 and n[0] == result["segment_names"][str(s)] for s, n in names.items())


def test_profiles_are_staged_published_and_explain_says_why(world):
    settings, frame, _, result = world
    assign.run(settings, AS_OF)
    publish.run(settings, AS_OF)
    with connect(settings) as con:
        staged = con.execute("select * from ml_stage.segment_profiles order by segment_id").df()
        assert publish.publish_profiles(con, AS_OF, settings.lens) == len(staged)
        assert publish.publish_profiles(con, AS_OF, settings.lens) == len(staged)  # a rerun replaces the date
        published = con.execute("select * from marts.segment_profiles order by segment_id").df()
    assert len(published) == len(staged) == result["k"]
    assert published["size"].sum() == N_ROWS
    assert published["share"].sum() == pytest.approx(1.0)
    assert set(published["model_version"]) == {result["model_version"]}
    assert published.set_index("segment_id")["segment_name"].to_dict() == {
        int(s): n for s, n in result["segment_names"].items()
    }
    top = json.loads(published["top_features"].iloc[0])
    assert top and {"feature", "z"} <= set(top[0])

    customer = frame["customer_id"].dropna().iloc[0]
    out = explain.explain(settings, customer)
    assert out["customer_id"] == customer
    # only the lens this world published has an answer; the others say so
    (lens,) = out["segmentations"]
    assert lens["segmentation"] == settings.lens and out["missing"] == list(settings.lenses[1:])
    assert lens["segment_name"] == result["segment_names"][str(lens["segment_id"])]
    assert lens["since"] == AS_OF.isoformat() and lens["previous_segment"] is None
    assert lens["why"] and all(r["segment_z"] is not None for r in lens["why"])
    gaps = [r["gap"] for r in lens["why"] if r["gap"] is not None]
    assert gaps == sorted(gaps)
    text = explain.render(out)
    assert customer in text and f"{settings.lens} (" in text and "no published segment" in text
    with pytest.raises(LookupError):
        explain.explain(settings, "no-such-customer")


def test_drift_on_identical_data_decides_none_and_rerun_replaces_rows(world):
    settings, _, _, result = world
    out = monitor.run(settings, AS_OF)
    assert out["decision"] == "none"
    assert max(out["psi"].values()) < settings.drift.psi_watch
    monitor.run(settings, AS_OF)
    with connect(settings, read_only=True) as con:
        rows = con.execute(
            "select feature, status, model_version from monitoring.drift_metrics where as_of_date = ?", [AS_OF]
        ).fetchall()
    assert len(rows) == len(result["features"]) + 1  # features + segment mix, once despite the rerun
    assert {r[2] for r in rows} == {result["model_version"]}
    html = Path(out["report_html"]).read_text()
    assert "data:image/png;base64," in html
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(settings.drift.experiment_name)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"attributes.run_name = 'drift-{AS_OF}'")
    assert len(runs) == 1


def test_drift_flags_a_feature_multiplied_by_100(world):
    settings, frame, _, _ = world
    day = AS_OF + timedelta(days=1)
    shifted = frame.assign(monetary=frame["monetary"] * 100)
    write_features(settings, shifted)
    try:
        out = monitor.run(settings, day)
    finally:
        write_features(settings, frame)
    assert out["decision"] in {"warn", "retrain"}
    assert out["drifted_features"] == ["monetary"]
    assert out["psi"]["monetary"] >= settings.drift.psi_act
    assert all(v < settings.drift.psi_watch for f, v in out["psi"].items() if f != "monetary")
    report = json.loads(Path(out["report_json"]).read_text())
    assert report["decision"] == out["decision"]
    assert str(settings.paths.reports / "drift" / day.isoformat() / settings.lens) in out["report_json"]


def test_should_train_on_training_weekdays_or_when_forced(world):
    settings, _, _, _ = world
    weekly = settings.with_overrides({"ml": {"train_weekdays": [AS_OF.weekday()], "train_monthdays": []}})
    assert train.should_train(weekly, AS_OF)[0] is True
    tuesday = AS_OF + timedelta(days=1)
    go, reason = train.should_train(weekly, tuesday)
    assert go is False and "not a training day" in reason
    assert train.should_train(weekly, tuesday, force=True) == (True, "forced")


def test_a_monthly_schedule_trains_on_its_days_of_the_month(world):
    settings, _, _, _ = world
    monthly = settings.with_overrides({"ml": {"train_weekdays": [], "train_monthdays": [1, 31]}})
    assert train.is_training_day(monthly, date(2026, 11, 1))[0] is True
    assert train.is_training_day(monthly, date(2026, 11, 30))[0] is True  # 31 means November's last day
    assert train.is_training_day(monthly, date(2026, 12, 31))[0] is True
    assert train.is_training_day(monthly, date(2026, 12, 30))[0] is False
    assert train.is_training_day(monthly, date(2027, 2, 28))[0] is True
    go, reason = train.should_train(monthly, date(2026, 11, 2))
    assert go is False and "not a training day" in reason


def test_the_lenses_schedules_profile_monthly_behaviour_weekly(world):
    settings, _, _, _ = world
    profile, behaviour = (settings.for_lens(lens) for lens in ("profile", "behaviour"))
    monday_the_second, sunday_the_first = date(2026, 11, 2), date(2026, 11, 1)
    assert [train.is_training_day(profile, d)[0] for d in (sunday_the_first, monday_the_second)] == [True, False]
    assert [train.is_training_day(behaviour, d)[0] for d in (sunday_the_first, monday_the_second)] == [False, True]


def test_the_dag_trains_early_on_a_drift_retrain_but_only_once_per_date(world):
    """seg.pipeline.daily.should_train is what the DAG's choose_model branch calls with the drift decision."""
    from seg.pipeline import daily as pipeline

    settings, _, _, _ = world
    wednesday = AS_OF + timedelta(days=2)
    assert pipeline.should_train(settings, "none", wednesday)[0] is False
    assert pipeline.should_train(settings, "warn", wednesday)[0] is False
    go, reason = pipeline.should_train(settings, "retrain", wednesday)
    assert go is True and "drift" in reason
    # AS_OF already has a trained version: a rerun of that date (even with a retrain decision) reuses it
    go, reason = pipeline.should_train(settings, "retrain", AS_OF)
    assert go is False and "already trained" in reason


def test_a_worse_model_becomes_challenger_and_champion_stays(world):
    settings, _, _, result = world
    demanding = settings.with_overrides({"ml": {"promotion_silhouette_tolerance": -1.0}})  # an impossible improvement
    second = train.run(demanding, AS_OF + timedelta(days=7))
    assert second["promoted"] is False
    # same data: every cluster keeps the champion's segment id, nobody switches
    assert second["matching"]["switched_share"] == 0.0
    assert second["matching"]["new_segments"] == [] and second["matching"]["vanished_segments"] == []
    assert second["segment_names"].keys() == result["segment_names"].keys()
    assert str(tracking.champion_version(settings).version) == result["model_version"]
    assert str(tracking.champion_version(settings, alias="challenger").version) == second["model_version"]
    run = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(second["run_id"])
    assert run.data.tags["promotion"] == "challenger"
    assert "worse" in run.data.tags["promotion_reason"]


def test_drift_without_a_champion_reports_no_model_yet(tmp_path):
    settings = small_settings(tmp_path / "data")
    out = monitor.run(settings, AS_OF)
    assert out["decision"] == "none"
    assert out["reasons"] == ["no model yet"]
    report = json.loads(Path(out["report_json"]).read_text())
    assert report["reasons"] == ["no model yet"]
    assert Path(out["report_html"]).read_text().startswith("<!doctype html>")
    assert train.should_train(settings, AS_OF + timedelta(days=1)) == (True, "no champion model yet")


def test_only_the_champion_is_tagged_champion_after_the_alias_moves(tmp_path):
    """MLflow's `promotion` tags follow the alias: the version `champion` leaves says whom it was superseded by, so
    the registry never shows two champions (issue #17); the daily run's deferred promotion (ml.promotion.
    make_champion) and a direct one (train.run) both do it."""
    from ml import promotion

    settings = small_settings(tmp_path / "data")
    write_features(settings, planted_blobs(N_ROWS, N_BLOBS)[0])
    first = train.run(settings, AS_OF)
    second = train.run(settings.with_overrides({"ml": {"promotion_silhouette_tolerance": 1.0}}),
                       AS_OF + timedelta(days=7), defer_champion=True)
    assert first["promoted"] and second["promoted"]
    client = tracking.client(settings)
    name = settings.ml.registered_model_name

    def tags() -> dict[str, str]:
        return {str(v.version): v.tags["promotion"] for v in client.search_model_versions(f"name = '{name}'")}

    assert tags() == {first["model_version"]: "champion", second["model_version"]: promotion.PENDING}
    assert str(tracking.champion_version(settings).version) == first["model_version"]  # deferred: not moved yet
    promotion.make_champion(settings, second["model_version"])
    assert str(tracking.champion_version(settings).version) == second["model_version"]
    assert tags() == {first["model_version"]: f"superseded by v{second['model_version']}",
                      second["model_version"]: "champion"}
    assert client.get_run(first["run_id"]).data.tags["promotion"] == f"superseded by v{second['model_version']}"
    third = train.run(settings.with_overrides({"ml": {"promotion_silhouette_tolerance": 1.0}}),
                      AS_OF + timedelta(days=14))
    assert third["promoted"] and str(tracking.champion_version(settings).version) == third["model_version"]
    assert [v for v, tag in tags().items() if tag == "champion"] == [third["model_version"]]
