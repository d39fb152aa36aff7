"""`seg ui` / `make ui`: the Airflow UI, the MLflow UI and the Data Docs on localhost, for one data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from seg.core.config import Settings
from seg.pipeline.airflow import airflow_env


def serve(settings: Settings, airflow_port: int, mlflow_port: int, docs_port: int) -> int:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **airflow_env(settings), "AIRFLOW__API__PORT": str(airflow_port),
           # `airflow standalone` starts its components as `airflow ...` subprocesses: the venv must be on PATH
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    settings.paths.mlflow.mkdir(parents=True, exist_ok=True)
    docs_dir = settings.paths.reports / "data_docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    procs = [
        # standalone = api-server + scheduler + dag-processor with SQLite; parallelism is capped in airflow_env
        subprocess.Popen([str(bin_dir / "airflow"), "standalone"], env=env),
        subprocess.Popen([str(bin_dir / "mlflow"), "server", "--workers", "1", "--backend-store-uri", settings.mlflow_tracking_uri,
                          "--default-artifact-root", settings.mlflow_artifact_root, "--host", "127.0.0.1",
                          "--port", str(mlflow_port)], env=env),
        subprocess.Popen([sys.executable, "-m", "http.server", str(docs_port), "--bind", "127.0.0.1",
                          "--directory", str(docs_dir)], env=env),
    ]
    print(f"Airflow UI:  http://127.0.0.1:{airflow_port}  (user admin; password in {settings.paths.airflow_home}/simple_auth_manager_passwords.json.generated)")
    print(f"MLflow UI:   http://127.0.0.1:{mlflow_port}")
    print(f"Data Docs:   http://127.0.0.1:{docs_port}/index.html")
    print("Ctrl-C stops all three.")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    return 0
