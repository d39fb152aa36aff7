"""raw__fx_rates: the exchange rates landed for one ingest date, checked against the data contract."""

from __future__ import annotations

import great_expectations as gx

from expectations.suites._base import GateContext, Target
from expectations.suites._contract import build_contract_suite, raw_target

SUITE = "raw__fx_rates"
SOURCE = "fx_rates"


def target(ctx: GateContext) -> Target:
    return raw_target(ctx, SOURCE)


def build_suite(ctx: GateContext) -> gx.ExpectationSuite:
    return build_contract_suite(SUITE, SOURCE, ctx)
