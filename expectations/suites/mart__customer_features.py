"""mart__customer_features: the model's input has exactly one row per customer.

Only the count is checked here: it is the contract between the features stage and the marts it is built from.
person_id unique / not_null / in customers are dbt tests (models/marts/customers/_customers__models.yml, severity
error, run by `build_features`); they make the features a subset of the customers, this makes them all of them.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__customer_features"
RELATION = "marts.customer_features"
CUSTOMERS = "marts.customers"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)),
                  requires=(ctx.relation(RELATION), ctx.relation(CUSTOMERS)))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    query = (
        "select features.n as feature_rows, customers.n as customer_rows "
        "from (select count(*) as n from {batch}) as features, "
        f"(select count(*) as n from {ctx.relation(CUSTOMERS)}) as customers "
        "where features.n <> customers.n"
    )
    b.add("row_count_matches", gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query, description=f"row count equals {CUSTOMERS}"),
        expectation_type="expect_table_row_count_to_equal_other_table")
    return b.build()
