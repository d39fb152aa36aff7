"""The docker-compose configuration, exercised through the local services (no Docker engine runs here):
Airflow's metadata database on PostgreSQL and an MLflow tracking server whose backend is PostgreSQL, started with
the settings docker-compose.yml renders (`docker-compose config`, see test_compose.py), the compose host names and
login swapped for the local PostgreSQL's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from seg.core import config

from .conftest import END, as_generator_deployment, seg_run
from .test_compose import FILLED, rendered

pytestmark = [pytest.mark.e2e, pytest.mark.services]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
# what the compose file's connection strings say before the database name
COMPOSE_PG = f"postgresql+psycopg2://{FILLED['POSTGRES_USER']}:{FILLED['POSTGRES_PASSWORD']}@postgres:5432"


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


def local(compose_url: str, database: str) -> str:
    """A connection string of the rendered compose file, pointed at the local PostgreSQL's `database`."""
    assert compose_url.startswith(COMPOSE_PG + "/"), compose_url
    return f"{PG}/{database}"


@pytest.fixture
def compose(tmp_path):
    """The compose file's services as docker-compose renders them with every required variable filled."""
    services = rendered(tmp_path)["services"]
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "mlflow", "postgres"} <= set(services)
    return services


def test_dag_runs_with_airflow_on_postgres_and_mlflow_server_on_postgres(generated_lake, databases, compose, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(generated_lake.paths.incoming, root / "incoming")
    as_generator_deployment(root)
    settings = config.load(root)
    airflow_env, mlflow_env = compose["airflow-scheduler"]["environment"], compose["mlflow"]["environment"]
    assert airflow_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    port = free_port()
    # MLflow as the compose file starts it: backend store and allowed Host headers from its environment (plus
    # this test's port, which is 5000 on the compose host)
    server_env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": local(mlflow_env["MLFLOW_BACKEND_STORE_URI"], databases["mlflow"]),
        "MLFLOW_SERVER_ALLOWED_HOSTS": mlflow_env["MLFLOW_SERVER_ALLOWED_HOSTS"] + f",127.0.0.1:{port}",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--artifacts-destination", str(root / "mlflow" / "artifacts"), "--serve-artifacts", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "mlflow_server.log").open("w"), env=server_env)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("mlflow server did not start: " + (tmp_path / "mlflow_server.log").read_text()[-2000:])
        # the other containers call it by its service name: MLflow's host-header check must let them in
        as_a_container = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": "mlflow:5000"}
        )
        try:
            assert urllib.request.urlopen(as_a_container, timeout=30).status == 200
        except urllib.error.HTTPError as exc:
            pytest.fail(f"MLflow refused Host mlflow:5000 with {exc.code}: {exc.read()[:200]!r}")
        env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": local(
                airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], databases["airflow"]
            ),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
        }
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
