"""mart__customers: one row per person; the person is the unit everything downstream is keyed on."""

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
    b.add("not_null", gxe.ExpectColumnValuesToNotBeNull(column="person_id"), column="person_id")
    b.add("unique", gxe.ExpectColumnValuesToBeUnique(column="person_id"), column="person_id")
    # NULL customer_id (a person known only from guest orders / devices) is allowed; GX ignores NULLs here
    b.add("unique", gxe.ExpectColumnValuesToBeUnique(
        column="customer_id", description="`customer_id` is unique where it is not NULL"), column="customer_id")
    return b.build()
