"""mart__customer_rfm: recency / frequency / monetary scores are quintiles (1-5) and money is never negative."""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations import duckdb_compat as compat
from expectations.suites._base import GateContext, SuiteBuilder, Target

SUITE = "mart__customer_rfm"
RELATION = "marts.customer_rfm"
SCORES = ("r_score", "f_score", "m_score")


def target(ctx: GateContext) -> Target:
    return Target(query=compat.relation_query(ctx.relation(RELATION)), requires=(ctx.relation(RELATION),))


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    b = SuiteBuilder(SUITE, ctx)
    for score in SCORES:
        b.add("score_range", gxe.ExpectColumnValuesToBeBetween(column=score, min_value=1, max_value=5), column=score)
    b.add("bounds", gxe.ExpectColumnValuesToBeBetween(column="monetary", min_value=0), column="monetary")
    return b.build()
