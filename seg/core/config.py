"""The one place configuration is read, into typed, frozen sections.

Paths derive from one environment variable, SEG_DATA_DIR (default ./data, relative to the working directory),
so two data directories never share state. Tunables come from config/settings.yml (or SEG_CONFIG); a data
directory is one deployment, and its own `deployment.yml` (optional) overrides sections of the settings for it
(typically `deployment:`: the contract overlay and the reporting currency). Everything else receives a Settings
object rather than reading the environment itself.

Each section of settings.yml is a frozen dataclass below (`settings.ml.k_min`, `settings.drift.psi_act`); loading
checks every key: a key the schema does not know, or one it needs and the file lacks, is an error naming it. The
comments of config/settings.yml say what each value means; the types here say what it is.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
import os
import re
import secrets
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from seg.core.paths import REPO_ROOT, Paths, data_dir

DEFAULT_SETTINGS = REPO_ROOT / "config" / "settings.yml"
DEPLOYMENT_FILE = "deployment.yml"


class SettingsError(ValueError):
    """A settings file that does not match the schema (unknown key, missing key, wrong type)."""


@dataclass(frozen=True)
class DeploymentSettings:
    contract_overlay: str | None = None
    reporting_currency: str | None = None


@dataclass(frozen=True)
class FxSettings:
    max_rate_age_days: int


@dataclass(frozen=True)
class WarehouseSettings:
    memory_limit: str
    threads: int
    lock_timeout_s: float


@dataclass(frozen=True)
class LandingSettings:
    future_tolerance_hours: int
    formats: tuple[str, ...]


# dbt vars the pipeline sets from their one home (seg.transform.dbt._vars); dbt.vars may not set them again
PIPELINE_DBT_VARS = {
    "as_of_date": "the run's date", "lookback_days": "dbt.lookback_days", "session_gap_minutes": "sessions.gap_minutes",
    "fx_max_rate_age_days": "fx.max_rate_age_days", "reporting_currency": "deployment.reporting_currency",
    "marts_schema": "the write-audit-publish step",
}


@dataclass(frozen=True)
class DbtSettings:
    lookback_days: int
    # optional overrides of other dbt_project.yml vars
    vars: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in sorted(set(self.vars) & set(PIPELINE_DBT_VARS)):
            raise SettingsError(f"dbt.vars.{name}: set by the pipeline from {PIPELINE_DBT_VARS[name]}; set it there")


@dataclass(frozen=True)
class PreprocessingSettings:
    min_non_null_share: float
    max_mode_share: float
    clip_z: float


@dataclass(frozen=True)
class SelectionSettings:
    stability_top_n: int
    stability_bootstraps: int
    stability_sample_size: int
    min_stability: float
    min_silhouette: float


@dataclass(frozen=True)
class MatchingSettings:
    min_overlap: float


@dataclass(frozen=True)
class OnlineUpdateSettings:
    enabled: bool = False
    learning_rate: float = 0.2
    max_move: float = 0.5
    min_rows: int = 30


@dataclass(frozen=True)
class MlSettings:
    random_state: int
    train_weekdays: tuple[int, ...]
    k_min: int
    k_max: int
    fit_sample_size: int
    silhouette_sample_size: int
    silhouette_working_memory_mb: int
    assign_chunk_size: int
    threads: int | None
    min_segment_share: float
    registered_model_name: str
    experiment_name: str
    features: tuple[str, ...]
    lifecycle_features: tuple[str, ...]
    log_features: tuple[str, ...]
    preprocessing: PreprocessingSettings
    min_rows_per_segment: int
    batch_size: int
    n_init: int
    max_iter: int
    # family -> its parameters (estimator keyword arguments plus `enabled` / `sample_size`): open by design
    candidates: Mapping[str, Mapping[str, Any]]
    selection: SelectionSettings
    promotion_silhouette_tolerance: float
    matching: MatchingSettings
    force_train: bool
    naming_top_n: int
    naming_min_abs_z: float
    profile_top_features: int
    plot_sample_size: int
    # days of the month (1-31) that are training days too; a day beyond a month's length means its last day
    train_monthdays: tuple[int, ...] = ()
    # between refits the champion's centres follow the day's data (ml/online.py); off unless a lens turns it on
    online_update: OnlineUpdateSettings = field(default_factory=OnlineUpdateSettings)


@dataclass(frozen=True)
class DriftSettings:
    psi_bins: int
    psi_watch: float
    psi_act: float
    psi_alpha: float
    min_rows: int
    dataset_drift_share: float
    psi_eps: float
    cumulative_features: tuple[str, ...]
    age_features: tuple[str, ...]
    distance_ratio_watch: float
    distance_ratio_act: float
    switch_share_watch: float
    flow_alpha: float
    flow_psi_min: float
    flow_retrain_signals: tuple[str, ...]
    min_flow_orders: int
    flow_window_days: int
    flow_retrain_memory_days: int
    segment_sample_size: int
    experiment_name: str


@dataclass(frozen=True)
class SessionsSettings:
    # one definition of a web/app session for dbt (var session_gap_minutes) and the trigger micro-batches
    gap_minutes: int


@dataclass(frozen=True)
class AirflowSettings:
    dag_id: str
    parallelism: int
    warehouse_pool: str
    earliest_date: dt.date
    api_port: int = 8080


@dataclass(frozen=True)
class LensSettings:
    """One segmentation ("lens") of the deployment: its feature table (a mart of schema `marts`) and its
    overrides of the `ml` and `drift` sections (features, schedule, registered model, drift policy...)."""

    name: str
    description: str
    feature_table: str
    ml: Mapping[str, Any]
    drift: Mapping[str, Any]


# A lens name goes into task ids, table values, Redis keys, report folders and MLflow names.
LENS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
LENS_SECTIONS = ("ml", "drift")

SECTIONS: dict[str, type] = {
    "deployment": DeploymentSettings,
    "fx": FxSettings,
    "warehouse": WarehouseSettings,
    "landing": LandingSettings,
    "dbt": DbtSettings,
    "ml": MlSettings,
    "drift": DriftSettings,
    "sessions": SessionsSettings,
    "airflow": AirflowSettings,
}
# Mappings whose keys are the deployment's to choose (a deployment file or override may add new ones).
OPEN_MAPPINGS = {"dbt.vars"}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build_section(cls: type, values: Any, where: str) -> Any:
    """A frozen dataclass from a YAML mapping, each value converted to its declared type."""
    if not isinstance(values, Mapping):
        raise SettingsError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = _convert(hints[name], values[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SettingsError(f"{where}.{name}: missing")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is Mapping or hint is Mapping:
        if not isinstance(value, Mapping):
            raise SettingsError(f"{where}: expected a mapping, got {value!r}")
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if hint is Any:
        return _freeze(value)
    if hint is dt.date:
        try:
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        except ValueError:
            raise SettingsError(f"{where}: not a date (YYYY-MM-DD): {value!r}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (hint is int and value != int(value)):
            raise SettingsError(f"{where}: expected {'an integer' if hint is int else 'a number'}, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str | int | float):
            raise SettingsError(f"{where}: expected text, got {value!r}")
        return str(value)
    raise SettingsError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover - schema error


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Settings:
    """One deployment's settings: its data directory's paths and the typed sections of settings.yml, seen
    through one of its segmentations (`lens`, default: the first of `lenses:`), whose `ml` / `drift` overrides
    are applied to those sections. Everything outside the model (landing, dbt, gates) is the same for every lens."""

    paths: Paths
    raw: Mapping[str, Any]  # the merged YAML the sections were built from (with_overrides starts from it)
    lens: str | None = None  # None: the first lens
    _sections: dict[str, Any] = field(init=False, repr=False, compare=False)
    _lenses: dict[str, LensSettings] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.raw) - set(SECTIONS) - {"lenses"})
        if unknown:
            raise SettingsError(f"unknown settings section(s) {', '.join(unknown)}")
        lenses = _build_lenses(self.raw.get("lenses"))
        name = self.lens or next(iter(lenses))
        if name not in lenses:
            raise SettingsError(f"unknown lens {name!r}; lenses: {', '.join(lenses)}")
        effective = _thaw(self.raw)
        for section in LENS_SECTIONS:  # the lens's overrides on top of the shared section
            _merge(effective.setdefault(section, {}), _thaw(getattr(lenses[name], section)), f"lenses.{name}",
                   f"{section}.")
        # built once, at load: a bad key fails here, naming it, rather than deep inside a stage
        sections = {s: build_section(cls, effective.get(s) or {}, s) for s, cls in SECTIONS.items()}
        object.__setattr__(self, "lens", name)
        object.__setattr__(self, "_lenses", lenses)
        object.__setattr__(self, "_sections", sections)
        object.__setattr__(self, "raw", _freeze(copy.deepcopy(dict(self.raw))))
        _check_lenses_apart(self)

    def section(self, name: str) -> Any:
        return self._sections[name]

    def __reduce__(self):  # read-only mappings do not pickle: rebuild from the plain YAML (subprocesses, copies)
        return (Settings, (self.paths, _thaw(self.raw), self.lens))

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """The same settings with some values replaced ({"ml": {"k_min": 2}}); unknown keys are errors. The
        overrides win over the lens's own (they are merged into both)."""
        raw = _thaw(self.raw)
        overrides = copy.deepcopy(dict(overrides))
        _merge(raw, overrides, "overrides")
        lens = (raw.get("lenses") or {}).get(self.lens)
        if isinstance(lens, dict):
            for section in LENS_SECTIONS:
                if section in overrides and lens.get(section):
                    _merge(lens[section], copy.deepcopy(overrides[section]), "overrides", f"{section}.", open_keys=True)
        return Settings(paths=self.paths, raw=raw, lens=self.lens)

    def for_lens(self, name: str) -> Settings:
        """These settings seen through lens `name` (its features, model, schedule and drift policy)."""
        return Settings(paths=self.paths, raw=_thaw(self.raw), lens=name)

    @property
    def lenses(self) -> tuple[str, ...]:
        """Every lens of the deployment, in configuration order (the order the daily run takes them in)."""
        return tuple(self._lenses)

    @property
    def lens_settings(self) -> LensSettings:
        return self._lenses[self.lens]

    @property
    def feature_table(self) -> str:
        """The lens's feature mart (a table name in schema `marts` or its audit schema)."""
        return self.lens_settings.feature_table

    @property
    def deployment(self) -> DeploymentSettings:
        return self.section("deployment")

    @property
    def fx(self) -> FxSettings:
        return self.section("fx")

    @property
    def warehouse(self) -> WarehouseSettings:
        return self.section("warehouse")

    @property
    def landing(self) -> LandingSettings:
        return self.section("landing")

    @property
    def dbt(self) -> DbtSettings:
        return self.section("dbt")

    @property
    def ml(self) -> MlSettings:
        return self.section("ml")

    @property
    def drift(self) -> DriftSettings:
        return self.section("drift")

    @property
    def sessions(self) -> SessionsSettings:
        return self.section("sessions")

    @property
    def airflow(self) -> AirflowSettings:
        return self.section("airflow")

    @cached_property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.paths.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        return os.environ.get("SEG_MLFLOW_ARTIFACT_ROOT") or (self.paths.mlflow / "artifacts").as_uri()

    @property
    def contract_overlay(self) -> Path | None:
        """This deployment's contract overlay (relative paths are relative to the repository root), or None."""
        value = self.deployment.contract_overlay
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def reporting_currency(self) -> str | None:
        """ISO 4217 code every amount is reported in; None: the currency of the deployment's orders (one only)."""
        value = self.deployment.reporting_currency
        return value.upper() if value else None

    @property
    def redis_url(self) -> str | None:
        """Redis for published segments; None keeps the embedded default (tables only)."""
        return os.environ.get("SEG_REDIS_URL") or None

    @property
    def pii_key(self) -> str:
        """The deployment's secret for keyed hashes of personal identifiers (HMAC-SHA256): see pii_key()."""
        return pii_key(self.paths.root)


# The key of the keyed hashes of personal identifiers (dbt macro pii_hash, seg.triggers): SEG_PII_KEY on services,
# else a random key made once per data directory and kept in it (embedded default: laptop demo, tests).
PII_KEY_ENV = "SEG_PII_KEY"
PII_KEY_FILE = Path("secrets") / "pii_key"
PII_KEY_MIN_LENGTH = 16


def pii_key(root: Path) -> str:
    """The key for the deployment whose data directory is `root`: SEG_PII_KEY when set, else the data directory's
    own random key, made on first use in <root>/secrets/pii_key (file 0600, directory 0700), so reruns hash alike
    and no two deployments share a key. Never log it; errors never contain it."""
    value = os.environ.get(PII_KEY_ENV)
    if value:
        if len(value) < PII_KEY_MIN_LENGTH:
            raise SettingsError(f"{PII_KEY_ENV}: too short for a key (at least {PII_KEY_MIN_LENGTH} characters; "
                                "e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
        return value
    path = root / PII_KEY_FILE
    if not path.exists():
        _make_pii_key_file(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SettingsError(f"{path}: the PII key is readable by others (mode {mode:o}): chmod 600 {path}")
    key = path.read_text().strip()
    if len(key) < PII_KEY_MIN_LENGTH:
        raise SettingsError(f"{path}: not a key (under {PII_KEY_MIN_LENGTH} characters); restore it, or delete it "
                            "for a new one (every keyed hash and guest person id then changes)")
    return key


def _make_pii_key_file(path: Path) -> None:
    """Write a new random key to `path` atomically and never over another one: written to a private temp file,
    then hard-linked into place (the first process to link wins; the others read its key)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load(data_root: Path | str | None = None) -> Settings:
    """Settings for one data directory (SEG_DATA_DIR unless given)."""
    settings_file = Path(os.environ.get("SEG_CONFIG", DEFAULT_SETTINGS))
    raw = yaml.safe_load(settings_file.read_text())
    root = Path(data_root).resolve() if data_root else data_dir()
    deployment = root / DEPLOYMENT_FILE
    if deployment.is_file():
        _merge(raw, yaml.safe_load(deployment.read_text()) or {}, str(deployment))
    return Settings(paths=Paths(root), raw=raw)


def _merge(base: dict, override: dict, origin: str, prefix: str = "", *, open_keys: bool = False) -> None:
    """Deep-merge a deployment file into the settings; a key the settings do not have is an error (a typo would
    otherwise be ignored silently). `open_keys`: the base is itself a partial override (a lens's) and may lack keys."""
    for key, value in override.items():
        if key not in base and not open_keys and not _is_open(prefix):
            raise SettingsError(f"{origin}: unknown setting {prefix}{key}")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, f"{prefix}{key}.", open_keys=open_keys)
        else:
            base[key] = value


def _is_open(prefix: str) -> bool:
    """Whether keys under `prefix` are the deployment's to choose: dbt.vars, and the lenses (names and blocks)."""
    path = prefix.rstrip(".")
    return path in OPEN_MAPPINGS or path == "lenses" or path.startswith("lenses.")


def _build_lenses(values: Any) -> dict[str, LensSettings]:
    if not isinstance(values, Mapping) or not values:
        raise SettingsError("lenses: at least one lens is needed (a mapping name -> {description, feature_table})")
    lenses = {}
    for name, block in values.items():
        where = f"lenses.{name}"
        if not isinstance(name, str) or not LENS_NAME.match(name):
            raise SettingsError(f"{where}: a lens name is lower-case letters, digits and _ (it names tasks and keys)")
        block = dict(block or {})
        block.setdefault("ml", {})
        block.setdefault("drift", {})
        for section in LENS_SECTIONS:
            if block[section] is None:
                block[section] = {}
        lenses[name] = build_section(LensSettings, {"name": name, **block}, where)
    return lenses


def _check_lenses_apart(settings: Settings) -> None:
    """Two lenses never share a registered model or an experiment: each has its own champion and runs."""
    if len(settings.lenses) < 2 or settings.lens != settings.lenses[0]:
        return  # checked once, on the first lens's settings (the others build theirs from the same YAML)
    seen: dict[tuple[str, str], str] = {}
    for name in settings.lenses:
        lens = Settings(paths=settings.paths, raw=_thaw(settings.raw), lens=name) if name != settings.lens else settings
        for key, value in (("ml.registered_model_name", lens.ml.registered_model_name),
                           ("ml.experiment_name", lens.ml.experiment_name),
                           ("drift.experiment_name", lens.drift.experiment_name)):
            other = seen.setdefault((key, value), name)
            if other != name:
                raise SettingsError(f"lenses {other} and {name} share {key} {value!r}: give each lens its own")


def write_deployment(root: Path, deployment: dict, header: str) -> Path:
    """Write a data directory's deployment.yml (used by `seg generate` for its synthetic deployment)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / DEPLOYMENT_FILE
    path.write_text(header + yaml.safe_dump({"deployment": deployment}, sort_keys=False))
    return path
