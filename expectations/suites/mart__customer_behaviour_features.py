"""mart__customer_behaviour_features: the behaviour lens's input has exactly one row per customer, of the gate's date.

What dbt already owns is not checked again (expectations/ in STYLE.md; tests/expectations/test_dbt_owned_mart_checks.py):
dbt_project/models/marts/customers/_customers__models.yml tests person_id unique / not_null / in customers, every
count and amount >= 0 and every share within [0, 1] (accepted_range), and the windows' arithmetic (30d <= 90d,
days_since_last_order < 90 exactly when orders_90d > 0, channel shares summing to at most 1), all severity error,
run by `build_features` before this gate. Left here, the contracts between the stages:
- row_count_matches: as many rows as marts.customers (with dbt's unique + relationships: every customer once);
- as_of_matches: every row describes the gate's as-of date, so a lens never segments a stale window.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__customer_behaviour_features"
RELATION = "marts.customer_behaviour_features"
CUSTOMERS = "marts.customers"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)),
                  requires=(ctx.relation(RELATION), ctx.relation(CUSTOMERS)))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    customers = ctx.relation(CUSTOMERS)
    b.add("row_count_matches", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select features.n as feature_rows, customers.n as customer_rows "
            "from (select count(*) as n from {batch}) as features, "
            f"(select count(*) as n from {customers}) as customers "
            "where features.n <> customers.n"
        ),
        description=f"row count equals {customers}"),
        expectation_type="expect_table_row_count_to_equal_other_table")
    b.add("as_of_matches", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "select as_of_date, count(*) as row_count from {batch} "
            f"where as_of_date is distinct from {ctx.date_literal} group by as_of_date"
        ),
        description=f"every row describes the as-of date {ctx.as_of_date.isoformat()}"),
        key="as_of_date.as_of_matches", column="as_of_date", expectation_type="expect_column_values_to_equal_as_of_date")
    return b.build()
