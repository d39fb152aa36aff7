"""mart__customer_rfm: the marts gate requires the relation; everything about its rows is a dbt test.

dbt_project/models/marts/customers/_customers__models.yml owns the content (severity error, so a failure stops
`dbt_build` before this gate): person_id unique / not_null / in customers, r/f/m/fm_score not_null and within 1-5,
recency_days >= 0, frequency >= 1, monetary not_null and >= 0, rfm_segment in the seed; the unit test
test_rfm_scores_quintiles_and_names_segments pins the quintile arithmetic and assert_orders_reconcile_with_lake
the sums against marts.orders. Checking any of them here again would check the same thing twice
(expectations/ in STYLE.md), so the suite has no expectation of its own: the gate runner still fails the gate
(`marts.customer_rfm.table_exists`, critical) when the relation is missing.
"""

from __future__ import annotations

import great_expectations as gx

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__customer_rfm"
RELATION = "marts.customer_rfm"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)), requires=(ctx.relation(RELATION),))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    return SuiteBuilder(SUITE, ctx).build()
