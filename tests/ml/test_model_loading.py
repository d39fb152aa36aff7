"""Loading the champion trusts our code, not the model's own files.

Whoever can write to MLflow can register a version and move the `champion` alias; `ml.assign` then loads it. The
loader must therefore accept only the skops format with the trusted-type list of ml/ (never the list written in the
model's MLmodel file), never unpickle, and never put the model's code on sys.path.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import skops.io
import yaml
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml import candidates, features, tracking, train

from .conftest import BLOB_FEATURES, planted_blobs, small_settings


class _RunsAShellCommand:
    """Unpickling this runs `touch <marker>` (the classic pickle payload)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """One MLflow store for the module (creating its tables is the slow part): each test registers a new version
    and moves `champion` onto it."""
    return small_settings(tmp_path_factory.mktemp("loading") / "data")


def _side_files(model_dir: Path) -> None:
    extra = model_dir / "extra_files"
    extra.mkdir(parents=True)
    (extra / tracking.REFERENCE_FILE).write_text(json.dumps({"features_used": ["recency_days"]}))
    (extra / tracking.SEGMENT_NAMES_FILE).write_text(json.dumps({"0": "everyone"}))


def _crafted_model(model_dir: Path, sklearn_flavor: dict, files: dict[str, bytes]) -> Path:
    """A model directory as an attacker with write access to the artifact store would leave it."""
    model_dir.mkdir(parents=True)
    (model_dir / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": sklearn_flavor}}))
    for name, content in files.items():
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (model_dir / name).write_bytes(content)
    _side_files(model_dir)
    return model_dir


def _register_as_champion(settings, model_dir: Path) -> str:
    """Log `model_dir` as run artifacts, register it as a new version and move `champion` onto it."""
    mlc = tracking.client(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings)) as run:
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    name = settings.ml.registered_model_name
    if not mlc.search_registered_models(f"name = '{name}'"):
        mlc.create_registered_model(name)
    version = mlc.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    mlc.set_registered_model_alias(name, tracking.CHAMPION, version.version)
    return str(version.version)


@pytest.mark.parametrize("serialization_format", ["pickle", "cloudpickle"])
def test_a_pickled_champion_is_refused_without_running_its_code(settings, tmp_path, serialization_format):
    marker = tmp_path / "pwned"
    model_dir = _crafted_model(
        tmp_path / "model",
        {"pickled_model": "model.pkl", "serialization_format": serialization_format},
        {"model.pkl": pickle.dumps(_RunsAShellCommand(marker))},
    )
    _register_as_champion(settings, model_dir)
    with pytest.raises(tracking.UntrustedModelError, match=serialization_format):
        try:
            tracking.load_champion(settings)
        finally:
            assert not marker.exists(), "loading the champion ran the shell command in its pickle"


def test_a_champion_whose_own_file_trusts_os_system_is_refused(settings, tmp_path):
    skops_file = tmp_path / "evil.skops"
    skops.io.dump(Pipeline([("run", FunctionTransformer(os.system))]), skops_file)
    model_dir = _crafted_model(
        tmp_path / "model",
        {
            "pickled_model": "model.skops",
            "serialization_format": "skops",
            # the model vouches for itself: MLflow's own loader passes this list to skops as trusted
            "skops_trusted_types": ["posix.system", "nt.system", "builtins.exec", "builtins.eval"],
        },
        {"model.skops": skops_file.read_bytes()},
    )
    _register_as_champion(settings, model_dir)
    with pytest.raises(tracking.UntrustedModelError, match="posix.system"):
        tracking.load_champion(settings)


def test_a_champion_that_brings_code_for_sys_path_is_refused(settings, tmp_path):
    skops_file = tmp_path / "plain.skops"
    skops.io.dump(Pipeline([("log1p", FunctionTransformer(np.log1p))]), skops_file)
    model_dir = _crafted_model(
        tmp_path / "model",
        {"pickled_model": "model.skops", "serialization_format": "skops", "code": "code"},
        {"model.skops": skops_file.read_bytes(), "code/seg_shadow_module.py": b"raise SystemExit('shadowed')\n"},
    )
    _register_as_champion(settings, model_dir)
    before = list(sys.path)
    try:
        with pytest.raises(tracking.UntrustedModelError, match="code"):
            tracking.load_champion(settings)
        assert sys.path == before
    finally:
        sys.path[:] = before


def test_a_champion_whose_model_file_points_outside_its_directory_is_refused(settings, tmp_path):
    outside = tmp_path / "outside.skops"
    skops.io.dump(Pipeline([("log1p", FunctionTransformer(np.log1p))]), outside)
    model_dir = _crafted_model(
        tmp_path / "model",
        {"pickled_model": str(outside), "serialization_format": "skops"},
        {},
    )
    _register_as_champion(settings, model_dir)
    with pytest.raises(tracking.UntrustedModelError, match="outside"):
        tracking.load_champion(settings)


def test_a_champion_that_is_not_a_pipeline_is_refused(settings, tmp_path):
    skops_file = tmp_path / "dict.skops"
    skops.io.dump({"not": "a pipeline"}, skops_file)
    model_dir = _crafted_model(
        tmp_path / "model",
        {"pickled_model": "model.skops", "serialization_format": "skops"},
        {"model.skops": skops_file.read_bytes()},
    )
    _register_as_champion(settings, model_dir)
    with pytest.raises(tracking.UntrustedModelError, match="Pipeline"):
        tracking.load_champion(settings)


def test_our_logged_pipeline_loads_with_the_trusted_type_list_and_predicts_the_same(settings, tmp_path, capfd):
    """The pipeline train.py logs (log1p + clip + scaling + imputation + centroid KMeans) passes the loader, without
    MLflow's download progress bar (it filled every task log and `seg explain`'s output)."""
    frame, _ = planted_blobs(600, 3)
    x_frame = frame[BLOB_FEATURES]
    preprocess = features.build_preprocessor(BLOB_FEATURES, ["frequency", "monetary"], clip_z=4.0)
    xt = preprocess.fit_transform(x_frame)
    centers = {i: xt[i::3].mean(axis=0) for i in range(3)}
    pipeline = Pipeline([("preprocess", preprocess), ("cluster", candidates.centroid_model(centers, xt.shape[1]))])
    _side_files(tmp_path / "side")
    extra = [str(p) for p in sorted((tmp_path / "side" / "extra_files").iterdir())]
    tracking.client(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings)):
        info = train._log_model(settings.ml, pipeline, x_frame, extra)
    tracking.client(settings).set_registered_model_alias(
        settings.ml.registered_model_name, tracking.CHAMPION, info.registered_model_version
    )

    capfd.readouterr()
    loaded = tracking.load_champion(settings)

    assert "Downloading artifacts" not in capfd.readouterr().err
    assert loaded.version == str(info.registered_model_version)
    assert isinstance(loaded.pipeline, Pipeline)
    np.testing.assert_array_equal(loaded.pipeline.predict(x_frame), pipeline.predict(x_frame))
    assert loaded.features == ["recency_days"] and loaded.segment_names == {"0": "everyone"}
