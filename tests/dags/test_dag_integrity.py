"""The DAG parses, has the approved shape, and its gate ordering is pinned as an explicit edge list."""

import pytest

from seg.core import config
from seg.core.contract import SOURCES


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["segmentation_daily"]


def edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_every_source_has_a_landing_task_before_the_raw_gate(dag):
    lands = [f"land_{s}" for s in SOURCES]
    assert set(lands) <= set(dag.task_ids)
    assert (lands[-1], "gate_raw") in edges(dag)


def test_gates_sit_between_the_stages_they_guard(dag):
    pinned = {
        ("gate_raw", "dbt_build"),
        ("dbt_build", "gate_marts"),
        ("gate_marts", "build_features"),
        ("build_features", "gate_features"),
        ("gate_features", "publish_marts"),
    }
    assert pinned <= edges(dag)


def test_each_lens_has_its_own_model_steps_after_the_marts(dag):
    lenses = config.load().lenses
    assert lenses == ("profile", "behaviour")
    for lens in lenses:
        steps = [("publish_marts", "drift_report"), ("drift_report", "choose_model"), ("choose_model", "train"),
                 ("choose_model", "load_champion"), ("train", "assign"), ("load_champion", "assign"),
                 ("assign", "gate_segments"), ("gate_segments", "promote"), ("promote", "publish")]
        pinned = {(a if a == "publish_marts" else f"{lens}.{a}", f"{lens}.{b}") for a, b in steps}
        assert pinned <= edges(dag), lens
        assert not dag.get_task(f"{lens}.publish").downstream_task_ids
        # the champion alias moves only once the segments passed their gate: nothing else leads to promote
        assert dag.get_task(f"{lens}.promote").upstream_task_ids == {f"{lens}.gate_segments"}
        # a lens never waits for another: one lens's failure leaves the others' segments
        upstream = dag.get_task(f"{lens}.drift_report").upstream_task_ids
        assert upstream == {"publish_marts"}


def test_dag_policy(dag):
    assert dag.max_active_runs == 1, "DuckDB has one writer"
    assert not dag.catchup
    assert {"segmentation"} <= set(dag.tags)
    assert dag.doc_md and "as-of date" in dag.doc_md
    for task in dag.tasks:
        assert task.owner == "data-platform"
        assert task.retries == 0
        assert task.pool == "warehouse_writer", "one DuckDB writer across DAGs"
    for lens in config.load().lenses:
        assert dag.get_task(f"{lens}.assign").trigger_rule == "none_failed_min_one_success"
