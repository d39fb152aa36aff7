"""The one place configuration is read.

Paths derive from one environment variable, SEG_DATA_DIR (default ./data, relative to the working directory),
so two data directories never share state. Tunables come from config/settings.yml (or SEG_CONFIG); a data
directory is one deployment, and its own `deployment.yml` (optional) overrides sections of the settings for it
(typically `deployment:`: the contract overlay and the reporting currency). Everything else receives a Settings
object rather than reading the environment itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS = REPO_ROOT / "config" / "settings.yml"
DEPLOYMENT_FILE = "deployment.yml"


@dataclass(frozen=True)
class Paths:
    """Layout of the runtime data directory."""

    root: Path

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def truth(self) -> Path:
        return self.root / "truth"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def raw(self) -> Path:
        return self.lake / "raw"

    @property
    def quarantine(self) -> Path:
        return self.lake / "quarantine"

    @property
    def manifests(self) -> Path:
        return self.lake / "_manifests"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def dbt_target(self) -> Path:
        return self.root / "dbt" / "target"

    def raw_partition(self, source: str, day: str) -> Path:
        return self.raw / source / f"ingest_date={day}"

    def quarantine_partition(self, source: str, day: str) -> Path:
        return self.quarantine / source / f"ingest_date={day}"


@dataclass(frozen=True)
class Settings:
    paths: Paths
    raw: dict[str, Any]

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.raw[section]

    @cached_property
    def mlflow_tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.paths.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        return os.environ.get("SEG_MLFLOW_ARTIFACT_ROOT") or (self.paths.mlflow / "artifacts").as_uri()

    @property
    def contract_overlay(self) -> Path | None:
        """This deployment's contract overlay (relative paths are relative to the repository root), or None."""
        value = (self.raw.get("deployment") or {}).get("contract_overlay")
        if not value:
            return None
        path = Path(value)
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def reporting_currency(self) -> str | None:
        """ISO 4217 code every amount is reported in; None: the currency of the deployment's orders (one only)."""
        value = (self.raw.get("deployment") or {}).get("reporting_currency")
        return str(value).upper() if value else None

    @property
    def redis_url(self) -> str | None:
        """Redis for published segments; None keeps the embedded default (tables only)."""
        return os.environ.get("SEG_REDIS_URL") or None


def data_dir() -> Path:
    return Path(os.environ.get("SEG_DATA_DIR") or "data").resolve()


def load(data_root: Path | str | None = None) -> Settings:
    """Settings for one data directory (SEG_DATA_DIR unless given)."""
    settings_file = Path(os.environ.get("SEG_CONFIG", DEFAULT_SETTINGS))
    raw = yaml.safe_load(settings_file.read_text())
    root = Path(data_root).resolve() if data_root else data_dir()
    deployment = root / DEPLOYMENT_FILE
    if deployment.is_file():
        _merge(raw, yaml.safe_load(deployment.read_text()) or {}, str(deployment))
    return Settings(paths=Paths(root), raw=raw)


def _merge(base: dict, override: dict, origin: str, prefix: str = "") -> None:
    """Deep-merge a deployment file into the settings; a key the settings do not have is an error (a typo would
    otherwise be ignored silently)."""
    for key, value in override.items():
        if key not in base:
            raise ValueError(f"{origin}: unknown setting {prefix}{key}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _merge(base[key], value, origin, f"{prefix}{key}.")
        else:
            base[key] = value


def write_deployment(root: Path, deployment: dict, header: str) -> Path:
    """Write a data directory's deployment.yml (used by `seg generate` for its synthetic deployment)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / DEPLOYMENT_FILE
    path.write_text(header + yaml.safe_dump({"deployment": deployment}, sort_keys=False))
    return path
