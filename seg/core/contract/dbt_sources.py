"""Generate the dbt sources file (dbt_project/models/staging/_lake__sources.yml) from the data contract.

The contract (sources.yml) is the one description of the raw sources; dbt gets its column names, types and
descriptions from here so the two never drift. A test checks that the committed file equals `render()`.

    python -m seg.core.contract.dbt_sources           # rewrite the committed file
    python -m seg.core.contract.dbt_sources --check   # exit 1 when the committed file is stale

Each table reads the hive-partitioned Parquet files landing writes
(`$SEG_DATA_DIR/lake/raw/<source>/ingest_date=YYYY-MM-DD/*.parquet`) through dbt-duckdb's `external_location`.
The staging models select through the `lake_source()` macro, which renders a typed empty relation from the
column `data_type`s below when a source has no file at all (a deployment with only some sources).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from seg.core.config import REPO_ROOT
from seg.core.contract import Contract, load_contract

SOURCES_FILE = REPO_ROOT / "dbt_project" / "models" / "staging" / "_lake__sources.yml"

# The lake stores JSON as text (VARCHAR holding JSON); every other contract type keeps its DuckDB type.
LAKE_TYPES = {"json": "VARCHAR"}

# Columns landing adds to every row, after the contract columns.
LAKE_COLUMNS = (
    ("ingest_date", "DATE", "Day the row was landed (hive partition `ingest_date=YYYY-MM-DD`)."),
    ("_source_file", "VARCHAR", "Incoming file the row came from."),
    ("_row_number", "BIGINT", "Row number within the incoming file (later rows win among duplicates)."),
)

HEADER = """\
# GENERATED from seg/core/contract/sources.yml by `python -m seg.core.contract.dbt_sources`: do not edit by hand.
# tests/dbt/test_dbt_sources.py fails when this file is stale.
"""


def lake_glob(source: str) -> str:
    return "{{ env_var('SEG_DATA_DIR') }}/lake/raw/" + source + "/*/*.parquet"


def sources_dict(contract: Contract | None = None) -> dict:
    contract = contract or load_contract()
    tables = []
    for source in contract.sources.values():
        columns = []
        for column in source.columns.values():
            description = column.description.strip()
            if column.type == "json":
                description += " (JSON text)"
            if column.pii:
                description += " PII: never exposed in clear by the marts."
            columns.append(
                {
                    "name": column.name,
                    "data_type": LAKE_TYPES.get(column.type, column.duckdb_type),
                    "description": description,
                }
            )
        columns += [{"name": n, "data_type": t, "description": d} for n, t, d in LAKE_COLUMNS]
        tables.append(
            {
                "name": source.name,
                "description": source.description,
                "config": {
                    "meta": {
                        "lake_glob": lake_glob(source.name),
                        "external_location": (
                            "read_parquet('{lake_glob}', hive_partitioning = true, union_by_name = true)"
                        ),
                        "primary_key": list(source.primary_key),
                        "timestamp": source.timestamp,
                        "contract_version": contract.version,
                    }
                },
                "columns": columns,
            }
        )
    return {
        "version": 2,
        "sources": [
            {
                "name": "lake",
                "description": (
                    "Raw rows landed in the Parquet lake, one table per contract source. Rows passed the contract "
                    "row checks, but may repeat across days and files; staging deduplicates them."
                ),
                "tables": tables,
            }
        ],
    }


def render(contract: Contract | None = None) -> str:
    body = yaml.safe_dump(sources_dict(contract), sort_keys=False, width=120, allow_unicode=True)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    parser.add_argument("--output", type=Path, default=SOURCES_FILE)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m seg.core.contract.dbt_sources", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
