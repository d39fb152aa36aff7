"""mart__customers: the person mart the features and the segments are keyed on is not empty.

Its grain is a dbt test, not an expectation here (expectations/: dbt tests guard keys, GX guards contracts between
stages): `unique` + `not_null` on person_id and `unique` on customer_id (NULL allowed: guest-only persons) in
dbt_project/models/marts/customers/_customers__models.yml, severity error, so a broken key fails `dbt_build` before
this gate runs.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__customers"
RELATION = "marts.customers"


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)), requires=(ctx.relation(RELATION),))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    b.add("row_count", gxe.ExpectTableRowCountToBeBetween(min_value=1))
    return b.build()
