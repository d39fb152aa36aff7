"""The data contract: typed access to sources.yml and event_taxonomy.yml.

Everything that needs to know what a source looks like (generator, landing, importer, gates, dbt sources)
asks this module, so the YAML files stay the single description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CONTRACT_DIR = Path(__file__).parent

# contract type -> DuckDB type used to cast incoming values
DUCKDB_TYPES = {
    "varchar": "VARCHAR",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "json": "JSON",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    pattern: str | None = None
    allowed: tuple[str, ...] | None = None
    default: Any = None
    min: Any = None
    max: Any = None
    pii: bool = False
    description: str = ""

    @property
    def duckdb_type(self) -> str:
        return DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class Rule:
    name: str
    sql: str
    description: str = ""


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    primary_key: tuple[str, ...]
    timestamp: str | None
    columns: dict[str, Column]
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.required]


@dataclass(frozen=True)
class Contract:
    version: int
    sources: dict[str, Source]
    taxonomy: dict[str, Any]

    @property
    def event_types(self) -> tuple[str, ...]:
        """Every event type accepted by any taxonomy version (sorted, de-duplicated)."""
        names = set()
        for version in self.taxonomy["versions"].values():
            names.update(version["event_types"])
        return tuple(sorted(names))

    def event_properties(self, event_type: str, version: int | None = None) -> dict[str, dict]:
        version = version or self.taxonomy["current_version"]
        spec = self.taxonomy["versions"][version]["event_types"][event_type]
        return spec.get("properties") or {}

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(self.sources)
            raise KeyError(f"unknown source {name!r}; the contract knows: {known}") from None


def _column(name: str, spec: dict, taxonomy_types: tuple[str, ...]) -> Column:
    spec = dict(spec)
    allowed = spec.pop("allowed", None)
    if spec.pop("allowed_from", None) == "event_taxonomy":
        allowed = list(taxonomy_types)
    if spec["type"] not in DUCKDB_TYPES:
        raise ValueError(f"column {name}: unknown contract type {spec['type']!r}")
    return Column(name=name, allowed=tuple(allowed) if allowed else None, **spec)


@lru_cache(maxsize=1)
def load_contract() -> Contract:
    raw = yaml.safe_load((CONTRACT_DIR / "sources.yml").read_text())
    taxonomy = yaml.safe_load((CONTRACT_DIR / "event_taxonomy.yml").read_text())
    types = set()
    for version in taxonomy["versions"].values():
        types.update(version["event_types"])
    taxonomy_types = tuple(sorted(types))
    sources = {}
    for name, spec in raw["sources"].items():
        sources[name] = Source(
            name=name,
            description=" ".join(spec.get("description", "").split()),
            primary_key=tuple(spec["primary_key"]),
            timestamp=spec.get("timestamp"),
            columns={c: _column(c, s, taxonomy_types) for c, s in spec["columns"].items()},
            rules=tuple(Rule(**r) for r in spec.get("rules", [])),
        )
    return Contract(version=raw["version"], sources=sources, taxonomy=taxonomy)


SOURCES = ("crm_customers", "orders", "order_items", "events", "store_visits", "survey_responses")
