"""mart__orders: one row per order, and its completed revenue reconciles with the lake.

The lake side repeats staging's rules (models/staging/stg_lake__orders.sql): rows landed by the as-of date and
placed before its end, deduplicated by order_id (latest ingest_date, then file, then row wins), status NULL read
as 'completed'. Revenue is summed in each order's own currency on both sides, so currency conversion in the marts
cannot hide a lost or doubled order.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__orders"
RELATION = "marts.orders"
LAKE = "lake.orders"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)),
                  requires=(ctx.relation(RELATION), ctx.relation(LAKE)))


def reconciliation_query(ctx: GateContext) -> str:
    tolerance_abs = float(ctx.policy.threshold(SUITE, "revenue_tolerance_abs"))
    tolerance_rel = float(ctx.policy.threshold(SUITE, "revenue_tolerance_rel"))
    return f"""
with mart as (
    select coalesce(sum(amount), 0) as revenue, count(*) as completed_orders
    from {{batch}}
    where status = 'completed'
),
lake_versions as (
    select
        amount,
        coalesce(status, 'completed') as status,
        row_number() over (
            partition by order_id order by ingest_date desc, _source_file desc, _row_number desc
        ) as version_rank
    from {ctx.relation(LAKE)}
    where ingest_date <= {ctx.date_literal} and ordered_at < {ctx.date_literal} + interval 1 day
),
lake as (
    select coalesce(sum(amount), 0) as revenue, count(*) as completed_orders
    from lake_versions
    where version_rank = 1 and status = 'completed'
)
select
    mart.revenue as mart_revenue,
    lake.revenue as lake_revenue,
    mart.revenue - lake.revenue as difference,
    mart.completed_orders as mart_completed_orders,
    lake.completed_orders as lake_completed_orders
from mart, lake
where abs(mart.revenue - lake.revenue) > greatest({tolerance_abs!r}, {tolerance_rel!r} * abs(lake.revenue))
""".strip()


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    b.add("not_null", gxe.ExpectColumnValuesToNotBeNull(column="order_id"), column="order_id")
    b.add("unique", gxe.ExpectColumnValuesToBeUnique(column="order_id"), column="order_id")
    b.add("reconciliation", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=reconciliation_query(ctx),
        description="completed revenue in marts.orders equals completed revenue of the deduplicated lake orders"),
        key="revenue_reconciles", expectation_type="expect_revenue_to_reconcile_with_lake")
    return b.build()
