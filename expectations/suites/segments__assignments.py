"""segments__assignments: one lens's segments of the as-of date cover every person exactly once, in sane
proportions. The gate runs once per lens (`segments.<lens>`); every query reads that lens's rows only.

Segment ids are stable across models (ml/matching.py): a refit keeps the ids of matched segments and never reuses
a vanished one, so ids have gaps. A segment is empty when the model has it (`ml_stage.segment_profiles`, one row per
segment of the model, written by the same assign step) but nobody is assigned to it.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target
from seg.core.warehouse import sql_str

SUITE = "segments__assignments"
RELATION = "ml_stage.customer_assignments"
CUSTOMERS = "marts.customers"
PROFILES = "ml_stage.segment_profiles"


def _lens(ctx: GateContext) -> str:
    return "segmentation = " + sql_str(ctx.settings.lens)


def target(ctx: GateContext) -> Target:
    return Target(
        query=compat.relation_query(ctx.relation(RELATION),
                                    where=f"as_of_date = {ctx.date_literal} and {_lens(ctx)}"),
        requires=(ctx.relation(RELATION), ctx.relation(CUSTOMERS), ctx.relation(PROFILES)),
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
    profiles = ctx.relation(PROFILES)
    b.add("empty_segment", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            f"select segment_id, segment_name from {profiles} where as_of_date = {ctx.date_literal} and {_lens(ctx)} "
            "and segment_id not in (select segment_id from {batch} where segment_id is not null)"
        ),
        description=f"every segment of the model ({profiles}) has members"),
        expectation_type="expect_no_empty_segment")
    b.add("unknown_segment", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select segment_id, count(*) as members from {batch} where segment_id is not null and segment_id not in "
            f"(select segment_id from {profiles} where as_of_date = {ctx.date_literal} and {_lens(ctx)}) "
            "group by segment_id"
        ),
        description=f"every assigned segment id is a segment of the model ({profiles})"),
        expectation_type="expect_assigned_segment_in_model")
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
