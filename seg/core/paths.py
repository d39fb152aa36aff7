"""Where things are: the repository, and the layout of one runtime data directory (SEG_DATA_DIR)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


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

    @property
    def run_lock(self) -> Path:
        return self.root / "run.lock"

    def raw_partition(self, source: str, day: str) -> Path:
        return self.raw / source / f"ingest_date={day}"

    def quarantine_partition(self, source: str, day: str) -> Path:
        return self.quarantine / source / f"ingest_date={day}"


def data_dir() -> Path:
    return Path(os.environ.get("SEG_DATA_DIR") or "data").resolve()
