"""Shared fixtures: every test gets its own data directory (SEG_DATA_DIR) so nothing leaks between tests."""

from __future__ import annotations

import os

import pytest

from seg.core import config


@pytest.fixture
def settings(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("SEG_DATA_DIR", str(root))
    return config.load(root)


@pytest.fixture
def generator_settings(tmp_path, monkeypatch):
    """A data directory that is the generator's deployment (its overlay and EUR), as `seg generate` leaves it."""
    from seg.generate import DEPLOYMENT

    root = tmp_path / "data"
    monkeypatch.setenv("SEG_DATA_DIR", str(root))
    config.write_deployment(root, DEPLOYMENT, "")
    return config.load(root)


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory):
    """Every DAG file parsed by Airflow itself, once per test session.

    Airflow reads its configuration when first imported, so the environment for a throwaway data directory is set
    before that import (and stays: later in-process Airflow users share this one configuration).
    """
    from seg.pipeline.airflow import DAGS_FOLDER, airflow_env

    os.environ.update(airflow_env(config.load(tmp_path_factory.mktemp("airflow_data"))))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory):
    """The demo's generated files (`make demo`'s generate step, parameters from the Makefile: tests/demo.py)."""
    from seg.generate import run as generate
    from tests.demo import demo

    d = demo()
    paths = config.load(tmp_path_factory.mktemp("demo") / "data").paths
    generate(paths, customers=d.customers, days=d.days, end=d.end, seed=d.seed)
    return paths
