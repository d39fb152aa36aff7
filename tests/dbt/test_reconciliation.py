"""The reconciliation test (dbt_project/tests/assert_orders_reconcile_with_lake.sql) passes on the built fixture
lake and fails, naming itself, when a mart no longer matches the landed orders."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from seg.core import config
from seg.transform import dbt as seg_dbt
from tests.dbt import fixture_lake as lake

TEST = "assert_orders_reconcile_with_lake"


@pytest.fixture
def copy_of_full_lake(full_lake, tmp_path):
    """The built fixture lake (lake + warehouse) copied, so tampering never touches the shared one."""
    settings, _ = full_lake
    root = tmp_path / "copy"
    shutil.copytree(settings.paths.root, root, ignore=shutil.ignore_patterns("dbt", "tmp"))
    return config.load(root)


def _tamper(settings, sql: str) -> None:
    con = duckdb.connect(str(settings.paths.warehouse))
    try:
        assert con.execute(sql).fetchone()[0] == 1  # one row changed
    finally:
        con.close()


def test_reconciliation_passes_on_the_built_marts(full_lake):
    summary = full_lake[1]["core"]
    assert summary["status_counts"].get("fail", 0) == 0
    settings, _ = full_lake
    result = seg_dbt.invoke(settings, ["test", "--select", TEST], lake.AS_OF)
    assert [str(r.status) for r in result.results] == ["pass"]


@pytest.mark.parametrize(
    "tampering",
    [
        # one cent more on one completed order
        "update marts.orders set amount = amount + 0.01 where order_id = 'O0000000001'",
        # a cancelled order counted as completed: the orders net of cancellations no longer match
        "update marts.orders set status = 'completed', is_completed = true where order_id = 'O0000000012'",
        # RFM revenue drifting from the orders it summarises
        "update marts.customer_rfm set monetary = monetary - 1 "
        "where person_id = (select min(person_id) from marts.customer_rfm)",
    ],
    ids=["amount_off_by_a_cent", "cancelled_counted_as_completed", "rfm_monetary_off"],
)
def test_reconciliation_fails_on_a_tampered_mart(copy_of_full_lake, tampering):
    _tamper(copy_of_full_lake, tampering)
    with pytest.raises(seg_dbt.DbtError) as caught:
        seg_dbt.invoke(copy_of_full_lake, ["test", "--select", TEST], lake.AS_OF)
    assert [f["status"] for f in caught.value.failures] == ["fail"]
    assert TEST in caught.value.failures[0]["node"]
