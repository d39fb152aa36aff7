"""`seg import`: turn a user's own export into contract-shaped files in incoming/.

A mapping YAML names the input `format` (csv, parquet, json, jsonl), optionally its `encoding` and `read_options`
(passed to DuckDB's reader), and, per contract source, either a full DuckDB `sql` over the table `input` or a
`columns` rename map (contract column -> input column, optional `where`). `input` holds the readable rows of the
file in file order; its `rowid` numbers them from 0 (rejected lines are not in it). The mapping is checked
completely (unknown sources/columns, missing required columns, SQL that fails) before anything is written.

Exports as users have them:

* `encoding: latin-1` (or any Python codec name, e.g. cp1252): the file is decoded with it. DuckDB reads UTF-8,
  UTF-16 and Latin-1 CSVs itself; other encodings, and JSON in anything but UTF-8, are transcoded to UTF-8 first,
  chunk by chunk, into a temporary file.
* Lines that cannot become a row - a CSV line with too many or too few fields, bytes that are not in the encoding,
  a JSONL line that is not a JSON object - are not lost: each is written with its line number, its original text
  and the reason to `lake/quarantine/_import/<date>/<input stem>.parquet`, and the summary counts them. Always:
  input lines = rows read + rejected lines. (A JSON document, `format: json`, is read whole or not at all.)
* A CSV is read as text (`all_varchar`) unless the mapping's read_options give types: an id "00042" keeps its
  zeros and a malformed date reaches landing as written. JSON keeps its own types; give `columns` with VARCHAR
  types in read_options where a field mixes numbers and strings (e.g. a userId 42 in one line, "u42" in another).
* `crm_customers.updated_at` (when this version of the record was written) defaults to the import date, midnight
  UTC, when the mapping does not produce it: an export is a snapshot taken that day. No other column is invented.

Values are not coerced here: a value that breaks the contract is quarantined with its reason at landing, so a few
bad rows never block a large export. Mappings pass dates, amounts and ids through as text when they cannot parse
them, so landing sees, and keeps, what the file said.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import yaml

from seg.core.config import Paths
from seg.core.contract import load_contract
from seg.core.warehouse import sql_str

FORMATS = ("csv", "parquet", "json", "jsonl")
TOP_LEVEL_KEYS = {"format", "encoding", "read_options", "targets", "description"}
# the importer decides these itself: rejected lines are kept, never skipped silently
RESERVED_READ_OPTIONS = {"encoding", "ignore_errors", "store_rejects", "rejects_table", "rejects_scan", "rejects_limit"}
# encodings DuckDB's CSV reader decodes itself (Python codec name -> DuckDB's name)
DUCKDB_CSV_ENCODINGS = {"utf-8": "utf-8", "iso8859-1": "latin-1", "utf-16": "utf-16"}
# required timestamps an export may lack, filled with the import date (midnight UTC): source -> column
IMPORT_DATE_DEFAULTS = {"crm_customers": "updated_at"}
CHUNK_CHARS = 1 << 20
REJECTS_COLUMNS = "input_file VARCHAR, line_no BIGINT, line VARCHAR, reason VARCHAR"


class MappingError(ValueError):
    """The mapping file cannot be applied; the message names the problem. Nothing was written."""


@dataclass(frozen=True)
class Target:
    source: str
    select_sql: str


def _option(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_str(k)}: {_option(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_option(v) for v in value) + "]"
    return sql_str(value)


def load_mapping(path: Path) -> dict:
    try:
        mapping = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read mapping {path}: {exc}") from exc
    if not isinstance(mapping, dict) or not isinstance(mapping.get("targets"), dict) or not mapping["targets"]:
        raise MappingError(f"mapping {path}: needs a non-empty `targets:` section (source -> sql or columns)")
    fmt = mapping.get("format", "csv")
    if fmt not in FORMATS:
        raise MappingError(f"mapping {path}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    unknown_keys = set(mapping) - TOP_LEVEL_KEYS
    if unknown_keys:
        raise MappingError(f"mapping {path}: unknown top-level keys {sorted(unknown_keys)}")
    read_options = mapping.get("read_options") or {}
    if not isinstance(read_options, dict):
        raise MappingError(f"mapping {path}: `read_options` is a map of DuckDB reader options")
    reserved = sorted(set(read_options) & RESERVED_READ_OPTIONS)
    if reserved:
        raise MappingError(f"mapping {path}: read_options {reserved} are set by the importer "
                           "(`encoding` is a top-level key; rejected lines are always kept)")
    if "encoding" in mapping:
        _codec(mapping["encoding"], path)
    if fmt == "parquet" and "encoding" in mapping:
        raise MappingError(f"mapping {path}: `encoding` applies to text formats, not parquet")
    return mapping


def _codec(name, mapping_path: Path | str = "mapping") -> str:
    try:
        return codecs.lookup(str(name)).name
    except LookupError as exc:
        raise MappingError(f"mapping {mapping_path}: unknown encoding {name!r}") from exc


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


def rejects_path(paths: Paths, input_file: Path, day: dt.date) -> Path:
    """Where the lines of `input_file` that could not become rows are kept (line number, text, reason)."""
    return paths.quarantine / "_import" / day.isoformat() / f"{Path(input_file).stem}.parquet"


def _transcode(src: Path, encoding: str, dst: Path) -> None:
    """Decode `src` with `encoding` and write it as UTF-8, a chunk at a time (the file may not fit in memory)."""
    try:
        with src.open(encoding=encoding, newline="") as fin, dst.open("w", encoding="utf-8", newline="") as fout:
            while chunk := fin.read(CHUNK_CHARS):
                fout.write(chunk)
    except UnicodeDecodeError as exc:
        raise MappingError(f"{src} is not valid {encoding}: {exc}") from exc


def _split_jsonl(src: Path, encoding: str, good: Path) -> tuple[int, list[tuple[int, str, str]]]:
    """Copy the JSON-object lines of a JSONL file to `good` (UTF-8); return (lines kept, rejected lines).

    Blank lines are not lines of data. A rejected line is (line number from 1, its text, the reason)."""
    kept, rejected = 0, []
    with src.open(encoding=encoding, errors="surrogateescape", newline=None) as fin, \
            good.open("w", encoding="utf-8") as fout:
        for line_no, line in enumerate(fin, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                shown = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
                rejected.append((line_no, shown, f"not valid {encoding}"))
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                rejected.append((line_no, text, f"not valid JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                rejected.append((line_no, text, f"not a JSON object (a {type(value).__name__})"))
                continue
            fout.write(text + "\n")
            kept += 1
    return kept, rejected


def _load_input(con: duckdb.DuckDBPyConnection, input_file: Path, mapping: dict, workdir: Path) -> list[tuple[int, str, str]]:
    """Create the table `input` from the file; return the rejected lines (line number, text, reason)."""
    fmt = mapping.get("format", "csv")
    encoding = _codec(mapping.get("encoding", "utf-8"))
    read_options = dict(mapping.get("read_options") or {})
    path = input_file
    rejected: list[tuple[int, str, str]] = []
    if fmt == "csv":
        if encoding in DUCKDB_CSV_ENCODINGS:
            read_options["encoding"] = DUCKDB_CSV_ENCODINGS[encoding]
        else:
            path = workdir / "input.utf8.csv"
            _transcode(input_file, encoding, path)
        if not set(read_options) & {"all_varchar", "columns", "types", "dtypes", "column_types"}:
            read_options["all_varchar"] = True  # "00001" stays "00001"; landing casts to the contract types
        read_options["store_rejects"] = True
    elif fmt == "jsonl":
        path = workdir / "input.jsonl"
        _, rejected = _split_jsonl(input_file, encoding, path)
        read_options["format"] = "newline_delimited"
    elif fmt == "json" and encoding != "utf-8":
        path = workdir / "input.utf8.json"
        _transcode(input_file, encoding, path)
    reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "jsonl": "read_json"}[fmt]
    options = "".join(f", {k} = {_option(v)}" for k, v in read_options.items())
    con.execute(f"CREATE TEMP TABLE input AS SELECT * FROM {reader}({sql_str(str(path))}{options})")
    if fmt == "csv":
        # one row per rejected line (a line may break several rules), in the file's line numbering
        rejected = [(int(line), text, reason) for line, text, reason in con.execute(
            "SELECT line, any_value(csv_line), string_agg(DISTINCT lower(error_type) || ': ' || error_message, '; ') "
            "FROM reject_errors GROUP BY line ORDER BY line").fetchall()]
    return rejected


def _write_rejects(con: duckdb.DuckDBPyConnection, input_file: Path, rejected: list[tuple[int, str, str]], tmp: Path) -> dict[str, int]:
    con.execute(f"CREATE TEMP TABLE rejected_lines ({REJECTS_COLUMNS})")
    con.executemany("INSERT INTO rejected_lines VALUES (?, ?, ?, ?)", [(input_file.name, *r) for r in rejected])
    con.execute(f"COPY (SELECT * FROM rejected_lines ORDER BY line_no) TO {sql_str(str(tmp))} (FORMAT parquet)")
    return dict(Counter(reason.split(":", 1)[0] for _, _, reason in rejected))


def run_import(paths: Paths, input_file: Path, mapping_file: Path, day: dt.date) -> dict[str, dict]:
    """Validate the mapping against the input, then write one Parquet file per target into incoming/<source>/<day>/.

    Returns per target {rows, file, columns}, and under "_input" the input's figures: rows read, lines rejected
    (with `rejects_file` and the count per reason when there are any); lines = rows + rejected.
    """
    input_file = Path(input_file)
    if not input_file.is_file():
        raise MappingError(f"input file {input_file} does not exist")
    mapping = load_mapping(mapping_file)
    targets = build_targets(mapping)
    contract = load_contract()
    fmt = mapping.get("format", "csv")

    con = duckdb.connect(":memory:")
    staged: list[tuple[Path, Path]] = []
    summary: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="seg_import_") as workdir:
            try:
                rejected = _load_input(con, input_file, mapping, Path(workdir))
            except duckdb.Error as exc:
                raise MappingError(f"cannot read {input_file} as {fmt}: {exc}") from exc
            for target in targets:
                source = contract.sources[target.source]
                select_sql = target.select_sql
                try:
                    cols = [row[0] for row in con.execute(f"DESCRIBE {select_sql}").fetchall()]
                except duckdb.Error as exc:
                    raise MappingError(f"target {target.source}: the SQL fails: {str(exc).splitlines()[0]}") from exc
                unknown = [c for c in cols if c not in source.columns]
                if unknown:
                    raise MappingError(f"target {target.source}: output columns {unknown} are not in the contract")
                filled = IMPORT_DATE_DEFAULTS.get(target.source)
                if filled and filled not in cols:
                    select_sql = f"SELECT *, TIMESTAMP {sql_str(f'{day.isoformat()} 00:00:00')} AS \"{filled}\" FROM ({select_sql})"
                    cols.append(filled)
                missing = [c for c in source.required_columns if c not in cols]
                if missing:
                    raise MappingError(f"target {target.source}: required contract columns {missing} are not produced")
                out_dir = paths.incoming / target.source / day.isoformat()
                final = out_dir / f"{target.source}_import_{input_file.stem}.parquet"
                tmp = out_dir / f".{final.name}.tmp"
                out_dir.mkdir(parents=True, exist_ok=True)
                staged.append((tmp, final))
                try:
                    con.execute(f"COPY ({select_sql}) TO {sql_str(str(tmp))} (FORMAT parquet)")
                except duckdb.Error as exc:
                    raise MappingError(f"target {target.source}: the SQL fails on the data: {str(exc).splitlines()[0]}") from exc
                rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(str(tmp))})").fetchone()[0]
                summary[target.source] = {"rows": int(rows), "file": str(final), "columns": cols}

            rows_read = int(con.execute("SELECT count(*) FROM input").fetchone()[0])
            summary["_input"] = {"rows": rows_read, "rejected": len(rejected), "lines": rows_read + len(rejected),
                                 "file": str(input_file)}
            rejects_final = rejects_path(paths, input_file, day)
            if rejected:
                rejects_final.parent.mkdir(parents=True, exist_ok=True)
                rejects_tmp = rejects_final.with_name(f".{rejects_final.name}.tmp")
                staged.append((rejects_tmp, rejects_final))
                reasons = _write_rejects(con, input_file, rejected, rejects_tmp)
                summary["_input"].update(rejects_file=str(rejects_final), reasons=reasons)
        for tmp, final in staged:  # all targets worked: publish them together
            os.replace(tmp, final)
        if not rejected:
            rejects_final.unlink(missing_ok=True)  # a re-import of a now clean file replaces the old rejects
        staged = []
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        con.close()
    return summary
