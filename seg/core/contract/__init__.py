"""The data contract: typed access to sources.yml and event_taxonomy.yml, plus a deployment's overlay.

Everything that needs to know what a source looks like (generator, landing, importer, gates, dbt sources)
asks this module, so the YAML files stay the single description. `load_contract()` is the shared contract (what
values mean); `load_contract(overlay)` / `for_settings(settings)` adds one deployment's own formats, code lists and
typical bounds (an overlay YAML, see seg/generate/contract_overlay.yml) on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from seg.core.config import Settings

CONTRACT_DIR = Path(__file__).parent
# An identifier is any trimmed, non-empty text up to this length without control characters (a fact for every
# deployment); its format is a deployment's own (overlay `pattern`).
IDENTIFIER_MAX_LENGTH = 256
# Keys an overlay may set on a contract column: they only add rules (a `required` overlay can only say true).
OVERLAY_KEYS = ("pattern", "allowed", "min", "max", "required")

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
    identifier: bool = False
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
    overlay: str | None = None  # the deployment overlay applied, if any (its path, for manifests and messages)

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


def _apply_overlay(raw: dict, overlay: Path) -> None:
    """Merge a deployment overlay into the raw contract dict; unknown sources, columns or keys are errors."""
    try:
        spec = yaml.safe_load(overlay.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"contract overlay {overlay}: cannot read it: {exc}") from exc
    unknown = set(spec) - {"description", "sources"}
    if unknown:
        raise ValueError(f"contract overlay {overlay}: unknown top-level keys {sorted(unknown)}")
    for source, source_spec in (spec.get("sources") or {}).items():
        if source not in raw["sources"]:
            raise ValueError(f"contract overlay {overlay}: {source!r} is not a contract source")
        bad = set(source_spec or {}) - {"columns"}
        if bad:
            raise ValueError(f"contract overlay {overlay}: {source}: only `columns` may be overlaid, not {sorted(bad)}")
        columns = raw["sources"][source]["columns"]
        for column, extra in ((source_spec or {}).get("columns") or {}).items():
            if column not in columns:
                raise ValueError(f"contract overlay {overlay}: {source}.{column} is not a contract column")
            bad = set(extra or {}) - set(OVERLAY_KEYS)
            if bad:
                raise ValueError(f"contract overlay {overlay}: {source}.{column}: keys {sorted(bad)} cannot be "
                                 f"overlaid (allowed: {', '.join(OVERLAY_KEYS)})")
            if (extra or {}).get("required") is False and columns[column].get("required"):
                raise ValueError(f"contract overlay {overlay}: {source}.{column} is required by the shared contract")
            base = columns[column]
            for key, value in (extra or {}).items():
                if key == "allowed" and (base.get("allowed") or base.get("allowed_from")):
                    raise ValueError(f"contract overlay {overlay}: {source}.{column} already has a value list")
                base[key] = value


def load_contract(overlay: str | Path | None = None) -> Contract:
    """The shared contract, with a deployment overlay applied when one is given."""
    return _load_contract(str(Path(overlay).resolve()) if overlay else None)


def for_settings(settings: Settings) -> Contract:
    """The contract a deployment lands under: the shared one plus `deployment.contract_overlay`."""
    return load_contract(settings.contract_overlay)


@lru_cache(maxsize=8)
def _load_contract(overlay: str | None) -> Contract:
    raw = yaml.safe_load((CONTRACT_DIR / "sources.yml").read_text())
    if overlay:
        _apply_overlay(raw, Path(overlay))
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
    return Contract(version=raw["version"], sources=sources, taxonomy=taxonomy, overlay=overlay)


# Landing order: fx_rates first, so that orders landed in the same run find the day's rates.
SOURCES = ("fx_rates", "crm_customers", "orders", "order_items", "events", "store_visits", "survey_responses")
