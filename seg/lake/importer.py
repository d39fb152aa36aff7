"""`seg import`: turn a user's own export into contract-shaped files in incoming/.

A mapping YAML names the input `format` (csv, parquet, json, jsonl), optionally its `encoding` and `read_options`
(passed to DuckDB's reader), and, per contract source, either a full DuckDB `sql` over the table `input` or a
`columns` rename map (contract column -> input column, optional `where`). `input` holds the readable rows of the
file in file order; its `rowid` numbers them from 0 (rejected lines are not in it). The mapping is checked
completely (unknown sources/columns, missing required columns, SQL that fails) before anything is written.

A mapping can only turn its input into contract files. Its SQL runs in a DuckDB connection whose external access is
off (`enable_external_access = false`, the configuration locked) except for the one file it reads and the files the
importer writes: a `read_csv('/etc/passwd')`, a `read_text` of any other file, an ATTACH or a COPY fail. Each `sql` is
one SELECT statement (parsed by DuckDB, so a `;` inside a string is not a second statement), a `where` one condition;
`columns` names input columns, quoted as identifiers, and `read_options` are option names with plain values (true or
false, a number, a text, a list or a map of them), quoted as literals. A refused mapping writes nothing.

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
import math
import os
import re
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
OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MappingError(ValueError):
    """The mapping file cannot be applied; the message names the problem. Nothing was written."""


@dataclass(frozen=True)
class Target:
    source: str
    select_sql: str
    input_columns: tuple[str, ...] = ()  # the input columns a `columns` map names (checked against the input)


def _ident(name: str) -> str:
    """`name` as a DuckDB quoted identifier (quotes doubled): a column name is never read as SQL."""
    return '"' + str(name).replace('"', '""') + '"'


def _option(value, name: str) -> str:
    """A read option's value as a DuckDB literal; anything but true/false, a number, a text, a list or a map is refused."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingError(f"read_options: {name}: {value} is not a finite number")
        return repr(value)
    if isinstance(value, str | dt.date):
        return sql_str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_str(k)}: {_option(v, f'{name}.{k}')}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_option(v, f"{name}[{i}]") for i, v in enumerate(value)) + "]"
    raise MappingError(f"read_options: {name}: give true/false, a number, a text, a list or a map, not {value!r}")


def _reader_options(read_options: dict) -> str:
    """`, name = value` for each read option: names checked, values quoted."""
    parts = []
    for name, value in read_options.items():
        if not isinstance(name, str) or not OPTION_NAME.fullmatch(name):
            raise MappingError(f"read_options: {name!r} is not an option name (letters, digits and _)")
        parts.append(f", {name} = {_option(value, name)}")
    return "".join(parts)


def _one_select(sql: str, what: str) -> str:
    """`sql` if DuckDB parses it as exactly one SELECT statement (a trailing `;` and comments are fine)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise MappingError(f"{what} does not parse: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "none"
        raise MappingError(f"{what} must be one SELECT statement over the table `input`; found {len(statements)} "
                           f"statement{'s' if len(statements) != 1 else ''}: {kinds}")
    return sql


def _condition(where, what: str) -> str:
    """`where` if DuckDB parses it as one expression (no second statement, no FROM of its own)."""
    try:
        duckdb.SQLExpression(str(where))
    except duckdb.Error as exc:
        raise MappingError(f"{what}: `where` must be one condition over the input's columns: "
                           f"{str(exc).splitlines()[0]}") from exc
    return str(where)


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
    try:
        _reader_options(read_options)
    except MappingError as exc:
        raise MappingError(f"mapping {path}: {exc}") from exc
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
            targets.append(Target(source_name, _one_select(str(spec["sql"]), f"target {source_name}: `sql`")))
            continue
        columns = spec["columns"] or {}
        if not isinstance(columns, dict) or not columns:
            raise MappingError(f"target {source_name}: `columns` maps contract columns to input columns")
        unknown = [c for c in columns if c not in source.columns]
        if unknown:
            raise MappingError(f"target {source_name}: columns {unknown} are not in the contract for {source_name}")
        unnamed = [dst for dst, src in columns.items() if not isinstance(src, str | int) or isinstance(src, bool) or str(src) == ""]
        if unnamed:
            raise MappingError(f"target {source_name}: columns {unnamed} must each name an input column")
        select = ", ".join(f"{_ident(src)} AS {_ident(dst)}" for dst, src in columns.items())
        where = f" WHERE (\n{_condition(spec['where'], f'target {source_name}')}\n)" if spec.get("where") else ""
        select_sql = _one_select(f"SELECT {select} FROM input{where}", f"target {source_name}")
        targets.append(Target(source_name, select_sql, tuple(str(src) for src in columns.values())))
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


def _prepare_input(input_file: Path, mapping: dict, workdir: Path) -> tuple[Path, str, list[tuple[int, str, str]]]:
    """Transcode or split the file where DuckDB cannot read it as it is; return (the file DuckDB reads, the SELECT
    that reads it, the lines rejected on the way (line number, text, reason))."""
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
    path = Path(os.path.abspath(path))
    return path, _one_select(f"SELECT * FROM {reader}({sql_str(path)}{_reader_options(read_options)})", "read_options"), rejected


def _load_input(con: duckdb.DuckDBPyConnection, fmt: str, reader_sql: str, rejected: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """Create the table `input` with `reader_sql`; return the rejected lines (line number, text, reason)."""
    con.execute(f"CREATE TEMP TABLE input AS {reader_sql}")
    if fmt == "csv":
        # one row per rejected line (a line may break several rules), in the file's line numbering
        rejected = [(int(line), text, reason) for line, text, reason in con.execute(
            "SELECT line, any_value(csv_line), string_agg(DISTINCT lower(error_type) || ': ' || error_message, '; ') "
            "FROM reject_errors GROUP BY line ORDER BY line").fetchall()]
    return rejected


def _sandboxed(allowed: list[Path]) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that can touch no file but `allowed` (and loads or installs no extension), locked so
    that no statement can lift it. The mapping's SQL runs only here."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET allowed_paths = [{', '.join(sql_str(os.path.abspath(p)) for p in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def _sql_error(source: str, exc: duckdb.Error, when: str = "") -> MappingError:
    first = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.PermissionException):
        return MappingError(f"target {source}: a mapping may read only its input, the table `input` ({first})")
    return MappingError(f"target {source}: the SQL fails{when}: {first}")


def _mkdir(path: Path, created: list[Path]) -> None:
    """mkdir -p that notes the directories it made, so a failed import can take them away again."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    path.mkdir(parents=True, exist_ok=True)
    created.extend(missing)


def _write_rejects(con: duckdb.DuckDBPyConnection, input_file: Path, rejected: list[tuple[int, str, str]], tmp: Path) -> dict[str, int]:
    con.execute(f"CREATE TEMP TABLE rejected_lines ({REJECTS_COLUMNS})")
    con.executemany("INSERT INTO rejected_lines VALUES (?, ?, ?, ?)", [(input_file.name, *r) for r in rejected])
    con.execute(f"COPY (SELECT * FROM rejected_lines ORDER BY line_no) TO {sql_str(os.path.abspath(tmp))} "
                "(FORMAT parquet, USE_TMP_FILE false)")
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
    finals = {t.source: paths.incoming / t.source / day.isoformat() / f"{t.source}_import_{input_file.stem}.parquet"
              for t in targets}
    tmps = {source: final.with_name(f".{final.name}.tmp") for source, final in finals.items()}
    rejects_final = rejects_path(paths, input_file, day)
    rejects_tmp = rejects_final.with_name(f".{rejects_final.name}.tmp")

    staged: list[tuple[Path, Path]] = []
    created: list[Path] = []
    summary: dict[str, dict] = {}
    con = None
    try:
        with tempfile.TemporaryDirectory(prefix="seg_import_") as workdir:
            path, reader_sql, rejected = _prepare_input(input_file, mapping, Path(workdir))
            # from here on DuckDB reads the input and writes the importer's own files, nothing else
            con = _sandboxed([path, *tmps.values(), rejects_tmp])
            try:
                rejected = _load_input(con, fmt, reader_sql, rejected)
            except duckdb.Error as exc:
                raise MappingError(f"cannot read {input_file} as {fmt}: {exc}") from exc
            input_columns = [row[0] for row in con.execute("DESCRIBE input").fetchall()]

            outputs = []  # every target checked before anything is written
            for target in targets:
                source = contract.sources[target.source]
                absent = [c for c in target.input_columns if c not in input_columns]
                if absent:
                    raise MappingError(f"target {target.source}: `columns` names {absent}: not a column of the input "
                                       f"(its columns: {', '.join(input_columns)})")
                view = _ident(f"target_{target.source}")
                try:
                    con.execute(f"CREATE TEMP VIEW {view} AS {target.select_sql}")
                    cols = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
                except duckdb.Error as exc:
                    raise _sql_error(target.source, exc) from exc
                unknown = [c for c in cols if c not in source.columns]
                if unknown:
                    raise MappingError(f"target {target.source}: output columns {unknown} are not in the contract")
                select_sql = f"SELECT * FROM {view}"
                filled = IMPORT_DATE_DEFAULTS.get(target.source)
                if filled and filled not in cols:
                    select_sql = f"SELECT *, TIMESTAMP {sql_str(f'{day.isoformat()} 00:00:00')} AS {_ident(filled)} FROM {view}"
                    cols.append(filled)
                missing = [c for c in source.required_columns if c not in cols]
                if missing:
                    raise MappingError(f"target {target.source}: required contract columns {missing} are not produced")
                outputs.append((target.source, select_sql, cols))

            for source_name, select_sql, cols in outputs:
                tmp, final = tmps[source_name], finals[source_name]
                _mkdir(tmp.parent, created)
                staged.append((tmp, final))
                try:
                    con.execute(f"COPY ({select_sql}) TO {sql_str(os.path.abspath(tmp))} (FORMAT parquet, USE_TMP_FILE false)")
                except duckdb.Error as exc:
                    raise _sql_error(source_name, exc, " on the data") from exc
                rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_str(os.path.abspath(tmp))})").fetchone()[0]
                summary[source_name] = {"rows": int(rows), "file": str(final), "columns": cols}

            rows_read = int(con.execute("SELECT count(*) FROM input").fetchone()[0])
            summary["_input"] = {"rows": rows_read, "rejected": len(rejected), "lines": rows_read + len(rejected),
                                 "file": str(input_file)}
            if rejected:
                _mkdir(rejects_tmp.parent, created)
                staged.append((rejects_tmp, rejects_final))
                reasons = _write_rejects(con, input_file, rejected, rejects_tmp)
                summary["_input"].update(rejects_file=str(rejects_final), reasons=reasons)
        for tmp, final in staged:  # all targets worked: publish them together
            os.replace(tmp, final)
        if not rejected:
            rejects_final.unlink(missing_ok=True)  # a re-import of a now clean file replaces the old rejects
        staged, created = [], []
    finally:
        if con is not None:
            con.close()
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        for directory in sorted(created, key=lambda d: len(d.parts), reverse=True):  # only the empty ones it made
            try:
                directory.rmdir()
            except OSError:
                pass
    return summary
