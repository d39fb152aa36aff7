"""End-to-end helpers: a small generated lake, and `seg run` in a subprocess.

Airflow reads its configuration once per process, so each DAG run gets a fresh `python -m seg.pipeline.cli run`
process with its own SEG_DATA_DIR (and therefore its own AIRFLOW_HOME, warehouse and MLflow store).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from seg.core import config

# A Wednesday: the first run trains (no champion yet), the second day (not a training weekday) reuses the champion.
END = dt.date(2026, 11, 4)
CUSTOMERS = 3000
DAYS = 21


# Variables that point a run at another data directory's stores; a test sets them explicitly when it means to.
_STORE_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SEG_MLFLOW_ARTIFACT_ROOT", "SEG_CONFIG")


def seg_run(data_dir: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k not in _STORE_VARIABLES}
    full_env = {**inherited, "SEG_DATA_DIR": str(data_dir), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "seg.pipeline.cli", *args], env=full_env, capture_output=True, text=True, timeout=timeout)
    log = data_dir / f"seg_{'_'.join(a.replace('/', '_') for a in args)}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    return proc


def as_generator_deployment(root: Path) -> None:
    """Make a data directory holding generated incoming files the generator's deployment (its overlay and EUR), as
    `seg generate` leaves its own data directory: the e2e tests copy only incoming/."""
    from seg.generate import DEPLOYMENT

    config.write_deployment(root, DEPLOYMENT, "# the generator's deployment (tests/e2e)\n")


def query(settings, sql: str, params=None):
    con = duckdb.connect(str(settings.paths.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def generated_lake(tmp_path_factory):
    """Generated input with one corrupt file, shared by the e2e tests (each copies it into its own data dir)."""
    from seg.generate import run as generate

    root = tmp_path_factory.mktemp("generated")
    settings = config.load(root)
    faults = [f"orders:truncated_file:{(END - dt.timedelta(days=3)).isoformat()}"]
    generate(settings.paths, customers=CUSTOMERS, days=DAYS, end=END, seed=11, faults=faults)
    return settings
