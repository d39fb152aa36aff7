"""`seg import`: turn a user's own export into contract-shaped files in incoming/.

A mapping YAML names the input format and, per contract source, either a full DuckDB `sql` over the view
`input` or a `columns` rename map (contract column -> input column, optional `where`). The mapping is checked
completely (unknown sources/columns, missing required columns, SQL that fails) before anything is written.
Values are not coerced here: a value that breaks the contract is quarantined with its reason at landing,
so a few bad rows never block a large export.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from seg.config import Paths
from seg.contract import load_contract

FORMAT_READERS = {
    "csv": "read_csv",
    "parquet": "read_parquet",
    "json": "read_json",
}


class MappingError(ValueError):
    """The mapping file cannot be applied; the message names the problem. Nothing was written."""


@dataclass(frozen=True)
class Target:
    source: str
    select_sql: str


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _option(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_sql_str(k)}: {_sql_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_option(v) for v in value) + "]"
    return _sql_str(value)


def load_mapping(path: Path) -> dict:
    try:
        mapping = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read mapping {path}: {exc}") from exc
    if not isinstance(mapping, dict) or not isinstance(mapping.get("targets"), dict) or not mapping["targets"]:
        raise MappingError(f"mapping {path}: needs a non-empty `targets:` section (source -> sql or columns)")
    fmt = mapping.get("format", "csv")
    if fmt not in FORMAT_READERS:
        raise MappingError(f"mapping {path}: format {fmt!r} is not one of {', '.join(FORMAT_READERS)}")
    unknown_keys = set(mapping) - {"format", "read_options", "targets", "description"}
    if unknown_keys:
        raise MappingError(f"mapping {path}: unknown top-level keys {sorted(unknown_keys)}")
    return mapping


def build_targets(mapping: dict) -> list[Target]:
    contract = load_contract()
    targets = []
    for source_name, spec in mapping["targets"].items():
        if source_name not in contract.sources:
            raise MappingError(f"target {source_name!r} is not a contract source; known: {', '.join(contract.sources)}")
        source = contract.sources[source_name]
        if not isinstance(spec, dict) or ("sql" in spec) == ("columns" in spec):
            raise MappingError(f"target {source_name}: give exactly one of `sql` or `columns`")
        unknown_keys = set(spec) - {"sql", "columns", "where"}
        if unknown_keys:
            raise MappingError(f"target {source_name}: unknown keys {sorted(unknown_keys)}")
        if "sql" in spec:
            if "where" in spec:
                raise MappingError(f"target {source_name}: `where` goes with `columns`; put it inside the `sql`")
            targets.append(Target(source_name, str(spec["sql"])))
            continue
        columns = spec["columns"] or {}
        unknown = [c for c in columns if c not in source.columns]
        if unknown:
            raise MappingError(f"target {source_name}: columns {unknown} are not in the contract for {source_name}")
        select = ", ".join(f'"{str(src)}" AS "{dst}"' for dst, src in columns.items())
        where = f" WHERE {spec['where']}" if spec.get("where") else ""
        targets.append(Target(source_name, f"SELECT {select} FROM input{where}"))
    return targets


def run_import(paths: Paths, input_file: Path, mapping_file: Path, day: dt.date) -> dict[str, dict]:
    """Validate the mapping against the input, then write one Parquet file per target into incoming/<source>/<day>/."""
    input_file = Path(input_file)
    if not input_file.is_file():
        raise MappingError(f"input file {input_file} does not exist")
    mapping = load_mapping(mapping_file)
    targets = build_targets(mapping)
    contract = load_contract()
    reader = FORMAT_READERS[mapping.get("format", "csv")]
    options = "".join(f", {k} = {_option(v)}" for k, v in (mapping.get("read_options") or {}).items())

    con = duckdb.connect(":memory:")
    staged: list[tuple[Path, Path]] = []
    summary: dict[str, dict] = {}
    try:
        try:
            con.execute(f"CREATE VIEW input AS SELECT * FROM {reader}({_sql_str(str(input_file))}{options})")
            con.execute("SELECT * FROM input LIMIT 0")
        except duckdb.Error as exc:
            raise MappingError(f"cannot read {input_file} as {mapping.get('format', 'csv')}: {exc}") from exc
        for target in targets:
            source = contract.sources[target.source]
            try:
                cols = [row[0] for row in con.execute(f"DESCRIBE {target.select_sql}").fetchall()]
            except duckdb.Error as exc:
                raise MappingError(f"target {target.source}: the SQL fails: {str(exc).splitlines()[0]}") from exc
            unknown = [c for c in cols if c not in source.columns]
            if unknown:
                raise MappingError(f"target {target.source}: output columns {unknown} are not in the contract")
            missing = [c for c in source.required_columns if c not in cols]
            if missing:
                raise MappingError(f"target {target.source}: required contract columns {missing} are not produced")
            out_dir = paths.incoming / target.source / day.isoformat()
            final = out_dir / f"{target.source}_import_{input_file.stem}.parquet"
            tmp = out_dir / f".{final.name}.tmp"
            out_dir.mkdir(parents=True, exist_ok=True)
            try:
                con.execute(f"COPY ({target.select_sql}) TO {_sql_str(str(tmp))} (FORMAT parquet)")
            except duckdb.Error as exc:
                raise MappingError(f"target {target.source}: the SQL fails on the data: {str(exc).splitlines()[0]}") from exc
            staged.append((tmp, final))
            rows = con.execute(f"SELECT count(*) FROM read_parquet({_sql_str(str(tmp))})").fetchone()[0]
            summary[target.source] = {"rows": int(rows), "file": str(final), "columns": cols}
        for tmp, final in staged:  # all targets worked: publish them together
            os.replace(tmp, final)
        staged = []
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        con.close()
    return summary
