"""mart__orders: the marts gate requires the relation; its grain and its reconciliation are dbt tests.

dbt owns both (severity error, so a failure stops `dbt_build` before this gate):
- order_id `unique` + `not_null`, person_id `not_null` + in customers, status and channel in their value sets,
  amount_reporting >= 0 (dbt_project/models/marts/activity/_activity__models.yml);
- dbt_project/tests/assert_orders_reconcile_with_lake.sql: order count and revenue per status and currency (and net
  of cancellations) equal the landed orders up to the as-of date (latest version of each order, status NULL read
  as 'completed'), exactly (DECIMAL), read from the lake directly.
Checking them here again would check the same thing twice (expectations/ in STYLE.md), so the suite has no
expectation of its own: the gate runner still fails the gate (`marts.orders.table_exists`, critical) when the
relation is missing.
"""

from __future__ import annotations

import great_expectations as gx

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__orders"
RELATION = "marts.orders"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)), requires=(ctx.relation(RELATION),))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    return SuiteBuilder(SUITE, ctx).build()
