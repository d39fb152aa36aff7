"""segments__assignments: the segments of the as-of date cover every person exactly once, in sane proportions.

Segment ids are the model's cluster labels 0..k-1 (ml/assign.py); a label missing from that range is an empty
segment.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "segments__assignments"
RELATION = "ml_stage.customer_assignments"
CUSTOMERS = "marts.customers"


def target(ctx: GateContext) -> Target:
    return Target(
        query=compat.relation_query(ctx.relation(RELATION), where=f"as_of_date = {ctx.date_literal}"),
        requires=(ctx.relation(RELATION), ctx.relation(CUSTOMERS)),
    )


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    customers = ctx.relation(CUSTOMERS)
    b = SuiteBuilder(SUITE, ctx)
    b.add("not_null", gxe.ExpectColumnValuesToNotBeNull(column="person_id"), column="person_id")
    b.add("assigned_once", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select person_id, 'not assigned' as problem from " + customers + " "
            "where person_id not in (select person_id from {batch} where person_id is not null) "
            "union all "
            "select person_id, 'assigned ' || count(*) || ' times' as problem from {batch} "
            "where person_id is not null group by person_id having count(*) > 1"
        ),
        description=f"every person in {customers} has exactly one assignment"),
        key="person_id.assigned_once", column="person_id", expectation_type="expect_every_person_assigned_once")
    b.add("known_person", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select person_id from {batch} where person_id not in "
            f"(select person_id from {customers} where person_id is not null)"
        ),
        description=f"every assigned person exists in {customers}"),
        key="person_id.known_person", column="person_id", expectation_type="expect_assigned_person_in_customers")
    b.add("not_null", gxe.ExpectColumnValuesToNotBeNull(column="segment_id"), column="segment_id")
    b.add("empty_segment", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select labels.range as segment_id from "
            "range(0, coalesce((select max(segment_id) + 1 from {batch}), 0)) as labels "
            "where labels.range not in (select segment_id from {batch} where segment_id is not null)"
        ),
        description="no segment id between 0 and the largest id is empty"),
        expectation_type="expect_no_empty_segment")
    low = float(ctx.policy.threshold(SUITE, "min_segment_share"))
    high = float(ctx.policy.threshold(SUITE, "max_segment_share"))
    b.add("segment_share", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select segment_id, segment_name, members, round(share, 4) as share from ("
            "select segment_id, any_value(segment_name) as segment_name, count(*) as members, "
            "count(*) / sum(count(*)) over () as share "
            "from {batch} where segment_id is not null group by segment_id"
            f") as sizes where share < {low!r} or share > {high!r}"
        ),
        description=f"every segment holds between {low:.0%} and {high:.0%} of the people"),
        expectation_type="expect_segment_share_between")
    return b.build()
