"""Landing: incoming files -> validated Parquet partitions in the lake, quarantine, manifest.

For each incoming file `incoming/<source>/<YYYY-MM-DD>/<name>.<ext>` (ext: parquet, csv, json, jsonl):

* Same name, same content hash as already landed -> nothing to do (reruns are no-ops).
* Same content as another file of that source already landed (a re-sent copy) -> the whole file is quarantined
  as a duplicate; nothing lands twice.
* Cannot be read at all (truncated, not the format its extension says, not UTF-8, a CSV line above the reader's
  limit) -> the file is kept as it is under `quarantine/<source>/ingest_date=D/_rejected/` and the manifest says
  what is wrong and what to do.
* Otherwise every row is cast to the contract types (TRY_CAST: a value that does not cast is a contract
  violation, never silently NULLed), checked against required / pattern / allowed / min / max / future /
  row rules, and written to `raw/<source>/ingest_date=D/<lake file>` (good rows) or
  `quarantine/<source>/ingest_date=D/<lake file>` (bad rows, original values as text + `_reasons`).
  A CSV line that does not split into the header's fields (too many or too few) is quarantined too, with its
  original text in `_line` and its reason. A changed file with the same name replaces its own partition file.

The lake file is named after the whole incoming name (`lake_file_name`): a Parquet file keeps its name, any other
adds `.parquet` (`export.csv` -> `export.csv.parquet`), so `export.csv` and `export.json` of one day keep their
own rows. (Before #14 it was `<stem>.parquet`: such files of an existing lake stay until their incoming file
changes; then they are replaced, found by their `_source_file`.) Paths are read as exactly that file: DuckDB
expands `*`, `?` and `[` in any path, so they are escaped.

A folder under `incoming/<source>/` whose name is not a date (`2026-02-30`, `latest`) gives its files no ingest
date: each run warns about it, and each file is recorded once as rejected under `_manifests/<source>/_undated/`
(outside the `ingest_date=` partitions, which every reader parses as dates); nothing else is held up.

The manifest entry (`_manifests/<source>/ingest_date=D/<name>.json`) is written last, so a crash leaves the
file to be landed again. It records `landed_on`, the as-of date of the run that landed the file: a file delivered
late into an older date folder is audited by the raw gate of that run. All work runs in an in-memory DuckDB: the
warehouse is never locked by landing. Always: rows_in = rows_landed + rows_quarantined.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from seg.core.config import Paths, Settings
from seg.core.contract import IDENTIFIER_MAX_LENGTH, SOURCES, Column, Contract, Source, for_settings, load_contract
from seg.core.warehouse import sql_str
from seg.lake import money

log = logging.getLogger(__name__)

READERS = {
    "parquet": "read_parquet({path}, file_row_number = true)",
    # rejected lines (ragged, not UTF-8) go to the connection's reject_errors table instead of failing the read
    "csv": "read_csv({path}, all_varchar = true, header = true, store_rejects = true)",
    "json": "read_json({path}, format = 'auto')",
    "jsonl": "read_json({path}, format = 'newline_delimited')",
}
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UNDATED = "_undated"  # under _manifests/<source>/: the records of files in folders whose name is not a date
# CSV lines DuckDB cannot split into the header's columns: quarantined one by one, with their text
LINE_REASONS = {
    "TOO MANY COLUMNS": "line: too many fields (the header has {n})",
    "MISSING COLUMNS": "line: too few fields (the header has {n})",
    "UNQUOTED VALUE": "line: a quote inside an unquoted field",
    "INVALID STATE": "line: cannot be split into fields",
}


@dataclass(frozen=True)
class IncomingFile:
    source: str
    day: str  # YYYY-MM-DD: the ingest date, from the directory name
    path: Path

    @property
    def stem(self) -> str:
        return self.path.name.rsplit(".", 1)[0]

    @property
    def fmt(self) -> str:
        return self.path.suffix.lstrip(".").lower()

    @property
    def dated(self) -> bool:
        """The folder name is a date (not `2026-02-30`, not `latest`): the file has an ingest date."""
        return is_date(self.day)

    @property
    def lake_file(self) -> str:
        return lake_file_name(self.path.name)


def is_date(name: str) -> bool:
    if not DATE_DIR.match(name):
        return False
    try:
        dt.date.fromisoformat(name)
    except ValueError:
        return False
    return True


def lake_file_name(name: str) -> str:
    """The name of an incoming file's rows in its raw and quarantine partitions, one per incoming name.

    A Parquet file keeps its name (`orders.parquet`); any other adds `.parquet` (`export.csv` -> `export.csv.parquet`),
    and so does a Parquet file whose stem ends in a format (`export.csv.parquet` -> `export.csv.parquet.parquet`),
    so that no two files of a folder ever share a lake file."""
    stem, _, ext = name.rpartition(".")
    if ext.lower() == "parquet" and Path(stem).suffix.lstrip(".").lower() not in READERS:
        return name
    return name + ".parquet"


def read_path(path: Path) -> str:
    """`path` as DuckDB's readers must get it to read exactly that file: they expand `*`, `?` and `[...]` in any
    path (`part*.csv` would read part1.csv too), so those are escaped as `[*]`, `[?]`, `[[]`."""
    return glob.escape(str(path))


@dataclass
class ManifestEntry:
    source: str
    ingest_date: str
    file: str
    sha256: str
    size_bytes: int
    status: str  # landed | rejected | duplicate
    rows_in: int | None
    rows_landed: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    message: str = ""
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    duplicate_of: str | None = None
    contract_version: int = 0
    contract_overlay: str | None = None  # the deployment overlay the file was checked under
    landed_at: str = ""  # when (UTC clock time)
    landed_on: str = ""  # the as-of date of the run that landed it (the raw gate of that date audits its rows)
    lake_file: str = ""  # the name of its rows' file in raw/ and quarantine/ (no field: <stem>.parquet, before #14)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover(paths: Paths, up_to: dt.date, sources: list[str] | None = None, formats: list[str] | None = None) -> list[IncomingFile]:
    """Incoming files dated on or before `up_to`, ordered by source, date, name (so originals precede copies), and
    the files of folders whose name is not a date (warned about on every run; `land_file` records them once)."""
    formats = formats or list(READERS)
    contract = load_contract()
    found = []
    for source in sources or list(contract.sources):
        base = paths.incoming / source
        if not base.is_dir():
            continue
        for day_dir in sorted(base.iterdir()):
            if not day_dir.is_dir() or day_dir.name.startswith("."):
                continue
            dated = is_date(day_dir.name)
            if dated and day_dir.name > up_to.isoformat():
                continue
            files = [p for p in sorted(day_dir.iterdir()) if p.is_file() and p.suffix.lstrip(".").lower() in formats]
            if not dated and files:
                log.warning("incoming/%s/%s/ is not a date folder (YYYY-MM-DD): its %d file(s) are not landed; move "
                            "them into a dated folder (recorded under %s)", source, day_dir.name, len(files),
                            paths.manifests / source / UNDATED / day_dir.name)
            found += [IncomingFile(source, day_dir.name, path) for path in files]
    unknown = [p.name for p in paths.incoming.iterdir() if p.is_dir() and p.name not in contract.sources] if paths.incoming.is_dir() else []
    if unknown and not sources:
        log.warning("incoming/ holds directories that are not contract sources (ignored): %s", ", ".join(unknown))
    return found


def manifest_path(paths: Paths, inc: IncomingFile) -> Path:
    if not inc.dated:
        return paths.manifests / inc.source / UNDATED / inc.day / f"{inc.path.name}.json"
    return paths.manifests / inc.source / f"ingest_date={inc.day}" / f"{inc.path.name}.json"


def read_manifests(paths: Paths, source: str) -> list[dict]:
    base = paths.manifests / source
    if not base.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(base.glob("ingest_date=*/*.json"))]


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _column_checks(col: Column, present: bool, cast_expr: str, raw_expr: str, typed_expr: str,
                   future_limit: str) -> list[str]:
    """SQL CASE expressions, each yielding a reason string or NULL, for one column (`typed_expr`: the value cast to
    its type, before trimming and defaults; `cast_expr`: the value as it lands)."""
    name = col.name
    checks = []
    if not present:
        if col.required:
            checks.append(f"'{name}: missing column'")
        return checks
    # a value that was given but does not cast to the contract type
    checks.append(f"CASE WHEN {raw_expr} IS NOT NULL AND {typed_expr} IS NULL THEN '{name}: not a {col.type}' END")
    if col.required:
        checks.append(f"CASE WHEN {raw_expr} IS NULL AND {cast_expr} IS NULL THEN '{name}: required' END")
    if col.identifier:
        # an identifier is trimmed text (cast_expr trims); blank is no identifier, and the rest is the meaning of
        # "an identifier" for every deployment: its format is the overlay's `pattern`
        if col.required:
            checks.append(f"CASE WHEN {raw_expr} IS NOT NULL AND {cast_expr} IS NULL THEN '{name}: blank' END")
        checks.append(f"CASE WHEN length({cast_expr}) > {IDENTIFIER_MAX_LENGTH} "
                      f"THEN '{name}: longer than {IDENTIFIER_MAX_LENGTH} characters' END")
        checks.append(f"CASE WHEN regexp_matches({cast_expr}, '[\\x00-\\x1f\\x7f]') "
                      f"THEN '{name}: control characters' END")
    if col.pattern:
        checks.append(f"CASE WHEN NOT regexp_full_match({cast_expr}, {sql_str(col.pattern)}) THEN '{name}: bad format' END")
    if col.allowed:
        values = ", ".join(sql_str(v) for v in col.allowed)
        checks.append(f"CASE WHEN {cast_expr} NOT IN ({values}) THEN '{name}: value not allowed' END")
    if col.min is not None:
        checks.append(f"CASE WHEN {cast_expr} < {_literal(col, col.min)} THEN '{name}: below minimum' END")
    if col.max is not None:
        checks.append(f"CASE WHEN {cast_expr} > {_literal(col, col.max)} THEN '{name}: above maximum' END")
    if col.type == "timestamp":
        checks.append(f"CASE WHEN {cast_expr} > {future_limit} THEN '{name}: in the future' END")
    return checks


def _literal(col: Column, value) -> str:
    if col.type in ("date", "timestamp"):
        return f"CAST({sql_str(value)} AS {col.duckdb_type})"
    return str(value)


def _raw_expr(col: Column, present: dict[str, str]) -> str:
    """The column as it arrived in the file (NULL when the file lacks it); zoned timestamps as naive UTC."""
    if col.name not in present:
        return "NULL"
    raw = f"src.{_ident(col.name)}"
    if col.type == "timestamp" and "WITH TIME ZONE" in present[col.name].upper():
        raw = f"timezone('UTC', {raw})"  # zoned timestamps are stored as naive UTC
    return raw


# A UTC offset written as +0100 / -05:30 after the time of day (exports write both); normalised to +01:00.
_OFFSET = r"([0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?)\s*([+-][0-9]{2}):?([0-9]{2})$"


def _text_timestamp(raw: str) -> str:
    """A timestamp given as text, as naive UTC: an offset in the text is applied (plain TIMESTAMP casting would drop
    it: '14:22+01:00' would land as 14:22), text without one is UTC (landing's connection runs in UTC)."""
    normalised = f"regexp_replace(trim({raw}), {sql_str(_OFFSET)}, '\\1\\4:\\5')"
    return f"timezone('UTC', TRY_CAST({normalised} AS TIMESTAMPTZ))"


def build_validation_sql(source: Source, present: dict[str, str], file_ref: str, future_limit: str,
                         defaults: dict[str, str] | None = None, extra_checks=None) -> str:
    """One SELECT over the file: the contract columns cast to their types, and the `_reasons` of each row.

    `present` maps contract column -> the DuckDB type it has in the file (absent columns are missing).
    `defaults` fills NULLs of columns the deployment decides (e.g. the reporting currency); `extra_checks(casts)`
    returns more reason CASEs over the cast expressions (e.g. the currency conversion check).
    """
    cast_cols, checks = [], []
    casts = {}
    defaults = defaults or {}
    for col in source.columns.values():
        raw = _raw_expr(col, present)
        cast = f"TRY_CAST({raw} AS {col.duckdb_type})" if col.name in present else f"CAST(NULL AS {col.duckdb_type})"
        if col.type == "timestamp" and col.name in present and present[col.name].upper() == "VARCHAR":
            cast = _text_timestamp(raw)
        typed = cast
        if col.identifier and col.name in present:
            cast = f"nullif(trim({cast}), '')"
        default = defaults.get(col.name, col.default)
        if default is not None:
            # the default fills a missing value; quarantine still shows the value as it arrived
            cast = f"coalesce({cast}, {_literal(col, default) if col.type != 'varchar' else sql_str(default)})"
        casts[col.name] = cast
        cast_cols.append(f"{cast} AS {_ident(col.name)}")
        checks.extend(_column_checks(col, col.name in present, cast, raw, typed, future_limit))
    for rule in source.rules:
        # rules are written over contract column names: evaluate them over the cast values
        names = re.compile(r"\b(" + "|".join(map(re.escape, casts)) + r")\b")
        rule_sql = names.sub(lambda m: f"({casts[m.group(1)]})", rule.sql)  # one pass: no re-substitution
        checks.append(f"CASE WHEN NOT coalesce(({rule_sql}), false) THEN 'rule {rule.name}' END")
    if extra_checks is not None:
        checks.extend(extra_checks(casts))
    reasons = "concat_ws('; ', " + ", ".join(checks) + ")" if checks else "''"
    return (
        "SELECT " + ", ".join(cast_cols)
        + f", src._row_number AS _row_number, {reasons} AS _reasons FROM {file_ref} AS src"
    )


def raw_copy_sql(source: Source, present: dict[str, str], file_ref: str) -> str:
    """Every contract column as text, as it arrived (what quarantine keeps), for rows joined on `_row_number`."""
    cols = [f"CAST({_raw_expr(col, present)} AS VARCHAR) AS {_ident(col.name)}" for col in source.columns.values()]
    return "SELECT " + ", ".join(cols) + f", src._row_number AS _row_number FROM {file_ref} AS src"


def _read_expression(inc: IncomingFile) -> str:
    return READERS[inc.fmt].format(path=sql_str(read_path(inc.path)))


class Unreadable(Exception):
    """The file cannot be read as a whole; the message says what is wrong and what to do."""


def _load(con: duckdb.DuckDBPyConnection, inc: IncomingFile) -> None:
    """Create `src` (the file's rows; `_row_number` = the row's place in the file, from 1) and `rejected_lines`
    (`_row_number`, `_line`, `_reasons`: the CSV records that do not split into the header's fields).

    A Parquet file is read where it lies (row numbers come from the file); text formats are read once into a table,
    so that row_number() numbers the rows the same way for the checks and the quarantine copy. A CSV is read with
    DuckDB's rejects table: a ragged line is set aside with its text instead of failing (or, by confusing the
    dialect sniffer, mangling) the whole file."""
    con.execute("CREATE TEMP TABLE rejected_lines (_row_number BIGINT, _line VARCHAR, _reasons VARCHAR)")
    if inc.fmt == "parquet":
        con.execute(f"CREATE TEMP VIEW src AS SELECT *, file_row_number + 1 AS _row_number FROM {_read_expression(inc)}")
        return
    if inc.fmt != "csv":
        con.execute(f"CREATE TEMP TABLE src AS SELECT *, row_number() OVER () AS _row_number FROM {_read_expression(inc)}")
        return
    con.execute(f"CREATE TEMP TABLE src_read AS SELECT *, row_number() OVER () AS _good_row FROM {_read_expression(inc)}")
    fields = len(con.execute("DESCRIBE src_read").fetchall()) - 1
    con.execute("CREATE TEMP TABLE csv_errors AS SELECT line, list(DISTINCT CAST(error_type AS VARCHAR) ORDER BY "
                "CAST(error_type AS VARCHAR)) AS types, any_value(csv_line) AS text, any_value(error_message) AS error "
                "FROM reject_errors GROUP BY line")
    for kind in ("INVALID ENCODING", "LINE SIZE OVER MAXIMUM"):  # the file's problem, not one line's
        first = con.execute("SELECT line, error FROM csv_errors WHERE list_contains(types, ?) ORDER BY line LIMIT 1",
                            [kind]).fetchall()
        if first and kind == "INVALID ENCODING":
            raise Unreadable(_not_utf8(inc, f"line {first[0][0]}"))
        if first:
            raise Unreadable(_csv_message(inc, f"CSV Error on Line: {first[0][0]}\n{first[0][1]}"))
    whens = " ".join(f"WHEN {sql_str(t)} THEN {sql_str(r.format(n=fields))}" for t, r in LINE_REASONS.items())
    reason = f"CASE t {whens} ELSE 'line: ' || lower(t) END"
    lines = con.execute(
        "INSERT INTO rejected_lines SELECT line - 1, text, "  # line 1 is the header
        f"array_to_string(list_transform(types, lambda t: {reason}), '; ') FROM csv_errors").fetchall()[0][0]
    if not lines:
        con.execute("CREATE TEMP VIEW src AS SELECT * EXCLUDE (_good_row), _good_row AS _row_number FROM src_read")
        return
    # the k-th good row is the k-th place in the file that is not a rejected line: k + (rejected lines before it);
    # the j-th rejected line (place r) has r - j good rows before it, so it precedes the good rows k > r - j
    con.execute("""
        CREATE TEMP TABLE src AS
        WITH placed AS (
            SELECT _row_number - row_number() OVER (ORDER BY _row_number) AS good_before,
                   row_number() OVER (ORDER BY _row_number) AS rejected_so_far
            FROM rejected_lines
        ), steps AS (SELECT good_before, max(rejected_so_far) AS skipped FROM placed GROUP BY good_before)
        SELECT src_read.* EXCLUDE (_good_row), src_read._good_row + coalesce(steps.skipped, 0) AS _row_number
        FROM src_read ASOF LEFT JOIN steps ON src_read._good_row > steps.good_before
        ORDER BY _row_number""")


def _not_utf8(inc: IncomingFile, where: str | None) -> str:
    return (f"cannot read {inc.fmt} file: it is not UTF-8 ({where or 'a value'} holds bytes that are not UTF-8: an "
            "export in Latin-1 or Windows-1252?), and landing reads UTF-8 only. Convert it with `seg import` and "
            "`encoding: latin-1` (or the export's own encoding, e.g. cp1252) in the mapping")


_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_LINE_SIZE = re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+) bytes")
_JSON_LINE = re.compile(r"\bin (?:line|record/value) (\d+)")


def _csv_message(inc: IncomingFile, error: str) -> str:
    size = _LINE_SIZE.search(error)
    if size is None:
        return f"cannot read {inc.fmt} file: {_reason(error)}"
    limit, actual = int(size.group(1)), int(size.group(2))
    line = _first_long_line(inc.path, limit)  # DuckDB's own line number for this error is not the file's
    where = f"line {line}" if line else "a line"
    return (f"cannot read {inc.fmt} file: {where} is {actual} bytes long, above the CSV reader's limit of {limit} "
            "bytes per line (a field of that size: a note, a blob?). Shorten or drop that field in the export, or "
            f"convert the file with `seg import` and `read_options: {{max_line_size: {actual + 1024}}}` in the mapping")


def _first_long_line(path: Path, limit: int) -> int | None:
    """The number of the first physical line of `path` longer than `limit` bytes (read a block at a time)."""
    line_no, length = 1, 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            start = 0
            while (end := block.find(b"\n", start)) >= 0:
                if length + end - start > limit:
                    return line_no
                line_no, length, start = line_no + 1, 0, end + 1
            length += len(block) - start
            if length > limit:
                return line_no
    return None


def _reason(error: str) -> str:
    """DuckDB's error as one line: its first line, and for CSV errors the line saying what is wrong."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    first = lines[0] if lines else error
    if _CSV_LINE.search(first):
        detail = next((line for line in lines[1:] if not line.startswith(("Original Line", "Possible Solution"))), "")
        first = f"{first}: {detail}" if detail else first
    return first[:500]


def _unreadable_message(inc: IncomingFile, exc: duckdb.Error) -> str:
    error = str(exc)
    lowered = error.lower()
    if "utf-8" in lowered and ("invalid" in lowered or "not utf-8" in lowered):
        found = _JSON_LINE.search(error) or _CSV_LINE.search(error)
        return _not_utf8(inc, f"line {found.group(1)}" if found else None)
    if inc.fmt == "csv":
        return _csv_message(inc, error)
    return f"cannot read {inc.fmt} file: {_reason(error)}"


def _copy(con: duckdb.DuckDBPyConnection, select_sql: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".tmp")
    con.execute(f"COPY ({select_sql}) TO {sql_str(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, target)


def _lineage(path: Path) -> str | None:
    """The `_source_file` of a lake file's rows (None when it cannot be read)."""
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(f"SELECT any_value(_source_file) FROM read_parquet({sql_str(read_path(path))})").fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return rows[0][0] if rows else None


def _old_lake_files(paths: Paths, inc: IncomingFile, file: str) -> list[Path]:
    """The files landing wrote for this incoming file before #14 (`<stem>.parquet`), recognised by their lineage:
    that name may hold the rows of another file of the same stem, landed after this one."""
    old = f"{inc.stem}.parquet"
    if old == inc.lake_file:
        return []
    candidates = (paths.raw_partition(inc.source, inc.day) / old, paths.quarantine_partition(inc.source, inc.day) / old)
    return [path for path in candidates if path.is_file() and _lineage(path) == file]


def _shared_an_old_lake_file(previous: dict, inc: IncomingFile) -> bool:
    """Landed before #14 (no `lake_file` in its manifest) next to a file of the same stem (`export.csv` and
    `export.json`): both wrote `<stem>.parquet` and one file's rows were lost, so both land again."""
    if "lake_file" in previous or previous.get("status") != "landed":
        return False
    return any(p != inc.path and p.is_file() and p.suffix.lstrip(".").lower() in READERS
               and p.name.rsplit(".", 1)[0] == inc.stem for p in inc.path.parent.iterdir())


def _record_undated(settings: Settings, inc: IncomingFile, contract: Contract, sha: str) -> ManifestEntry:
    """A file in a folder whose name is not a date: recorded as rejected, left where it is, never landed."""
    entry = ManifestEntry(
        source=inc.source, ingest_date="", file=str(inc.path.relative_to(settings.paths.incoming)), sha256=sha,
        size_bytes=inc.path.stat().st_size, status="rejected", rows_in=None, rows_landed=0, rows_quarantined=0,
        message=(f"folder {inc.day!r} is not a date (YYYY-MM-DD), so the file has no ingest date and was not landed: "
                 f"move the file into a dated folder, incoming/{inc.source}/<YYYY-MM-DD>/"),
        contract_version=contract.version, contract_overlay=contract.overlay,
        landed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _write_json_atomic(manifest_path(settings.paths, inc), asdict(entry))
    log.warning("rejected %s: %s", entry.file, entry.message)
    return entry


def land_file(settings: Settings, inc: IncomingFile, contract: Contract | None = None, known_hashes: dict[str, str] | None = None,
              reporting_currency: str | None = None, run_date: dt.date | None = None) -> ManifestEntry | None:
    """Land one incoming file; returns its manifest entry, or None when it was already landed unchanged.

    `reporting_currency`: the deployment's, when the caller resolved it already (land_source does, once per source,
    instead of reading the landed orders' currencies for every file); None resolves it here (seg/lake/money.py).
    `run_date`: the as-of date of the landing run, recorded as `landed_on` (the raw gate of that date audits the
    file's rows, also when the file was delivered late into an older folder); None: the file's own date."""
    contract = contract or for_settings(settings)
    paths = settings.paths
    source = contract.source(inc.source)
    mpath = manifest_path(paths, inc)
    sha = file_sha256(inc.path)
    previous = json.loads(mpath.read_text()) if mpath.exists() else None
    if previous and previous.get("sha256") == sha and not _shared_an_old_lake_file(previous, inc):
        return None  # rerun: unchanged file, nothing to do
    if not inc.dated:
        return _record_undated(settings, inc, contract, sha)

    entry = ManifestEntry(
        source=inc.source, ingest_date=inc.day, file=str(inc.path.relative_to(paths.incoming)), sha256=sha,
        size_bytes=inc.path.stat().st_size, status="landed", rows_in=None, rows_landed=0, rows_quarantined=0,
        contract_version=contract.version, contract_overlay=contract.overlay, landed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        landed_on=(run_date or dt.date.fromisoformat(inc.day)).isoformat(), lake_file=inc.lake_file,
    )
    raw_target = paths.raw_partition(inc.source, inc.day) / inc.lake_file
    q_target = paths.quarantine_partition(inc.source, inc.day) / inc.lake_file
    rejected_dir = paths.quarantine_partition(inc.source, inc.day) / "_rejected"
    old_files = _old_lake_files(paths, inc, entry.file)  # replaced by this landing, whatever its outcome

    def keep_whole_file(status: str, message: str) -> ManifestEntry:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inc.path, rejected_dir / inc.path.name)
        for stale in (raw_target, q_target, *old_files):  # a changed file that is now bad must not leave its old rows
            stale.unlink(missing_ok=True)
        entry.status, entry.message = status, message
        entry.rows_quarantined = entry.rows_in or 0
        _write_json_atomic(mpath, asdict(entry))
        log.warning("%s %s: %s", status, entry.file, message)
        return entry

    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET threads = {settings.warehouse.threads}")
        con.execute("SET TimeZone = 'UTC'")  # text timestamps without an offset are UTC, whatever the machine's zone
        try:
            _load(con, inc)
            described = con.execute("DESCRIBE SELECT * FROM src").fetchall()
            rows_in = con.execute("SELECT (SELECT count(*) FROM src) + (SELECT count(*) FROM rejected_lines)").fetchone()[0]
        except Unreadable as exc:
            return keep_whole_file("rejected", str(exc))
        except duckdb.Error as exc:
            return keep_whole_file("rejected", _unreadable_message(inc, exc))
        entry.rows_in = int(rows_in)

        duplicate_of = (known_hashes or {}).get(sha)
        if duplicate_of and duplicate_of != entry.file:
            entry.duplicate_of = duplicate_of
            entry.reasons = {"duplicate_file": entry.rows_in}
            return keep_whole_file("duplicate", f"same content as {duplicate_of}, already landed")

        file_cols = {name: typ for name, typ, *_ in described if name not in ("file_row_number", "_row_number")}
        present = {c: file_cols[c] for c in source.columns if c in file_cols}
        entry.missing_columns = [c for c in source.columns if c not in file_cols]
        entry.extra_columns = [c for c in file_cols if c not in source.columns]

        tolerance = settings.landing.future_tolerance_hours
        future_limit = f"(DATE {sql_str(inc.day)} + INTERVAL 1 DAY + INTERVAL {tolerance} HOUR)"
        # Only the cast values and the reasons are materialised; the raw text copies quarantine keeps are built
        # for the quarantined rows alone (casting every column of every row to text doubled the landing time).
        defaults, extra_checks = _money_rules(settings, con, source, present, reporting_currency)
        checked_sql = build_validation_sql(source, present, "src", future_limit, defaults, extra_checks)
        con.execute(f"CREATE TEMP TABLE checked AS {checked_sql}")

        _split_checked_rows(con, entry, source, present, raw_target, q_target)
    finally:
        con.close()

    if entry.rows_in != entry.rows_landed + entry.rows_quarantined:  # the invariant landing exists for
        raise AssertionError(f"{entry.file}: rows in {entry.rows_in} != landed {entry.rows_landed} + quarantined {entry.rows_quarantined}")
    for old in old_files:  # its rows are in the new lake file now
        old.unlink(missing_ok=True)
    if entry.missing_columns:
        entry.message = "missing columns: " + ", ".join(entry.missing_columns)
    _write_json_atomic(mpath, asdict(entry))
    log.info("landed %s: %s in, %s landed, %s quarantined %s", entry.file, entry.rows_in, entry.rows_landed,
             entry.rows_quarantined, entry.reasons or "")
    return entry


def _split_checked_rows(con: duckdb.DuckDBPyConnection, entry: ManifestEntry, source: Source, present: dict[str, str],
                        raw_target: Path, q_target: Path) -> None:
    """Write the rows of temp table `checked` without reasons to the raw partition and the others, as the file's
    text with their reasons, to the quarantine partition, together with the `rejected_lines` (their text in
    `_line`); record the counts and reasons in the manifest entry."""
    lineage = f"{sql_str(entry.file)} AS _source_file, _row_number"
    columns = ", ".join(_ident(c) for c in source.columns)
    landed, quarantined = con.execute(
        "SELECT count(*) FILTER (WHERE _reasons = ''), count(*) FILTER (WHERE _reasons <> '') "
        "+ (SELECT count(*) FROM rejected_lines) FROM checked"
    ).fetchone()
    if landed:
        _copy(con, f"SELECT {columns}, {lineage} FROM checked WHERE _reasons = '' ORDER BY _row_number", raw_target)
    else:
        raw_target.unlink(missing_ok=True)
    if quarantined:
        bad = (f"SELECT raw.*, checked._reasons, CAST(NULL AS VARCHAR) AS _line "
               f"FROM ({raw_copy_sql(source, present, 'src')}) AS raw "
               "INNER JOIN checked USING (_row_number) WHERE checked._reasons <> ''")
        unsplit = ", ".join(f"CAST(NULL AS VARCHAR) AS {_ident(c)}" for c in source.columns)
        lines = f"SELECT {unsplit}, _row_number, _reasons, _line FROM rejected_lines"
        _copy(con, f"SELECT {columns}, {lineage}, _reasons, _line FROM ({bad} UNION ALL BY NAME {lines}) "
                   "ORDER BY _row_number", q_target)
        entry.reasons = dict(con.execute(
            "SELECT reason, count(*) FROM (SELECT unnest(string_split(_reasons, '; ')) AS reason FROM "
            "(SELECT _reasons FROM checked WHERE _reasons <> '' UNION ALL SELECT _reasons FROM rejected_lines)) "
            "GROUP BY reason ORDER BY count(*) DESC, reason"
        ).fetchall())
    else:
        q_target.unlink(missing_ok=True)
    entry.rows_landed, entry.rows_quarantined = int(landed), int(quarantined)


def _money_rules(settings: Settings, con: duckdb.DuckDBPyConnection, source: Source, present: dict[str, str],
                 reporting: str | None):
    """For orders: NULL currency means the reporting currency, and another currency needs a rate (seg/lake/money.py)."""
    if source.name != "orders":
        return {}, None
    configured = settings.reporting_currency is not None
    reporting = reporting or money.reporting_currency(settings)
    if reporting is None and "currency" in present:
        reporting = money.file_currency(con, "src")
    if reporting is None:
        return {}, None  # no currency anywhere yet: nothing to convert, nothing to fill
    money.load_rates(con, settings, reporting)
    max_age = settings.fx.max_rate_age_days

    def extra(casts: dict[str, str]) -> list[str]:
        return [money.conversion_check(casts["currency"], casts["ordered_at"], reporting, max_age, configured)]

    return {"currency": reporting}, extra


def land_source(settings: Settings, source: str, up_to: dt.date) -> dict:
    """Land every not-yet-landed (or changed) incoming file of one source dated on or before `up_to`."""
    contract = for_settings(settings)
    contract.source(source)  # fail early on an unknown source name
    known = {m["sha256"]: m["file"] for m in read_manifests(settings.paths, source) if m["status"] == "landed"}
    currency = money.reporting_currency(settings) if source == "orders" else None
    summary = {"source": source, "files_seen": 0, "files_landed": 0, "files_skipped": 0, "files_rejected": 0,
               "files_duplicate": 0, "rows_in": 0, "rows_landed": 0, "rows_quarantined": 0, "entries": []}
    for inc in discover(settings.paths, up_to, [source], settings.landing.formats):
        summary["files_seen"] += 1
        entry = land_file(settings, inc, contract, known, currency, run_date=up_to)
        if entry is None:
            summary["files_skipped"] += 1
            continue
        if source == "orders" and currency is None and entry.rows_landed:
            currency = money.lake_currency(settings)  # the first delivery has fixed the deployment's currency
        summary[f"files_{entry.status}"] += 1
        summary["rows_in"] += entry.rows_in or 0
        summary["rows_landed"] += entry.rows_landed
        summary["rows_quarantined"] += entry.rows_quarantined
        summary["entries"].append({k: getattr(entry, k) for k in ("file", "status", "rows_in", "rows_landed", "rows_quarantined", "message")})
        if entry.status == "landed":
            known.setdefault(entry.sha256, entry.file)
    return summary


def land_all(settings: Settings, up_to: dt.date) -> list[dict]:
    return [land_source(settings, source, up_to) for source in SOURCES]  # fx_rates before orders
