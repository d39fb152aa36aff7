"""docker-compose.yml refuses to start without its secrets, takes the PostgreSQL login from .env, and publishes
MLflow on the host's loopback only unless the user opts in.

`docker-compose config` renders the file as `docker-compose up` would (no Docker engine needed), on a temp copy
with its own .env. The test needs docker-compose: it fails, never skips, when it is missing (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

# What docker-compose.yml requires from .env: the PostgreSQL login and the generated secrets.
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "SEG_PII_KEY")
REQUIRED = ("POSTGRES_USER", *SECRETS)
FILLED = {
    "POSTGRES_USER": "seg_owner",
    "POSTGRES_PASSWORD": "pw-Hk3_q9ZrT0aLx1",
    "AIRFLOW_JWT_SECRET": "jwt-4nVt8Wc2pQe7yR5s",
    "SEG_PII_KEY": "pii-Mz6b1Xo9uJd3fG0h",
}
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed, and the compose checks need it: install the Debian package"
            " (`apt-get install --no-install-recommends docker-compose`); `bash .ci/run` installs it"
        )
    return exe


def compose_config(tmp_path: Path, env: dict[str, str | None]) -> subprocess.CompletedProcess:
    """`docker-compose config` on a copy of the compose file (and its build context) with `env` as its .env;
    a None value leaves the variable out. The caller's environment does not leak in."""
    project = tmp_path / "compose"
    project.mkdir()
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "docker", project / "docker")
    (project / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items() if v is not None))
    clean = {k: v for k, v in os.environ.items() if k not in FILLED and not k.startswith(("COMPOSE_", "MLFLOW_"))}
    return subprocess.run([docker_compose(), "config"], cwd=project, env=clean, capture_output=True, text=True)


def rendered(tmp_path: Path, env: dict[str, str | None] | None = None) -> dict:
    """The compose file as docker-compose renders it with `env` (default: every required variable filled)."""
    proc = compose_config(tmp_path, FILLED if env is None else env)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_compose_config_passes_with_a_filled_env_and_takes_every_secret_from_it(tmp_path):
    proc = compose_config(tmp_path, FILLED)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    login = f"{FILLED['POSTGRES_USER']}:{FILLED['POSTGRES_PASSWORD']}@postgres:5432"
    assert services["postgres"]["environment"]["POSTGRES_USER"] == FILLED["POSTGRES_USER"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == FILLED["POSTGRES_PASSWORD"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == FILLED["AIRFLOW_JWT_SECRET"], name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://{login}/airflow", name
        assert env["SEG_PII_KEY"] == FILLED["SEG_PII_KEY"], name
    assert services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"] == f"postgresql+psycopg2://{login}/mlflow"
    assert "airflow:airflow@" not in proc.stdout and "change-me" not in proc.stdout


def test_compose_refuses_the_env_example_as_it_is(tmp_path):
    """`cp .env.example .env` leaves the secrets empty: docker-compose stops and says what to set."""
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    proc = compose_config(tmp_path, example)
    assert proc.returncode != 0, "docker-compose accepted the .env.example's empty secrets"
    assert any(name in proc.stderr for name in SECRETS), proc.stderr
    assert ".env.example" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("variable", REQUIRED)
def test_compose_refuses_to_start_without_each_required_variable(tmp_path, variable, value):
    proc = compose_config(tmp_path, {**FILLED, variable: value})
    assert proc.returncode != 0, f"docker-compose accepted {variable} {'unset' if value is None else 'empty'}"
    assert variable in proc.stderr and "is required" in proc.stderr, proc.stderr


def test_compose_file_has_no_default_for_a_required_variable_and_no_literal_login():
    """Every use of a required variable is `${VAR:?...}`: an unset or empty one stops docker-compose, whichever
    use it reaches first."""
    text = COMPOSE.read_text()
    uses = re.findall(r"\$\{(\w+)([^}]*)\}", text)
    required_uses = [(name, rest) for name, rest in uses if name in REQUIRED]
    assert {name for name, _ in required_uses} == set(REQUIRED)
    assert all(rest.startswith(":?") for _, rest in required_uses), required_uses
    assert "change-me" not in text
    assert not re.search(r"postgresql\+psycopg2://\w+:\w+@", text), "a literal PostgreSQL login"
    postgres = yaml.safe_load(text)["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_USER"].startswith("${POSTGRES_USER:?")
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_env_example_lists_the_required_secrets_empty_with_how_to_generate_them():
    lines = ENV_EXAMPLE.read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    for name in SECRETS:
        assert values.get(name) == "", f"{name} missing from .env.example or not empty"
        comment = lines[: lines.index(f"{name}=")]
        assert any(GENERATE in line for line in comment), f"no generate command above {name}"
    assert values.get("POSTGRES_USER"), "the PostgreSQL user (not a secret) has a usable example value"


def _published(service: dict) -> list[tuple[str | None, int]]:
    """(host interface, host port) of each published port, from docker-compose 1's short form
    ("127.0.0.1:5000:5000/tcp") or the long form of Compose v2 ({host_ip, published, target})."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            parts = port.split("/")[0].split(":")
            out.append((parts[0] if len(parts) == 3 else None, int(parts[-2])))
        else:
            out.append((port.get("host_ip"), int(port["published"])))
    return out


def test_mlflow_is_published_on_the_host_loopback_only(tmp_path):
    services = rendered(tmp_path)["services"]
    assert _published(services["mlflow"]) == [("127.0.0.1", 5000)]


def test_mlflow_is_published_on_all_interfaces_when_the_user_opts_in(tmp_path):
    services = rendered(tmp_path, {**FILLED, "MLFLOW_BIND": "0.0.0.0"})["services"]
    assert _published(services["mlflow"]) == [("0.0.0.0", 5000)]


def test_mlflow_answers_the_containers_that_call_it_by_its_service_name(tmp_path):
    """The other services reach MLflow as http://mlflow:5000; MLflow's host-header check must allow that name
    (tests/e2e/test_services.py sends such a request to a real server started with this setting)."""
    services = rendered(tmp_path)["services"]
    uri = services["airflow-scheduler"]["environment"]["MLFLOW_TRACKING_URI"]
    allowed = services["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert uri == "http://mlflow:5000"
    assert {"mlflow:5000", "localhost:5000", "127.0.0.1:5000"} <= set(allowed)
