"""Quality gates: Great Expectations suites as code, validated in DuckDB, one gate per pipeline stage.

    from expectations import run_gate, GateFailed
    run_gate(settings, "raw", as_of_date)   # -> GateResult, or raises GateFailed on a critical failure

Layout: gates.py (runner + registry of gates), suites/ (one module per suite), gates.yml (severities and
thresholds), duckdb_compat.py (every GX-on-DuckDB workaround). Never imports ml/ or Airflow.
"""

import logging

# GX logs thousands of INFO lines per validation ("_get_default_value called with key ..."), which would bury
# the gate's own summary in Airflow task logs. Quiet it unless the application set a level for it.
if logging.getLogger("great_expectations").level == logging.NOTSET:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

from expectations.gates import GATES, ExpectationRow, GateFailed, GateResult, run_gate  # noqa: E402

__all__ = ["GATES", "ExpectationRow", "GateFailed", "GateResult", "run_gate"]
