"""The docker-compose configuration, exercised through the local services (no Docker engine runs here):
Airflow's metadata database on PostgreSQL and an MLflow tracking server whose backend is PostgreSQL, with the
same connection settings docker-compose.yml uses (other host names)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from seg.core import config

from .conftest import END, as_generator_deployment, seg_run

pytestmark = [pytest.mark.e2e, pytest.mark.services]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-tAc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def databases():
    suffix = uuid.uuid4().hex[:8]
    names = {"airflow": f"seg_test_airflow_{suffix}", "mlflow": f"seg_test_mlflow_{suffix}"}
    for name in names.values():
        psql(f"CREATE DATABASE {name}")
    yield names
    for name in names.values():
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_compose_file_uses_the_settings_this_test_exercises():
    compose = yaml.safe_load(COMPOSE.read_text())
    env = compose["x-seg-env"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_TRACKING_URI"].startswith("http://")
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "mlflow", "postgres"} <= set(compose["services"])
    if shutil.which("docker-compose"):
        subprocess.run(["docker-compose", "-f", str(COMPOSE), "config", "-q"], check=True)


def test_dag_runs_with_airflow_on_postgres_and_mlflow_server_on_postgres(generated_lake, databases, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(generated_lake.paths.incoming, root / "incoming")
    as_generator_deployment(root)
    settings = config.load(root)
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"{PG}/{databases['mlflow']}",
         "--artifacts-destination", str(root / "mlflow" / "artifacts"), "--serve-artifacts", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "mlflow_server.log").open("w"), env=os.environ.copy())
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not start: " + (tmp_path / "mlflow_server.log").read_text()[-2000:])
        env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{databases['airflow']}",
               "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
        proc = seg_run(root, "run", "--date", END.isoformat(), env=env)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    # the run's state is in PostgreSQL, not in a SQLite file under the data directory
    assert psql("select state from dag_run where dag_id = 'segmentation_daily'", databases["airflow"]) == "success"
    assert not (settings.paths.airflow_home / "airflow.db").exists()
    assert int(psql("select count(*) from runs", databases["mlflow"])) >= 1
    assert int(psql("select count(*) from model_versions", databases["mlflow"])) >= 1
