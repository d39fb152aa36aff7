"""MLflow plumbing: tracking URI, experiments, the registered model's champion, and loading it back.

The tracking store is `settings.mlflow_tracking_uri` (SQLite under the data directory by default; MLflow creates
the tables on first use) and artifacts go to `settings.mlflow_artifact_root`. A champion is the model version the
`champion` alias of `ml.registered_model_name` points to; the model directory carries `extra_files/reference.json`
and `extra_files/segment_names.json` next to the fitted pipeline, so one download gives assignment and drift
everything they need from one consistent version.

Loading trusts this code, not the model's files: whoever can write to the tracking server can register a version
and move `champion`, and `ml.assign` loads it. `load_pipeline` reads only a skops file inside the model directory,
with ml's own trusted-type list, and refuses pickles and models that bring code of their own.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import skops.io
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from sklearn.pipeline import Pipeline
from skops.io.exceptions import UntrustedTypesFoundException

from ml.features import SKOPS_TRUSTED_TYPES
from seg.core import environment
from seg.core.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
REFERENCE_FILE = "reference.json"
SEGMENT_NAMES_FILE = "segment_names.json"
MODEL_NAME_IN_RUN = "model"

# Distributions whose installed versions are pinned into the logged model's requirements. Listing them
# explicitly spares MLflow's dependency inference (~11 s per log_model). skops is the serialization format and
# mlflow the loader, so a model cannot be loaded without them either.
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")


_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
NO_PROGRESS_BAR = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def client(settings: Settings) -> MlflowClient:
    """Point MLflow (fluent API and client) at this data directory's store; create the SQLite parent folder.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI to the environment (for
    subprocesses). seg.core.config reads MLFLOW_TRACKING_URI as an override, so the export would silently point every
    later `seg.core.config.load()` in this process (another data directory, e.g. the next test) at this store; the
    variables are put back as they were. MLflow keeps the URI in its own module state, which is what it reads.
    """
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with environment.restored(_URI_VARIABLES):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(settings: Settings, name: str | None = None) -> str:
    """Id of the experiment `name` (default `ml.experiment_name`), created with the configured artifact root."""
    name = name or settings.ml.experiment_name
    mlc = client(settings)
    experiment = mlc.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlc.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    # Run ids and logged-model ids are unique, so every experiment can share the one artifact root.
    return mlc.create_experiment(name, artifact_location=settings.mlflow_artifact_root)


def pip_requirements() -> list[str]:
    """Exact pins of the installed versions the logged pipeline needs (see MODEL_REQUIREMENTS)."""
    return [f"{dist}=={metadata.version(dist)}" for dist in MODEL_REQUIREMENTS]


def champion_version(settings: Settings, alias: str = CHAMPION) -> ModelVersion | None:
    """The model version behind `alias` of `ml.registered_model_name`, or None if there is none yet."""
    mlc = client(settings)
    name = settings.ml.registered_model_name
    try:
        registered = mlc.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(alias)
    if version is None:
        return None
    return mlc.get_model_version(name, str(version))


def version_trained_on(settings: Settings, as_of_date) -> ModelVersion | None:
    """The newest registered version trained for `as_of_date` (its `as_of_date` tag), or None.

    Lets a rerun of a date reuse that day's training instead of registering another version.
    """
    name = settings.ml.registered_model_name
    try:
        found = client(settings).search_model_versions(f"name = '{name}' and tag.as_of_date = '{as_of_date.isoformat()}'")
    except MlflowException as exc:
        if exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    return max(found, key=lambda v: int(v.version)) if found else None


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version, downloaded once: the fitted pipeline plus its JSON side files."""

    version: str
    run_id: str | None
    pipeline: Any
    features: list[str]
    reference: dict[str, Any]
    segment_names: dict[str, Any]


@contextmanager
def quiet_airflow_deprecations() -> Iterator[None]:
    """Silence Airflow's deprecated-attribute warnings while skops (de)serialises a model.

    skops resolves types by getattr over loaded modules; inside an Airflow task that touches Airflow's lazily
    deprecated attributes and printed ~1 000 `DeprecatedImportWarning`s per model load into the task log.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"The `airflow\.", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"The `airflow\.", category=DeprecationWarning)
        yield


class UntrustedModelError(RuntimeError):
    """A model version the loader refuses to deserialise; the message says why and which version."""


def load_pipeline(model_dir: Path, label: str) -> Pipeline:
    """The fitted pipeline of a downloaded sklearn-flavour model directory, deserialised with our trusted types only.

    `mlflow.sklearn.load_model` trusts the model's own files: it unpickles a `pickle`/`cloudpickle` model (running
    whatever its reduce calls say), hands skops the `skops_trusted_types` written in the model's MLmodel file, and
    puts the model's `code` directory on sys.path. Here the MLmodel file only says where the skops file is: the
    format must be skops, the file inside `model_dir`, no `code`; skops then loads it trusting its own defaults
    (stock scikit-learn estimators, numpy, builtin containers) plus `ml.features.SKOPS_TRUSTED_TYPES`, the list
    train.py logs with; and the result must be a scikit-learn Pipeline. `label` names the version in errors.
    """
    conf = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    flavor = (conf.get("flavors") or {}).get("sklearn")
    if not isinstance(flavor, dict):
        raise UntrustedModelError(f"{label}: its MLmodel file has no sklearn flavour")
    serialization = flavor.get("serialization_format", "pickle")
    if serialization != "skops":
        raise UntrustedModelError(
            f"{label} is serialised as {serialization!r}: only skops models are loaded (unpickling runs any code"
            " the file carries); retrain to log a skops model"
        )
    if flavor.get("code"):
        raise UntrustedModelError(f"{label} brings its own code ({flavor['code']!r}) for sys.path: refused")
    root = model_dir.resolve()
    model_file = (root / str(flavor.get("pickled_model") or "")).resolve()
    if not model_file.is_relative_to(root) or model_file == root:
        raise UntrustedModelError(
            f"{label}: its model file {flavor.get('pickled_model')!r} is outside its model directory"
        )
    if not model_file.is_file():
        raise UntrustedModelError(f"{label}: its model file {flavor.get('pickled_model')!r} is missing")
    try:
        with quiet_airflow_deprecations():
            pipeline = skops.io.load(model_file, trusted=list(SKOPS_TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise UntrustedModelError(
            f"{label} holds types outside ml's trusted list (ml.features.SKOPS_TRUSTED_TYPES and skops'"
            f" defaults): {exc}"
        ) from exc
    if not isinstance(pipeline, Pipeline):
        raise UntrustedModelError(f"{label} holds a {type(pipeline).__name__}, not a scikit-learn Pipeline")
    return pipeline


def load_version(settings: Settings, version: ModelVersion) -> LoadedModel:
    """Download one model version and load its sklearn pipeline (`load_pipeline`), reference.json and
    segment_names.json; raises UntrustedModelError for a version the loader refuses."""
    client(settings)
    name = settings.ml.registered_model_name
    # no progress bar: a model is a few small files, and the bar filled every task log and `seg explain` (#17)
    with tempfile.TemporaryDirectory(prefix="seg-model-") as tmp, environment.setting(NO_PROGRESS_BAR):
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version.version}", dst_path=tmp)
        )
        pipeline = load_pipeline(local, f"model {name} version {version.version}")
        reference = json.loads((local / "extra_files" / REFERENCE_FILE).read_text())
        segment_names = json.loads((local / "extra_files" / SEGMENT_NAMES_FILE).read_text())
    return LoadedModel(
        version=str(version.version),
        run_id=version.run_id,
        pipeline=pipeline,
        features=list(reference["features_used"]),
        reference=reference,
        segment_names=segment_names,
    )


def load_version_number(settings: Settings, version: str) -> LoadedModel:
    """Version `version` of `ml.registered_model_name`, loaded (`load_version`)."""
    return load_version(settings, client(settings).get_model_version(settings.ml.registered_model_name, str(version)))


def load_champion(settings: Settings) -> LoadedModel | None:
    """The champion, resolved once to a version number and loaded; None when no champion exists."""
    version = champion_version(settings)
    return None if version is None else load_version(settings, version)
