"""What every suite module works with: the gate context, the policy from gates.yml, targets and a suite builder.

A suite module (`expectations/suites/<layer>__<dataset>.py`) exposes

    SUITE = "<layer>__<dataset>"
    def target(ctx: GateContext) -> Target           # the SQL the suite validates (a GX query asset)
    def build_suite(ctx: GateContext) -> gx.ExpectationSuite

and is listed under its gate in `expectations.gates.GATES`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import great_expectations as gx
import yaml
from great_expectations.expectations import Expectation

from seg.core.config import Settings

POLICY_FILE = Path(__file__).resolve().parent.parent / "gates.yml"
SEVERITIES = ("critical", "warning")


@dataclass(frozen=True)
class Policy:
    """gates.yml: severity per check and thresholds per suite (configuration, not code)."""

    raw: dict[str, Any]

    @classmethod
    def load(cls, path: Path | str = POLICY_FILE) -> Policy:
        raw = yaml.safe_load(Path(path).read_text())
        policy = cls(raw)
        for level in _all_severities(raw):
            if level not in SEVERITIES:
                raise ValueError(f"{path}: severity must be one of {SEVERITIES}, got {level!r}")
        return policy

    @property
    def sample_size(self) -> int:
        return int(self.raw.get("sample_size", 5))

    @property
    def data_docs_results_limit(self) -> int | None:
        return (self.raw.get("data_docs") or {}).get("validation_results_limit")

    def _suite(self, suite: str) -> dict[str, Any]:
        return (self.raw.get("suites") or {}).get(suite) or {}

    def severity(self, suite: str, check: str, key: str) -> str:
        """suites.<suite>.severity.<key> -> suites.<suite>.severity.<check> -> severity.<check> -> default."""
        own = self._suite(suite).get("severity") or {}
        for candidate in (own.get(key), own.get(check), (self.raw.get("severity") or {}).get(check)):
            if candidate:
                return candidate
        return self.raw.get("default_severity", "critical")

    def threshold(self, suite: str, name: str) -> Any:
        thresholds = self._suite(suite).get("thresholds") or {}
        if name not in thresholds:
            raise KeyError(f"gates.yml: suites.{suite}.thresholds.{name} is not set")
        return thresholds[name]


def _all_severities(raw: dict[str, Any]) -> list[str]:
    levels = [raw.get("default_severity", "critical"), *(raw.get("severity") or {}).values()]
    for spec in (raw.get("suites") or {}).values():
        levels.extend(((spec or {}).get("severity") or {}).values())
    return levels


@dataclass(frozen=True)
class GateContext:
    """Everything a suite may depend on for one gate run."""

    settings: Settings
    gate: str
    as_of_date: dt.date
    policy: Policy
    # logical schema -> physical schema; a write-audit-publish run points `marts` at its staging schema
    schemas: dict[str, str] = field(default_factory=dict)
    # columns that identify a row of every batch of this gate; failing rows are reported by them
    index_columns: tuple[str, ...] = ()

    def relation(self, name: str) -> str:
        """'marts.customers' -> the physical relation (schema remapped for write-audit-publish)."""
        schema, _, table = name.partition(".")
        return f"{self.schemas.get(schema, schema)}.{table}"

    @property
    def date_literal(self) -> str:
        return f"DATE '{self.as_of_date.isoformat()}'"

    @cached_property
    def day_end(self) -> dt.datetime:
        """First instant after the as-of day."""
        return dt.datetime.combine(self.as_of_date + dt.timedelta(days=1), dt.time())


@dataclass(frozen=True)
class Target:
    """The batch a suite validates, and what must exist before it can be validated."""

    query: str
    requires: tuple[str, ...] = ()
    # not None: do not validate, only note why (e.g. a source that never delivered a file)
    skip: str | None = None


class SuiteBuilder:
    """Collects expectations with the metadata the gate runner reads (check, key, column, severity)."""

    def __init__(self, name: str, ctx: GateContext) -> None:
        self.name = name
        self.ctx = ctx
        self._expectations: list[Expectation] = []
        self._keys: set[str] = set()

    def add(self, check: str, expectation: Expectation, *, column: str | None = None, key: str | None = None,
            expectation_type: str | None = None) -> Expectation:
        """Add `expectation` as check `check` (the severity family in gates.yml), keyed `<column>.<check>`."""
        key = key or (f"{column}.{check}" if column else check)
        if key in self._keys:
            raise ValueError(f"suite {self.name}: expectation key {key!r} used twice")
        self._keys.add(key)
        severity = self.ctx.policy.severity(self.name, check, key)
        expectation.severity = severity
        expectation.meta = {
            **(expectation.meta or {}),
            "check": check,
            "key": key,
            "column": column,
            "severity": severity,
            # what the check is, for SQL-backed checks whose GX type is unexpected_rows_expectation
            "expectation_type": expectation_type or expectation.expectation_type,
        }
        self._expectations.append(expectation)
        return expectation

    def build(self) -> gx.ExpectationSuite:
        return gx.ExpectationSuite(
            name=self.name,
            expectations=self._expectations,
            meta={"gate": self.ctx.gate, "as_of_date": self.ctx.as_of_date.isoformat()},
        )
