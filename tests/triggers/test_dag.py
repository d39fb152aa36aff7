"""The micro-batch DAG parses, is chained land -> evaluate -> publish, and keeps DuckDB to one writer."""

import pytest

from seg.core import config
from seg.triggers import definitions


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["segmentation_triggers"]


def test_tasks_are_chained_land_evaluate_publish(dag):
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {("land_recent", "evaluate_triggers"), ("evaluate_triggers", "publish_redis")}


def test_dag_policy_one_writer_and_the_configured_schedule(dag):
    cfg = definitions.load()
    assert dag.max_active_runs == 1 and not dag.catchup
    assert {"segmentation", "triggers"} <= set(dag.tags)
    assert "evaluation time" in dag.doc_md
    pool = config.load().airflow.warehouse_pool  # the daily DAG's pool: one DuckDB writer across DAGs
    assert dag.get_task("evaluate_triggers").pool == pool
    assert dag.get_task("publish_redis").pool == pool
    assert f"expression='{cfg.schedule}'" in repr(dag.timetable)
    for task in dag.tasks:
        assert task.owner == "data-platform" and task.retries == 0
