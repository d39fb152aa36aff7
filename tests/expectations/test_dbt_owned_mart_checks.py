"""The mart checks the gates leave to dbt: each one is a dbt test that stops the pipeline's dbt_build stage.

expectations/ in STYLE.md: dbt tests guard model logic (keys, relationships, arithmetic), GX guards contracts between
stages, and nothing is checked twice. The marts gate used to repeat dbt's key, range and reconciliation tests;
OWNERS names, for each expectation it dropped, the dbt test that owns it now. Model bugs that reach those checks are
written into a copy of dbt_project/, and seg.pipeline.daily.dbt_build must raise DbtError naming the owner, before
anything is published (the marts gate, which no longer looks, runs only after dbt_build).
"""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from expectations import GATES
from expectations.suites._base import GateContext, Policy
from seg.core import config
from seg.pipeline import daily
from seg.transform import dbt as seg_dbt
from tests.dbt import fixture_lake

from ._lakes import DAY

# removed GX expectation (suite, key) -> the dbt test owning the check (node name), and the bug that reaches it
OWNERS = {
    ("mart__customers", "person_id.not_null"): ("not_null_customers_person_id", "keys_and_ranges"),
    ("mart__customers", "person_id.unique"): ("unique_customers_person_id", "keys_and_ranges"),
    ("mart__customers", "customer_id.unique"): ("unique_customers_customer_id", "keys_and_ranges"),
    ("mart__customer_rfm", "r_score.score_range"): ("accepted_range_customer_rfm_r_score__5__1", "keys_and_ranges"),
    ("mart__customer_rfm", "f_score.score_range"): ("accepted_range_customer_rfm_f_score__5__1", "keys_and_ranges"),
    ("mart__customer_rfm", "m_score.score_range"): ("accepted_range_customer_rfm_m_score__5__1", "keys_and_ranges"),
    ("mart__customer_rfm", "monetary.bounds"): ("accepted_range_customer_rfm_monetary__0", "keys_and_ranges"),
    ("mart__orders", "order_id.not_null"): ("not_null_orders_order_id", "keys_and_ranges"),
    ("mart__orders", "order_id.unique"): ("unique_orders_order_id", "keys_and_ranges"),
    ("mart__orders", "revenue_reconciles"): ("assert_orders_reconcile_with_lake", "revenue"),
}

# Model bugs, as SQL replacing a mart's closing `select * from final` (model path under models/marts/).
BUGS = {
    "keys_and_ranges": {
        # a fan-out: one person twice (person_id and customer_id duplicated) and one person without an id
        "customers/customers.sql": """
select * from final
union all (select * from final where customer_id is not null order by person_id limit 1)
union all (select * replace (cast(null as varchar) as person_id) from final order by person_id limit 1)""",
        # scores off the 1-5 scale and a negative monetary value, for real persons only (md5 ids): the unit test's
        # hand-made persons (p1..p6) do not see the bug, so the data tests must catch it
        "customers/customer_rfm.sql": """
select * replace (
    case when person_id = (select min(person_id) from final where length(person_id) = 32) then 6
        else r_score end as r_score,
    case when person_id = (select min(person_id) from final where length(person_id) = 32) then 0
        else f_score end as f_score,
    case when person_id = (select min(person_id) from final where length(person_id) = 32) then 9
        else m_score end as m_score,
    case when person_id = (select max(person_id) from final where length(person_id) = 32) then -1
        else monetary end as monetary
)
from final""",
        # an order twice and an order without an id
        "activity/orders.sql": """
select * from final
union all (select * from final order by order_id limit 1)
union all (select * replace (cast(null as varchar) as order_id) from final order by order_id limit 1)""",
    },
    # one completed order's amount changed: every key and range still holds, only the lake disagrees
    "revenue": {
        "activity/orders.sql": """
select * replace (
    case when order_id = (select min(order_id) from final where status = 'completed') then amount + 899
        else amount end as amount
)
from final""",
    },
}
CLOSING = "select * from final"
MARTS_YAML = sorted((seg_dbt.PROJECT_DIR / "models" / "marts").rglob("_*.yml"))
# a GX check family -> the dbt generic tests making the same check on a column
SAME_CHECK = {
    "not_null": {"not_null"},
    "unique": {"unique"},
    "bounds": {"accepted_range"},
    "score_range": {"accepted_range"},
    "allowed_values": {"accepted_values"},
}


def _project_with_bugs(root: Path, bugs: dict[str, str]) -> Path:
    project = root / "dbt_project"
    shutil.copytree(seg_dbt.PROJECT_DIR, project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"))
    for model, sql in bugs.items():
        path = project / "models" / "marts" / model
        text = path.read_text().rstrip()
        assert text.endswith(CLOSING), f"{model} no longer ends with {CLOSING!r}: update BUGS"
        path.write_text(text.removesuffix(CLOSING) + sql.strip() + "\n")
    return project


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory):
    """bug set -> (settings, DbtError raised by the dbt_build stage), each built once on the dbt fixture lake."""
    done = {}

    def get(name: str):
        if name not in done:
            root = tmp_path_factory.mktemp(name)
            project = _project_with_bugs(root, BUGS[name])
            data = root / "data"
            fixture_lake.write_lake(data)
            config.write_deployment(data, {"reporting_currency": "EUR"}, "")
            settings = config.load(data)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(seg_dbt, "PROJECT_DIR", project)
                with pytest.raises(seg_dbt.DbtError) as raised:
                    daily.dbt_build(settings, dt.date.fromisoformat(fixture_lake.AS_OF))
            done[name] = settings, raised.value
        return done[name]

    return get


def failed_tests(error: seg_dbt.DbtError) -> dict[str, str]:
    """{test name: status} of the failed dbt nodes ('test.seg.unique_orders_order_id.fed79b3a6e' -> name)."""
    return {f["node"].split(".")[2]: f["status"] for f in error.failures if f["node"].startswith("test.")}


@pytest.mark.parametrize("removed", list(OWNERS), ids=[f"{s}:{k}" for s, k in OWNERS])
def test_dbt_build_stops_the_bugs_the_marts_gate_no_longer_checks(broken_build, removed):
    owner, bugs = OWNERS[removed]
    settings, error = broken_build(bugs)
    assert failed_tests(error).get(owner) == "fail", f"{removed}: {owner} did not fail: {error}"
    assert owner in str(error)
    with duckdb.connect(str(settings.paths.warehouse), read_only=True) as con:  # built for audit, never published
        published = con.execute("select count(*) from information_schema.tables where table_schema = 'marts'")
        assert published.fetchone() == (0,)


def test_a_revenue_bug_fails_only_the_reconciliation_with_the_lake(broken_build):
    _, error = broken_build("revenue")
    assert failed_tests(error) == {"assert_orders_reconcile_with_lake": "fail"}


def _dbt_column_tests() -> dict[tuple[str, str], set[str]]:
    """(model, column) -> names of the dbt generic tests on it, from the marts' schema YAML."""
    tests: dict[tuple[str, str], set[str]] = {}
    for path in MARTS_YAML:
        for model in yaml.safe_load(path.read_text()).get("models") or []:
            for column in model.get("columns") or []:
                names = {t if isinstance(t, str) else next(iter(t)) for t in column.get("data_tests") or []}
                tests[(model["name"], column["name"])] = names
    return tests


def test_no_gate_after_dbt_repeats_a_dbt_test_on_the_same_column(settings):
    dbt_tests = _dbt_column_tests()
    assert dbt_tests[("orders", "order_id")] >= {"unique", "not_null"}  # the YAML was read
    policy = Policy.load()
    repeated = []
    for gate in ("marts", "features", "segments"):
        ctx = GateContext(settings=settings, gate=gate, as_of_date=DAY, policy=policy)
        for name in GATES[gate].suites:
            module = importlib.import_module(f"expectations.suites.{name}")
            schema, _, model = module.RELATION.partition(".")
            for expectation in module.build_suite(ctx).expectations:
                check, column = expectation.meta["check"], expectation.meta["column"]
                same = SAME_CHECK.get(check, set()) & dbt_tests.get((model, column), set()) if schema == "marts" else set()
                if same:
                    repeated.append(f"{name} {expectation.meta['key']} repeats dbt {sorted(same)} on {model}.{column}")
    assert not repeated, repeated
