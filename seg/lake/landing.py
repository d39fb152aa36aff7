"""Landing: incoming files -> validated Parquet partitions in the lake, quarantine, manifest.

For each incoming file `incoming/<source>/<YYYY-MM-DD>/<name>.<ext>` (ext: parquet, csv, json, jsonl):

* Same name, same content hash as already landed -> nothing to do (reruns are no-ops).
* Same content as another file of that source already landed (a re-sent copy) -> the whole file is quarantined
  as a duplicate; nothing lands twice.
* Cannot be read at all (truncated, not the format its extension says) -> the file is kept as it is under
  `quarantine/<source>/ingest_date=D/_rejected/` and the manifest says why.
* Otherwise every row is cast to the contract types (TRY_CAST: a value that does not cast is a contract
  violation, never silently NULLed), checked against required / pattern / allowed / min / max / future /
  row rules, and written to `raw/<source>/ingest_date=D/<name>.parquet` (good rows) or
  `quarantine/<source>/ingest_date=D/<name>.parquet` (bad rows, original values as text + `_reasons`).
  A changed file with the same name replaces its own partition file.

The manifest entry (`_manifests/<source>/ingest_date=D/<name>.json`) is written last, so a crash leaves the
file to be landed again. All work runs in an in-memory DuckDB: the warehouse is never locked by landing.
Always: rows_in = rows_landed + rows_quarantined.
"""

from __future__ import annotations

import datetime as dt
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
    "csv": "read_csv({path}, all_varchar = true, header = true)",
    "json": "read_json({path}, format = 'auto')",
    "jsonl": "read_json({path}, format = 'newline_delimited')",
}
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    landed_at: str = ""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discover(paths: Paths, up_to: dt.date, sources: list[str] | None = None, formats: list[str] | None = None) -> list[IncomingFile]:
    """Incoming files dated on or before `up_to`, ordered by source, date, name (so originals precede copies)."""
    formats = formats or list(READERS)
    contract = load_contract()
    found = []
    for source in sources or list(contract.sources):
        base = paths.incoming / source
        if not base.is_dir():
            continue
        for day_dir in sorted(base.iterdir()):
            if not (day_dir.is_dir() and DATE_DIR.match(day_dir.name)) or day_dir.name > up_to.isoformat():
                continue
            for path in sorted(day_dir.iterdir()):
                if path.is_file() and path.suffix.lstrip(".").lower() in formats:
                    found.append(IncomingFile(source, day_dir.name, path))
    unknown = [p.name for p in paths.incoming.iterdir() if p.is_dir() and p.name not in contract.sources] if paths.incoming.is_dir() else []
    if unknown and not sources:
        log.warning("incoming/ holds directories that are not contract sources (ignored): %s", ", ".join(unknown))
    return found


def manifest_path(paths: Paths, inc: IncomingFile) -> Path:
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
    return READERS[inc.fmt].format(path=sql_str(str(inc.path)))


def _copy(con: duckdb.DuckDBPyConnection, select_sql: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".tmp")
    con.execute(f"COPY ({select_sql}) TO {sql_str(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
    os.replace(tmp, target)


def land_file(settings: Settings, inc: IncomingFile, contract: Contract | None = None, known_hashes: dict[str, str] | None = None,
              reporting_currency: str | None = None) -> ManifestEntry | None:
    """Land one incoming file; returns its manifest entry, or None when it was already landed unchanged.

    `reporting_currency`: the deployment's, when the caller resolved it already (land_source does, once per source,
    instead of reading the landed orders' currencies for every file); None resolves it here (seg/lake/money.py)."""
    contract = contract or for_settings(settings)
    paths = settings.paths
    source = contract.source(inc.source)
    mpath = manifest_path(paths, inc)
    sha = file_sha256(inc.path)
    if mpath.exists() and json.loads(mpath.read_text()).get("sha256") == sha:
        return None  # rerun: unchanged file, nothing to do

    entry = ManifestEntry(
        source=inc.source, ingest_date=inc.day, file=str(inc.path.relative_to(paths.incoming)), sha256=sha,
        size_bytes=inc.path.stat().st_size, status="landed", rows_in=None, rows_landed=0, rows_quarantined=0,
        contract_version=contract.version, contract_overlay=contract.overlay, landed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    raw_target = paths.raw_partition(inc.source, inc.day) / f"{inc.stem}.parquet"
    q_target = paths.quarantine_partition(inc.source, inc.day) / f"{inc.stem}.parquet"
    rejected_dir = paths.quarantine_partition(inc.source, inc.day) / "_rejected"

    def keep_whole_file(status: str, message: str) -> ManifestEntry:
        rejected_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(inc.path, rejected_dir / inc.path.name)
        for stale in (raw_target, q_target):  # a changed file that is now bad must not leave its old rows
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
            described = con.execute(f"DESCRIBE SELECT * FROM {_read_expression(inc)}").fetchall()
            rows_in = con.execute(f"SELECT count(*) FROM {_read_expression(inc)}").fetchone()[0]
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            return keep_whole_file("rejected", f"cannot read {inc.fmt} file: {first_line}")
        entry.rows_in = int(rows_in)

        duplicate_of = (known_hashes or {}).get(sha)
        if duplicate_of and duplicate_of != entry.file:
            entry.duplicate_of = duplicate_of
            entry.reasons = {"duplicate_file": entry.rows_in}
            return keep_whole_file("duplicate", f"same content as {duplicate_of}, already landed")

        file_cols = {name: typ for name, typ, *_ in described if name != "file_row_number"}
        present = {c: file_cols[c] for c in source.columns if c in file_cols}
        entry.missing_columns = [c for c in source.columns if c not in file_cols]
        entry.extra_columns = [c for c in file_cols if c not in source.columns]
        row_number = "file_row_number + 1" if inc.fmt == "parquet" else "row_number() OVER ()"
        # A Parquet file is read where it lies (row numbers come from the file); text formats are read once into a
        # table, so that row_number() numbers the rows the same way for the checks and the quarantine copy.
        kind = "VIEW" if inc.fmt == "parquet" else "TABLE"
        con.execute(f"CREATE TEMP {kind} src AS SELECT *, {row_number} AS _row_number FROM {_read_expression(inc)}")

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
    if entry.missing_columns:
        entry.message = "missing columns: " + ", ".join(entry.missing_columns)
    _write_json_atomic(mpath, asdict(entry))
    log.info("landed %s: %s in, %s landed, %s quarantined %s", entry.file, entry.rows_in, entry.rows_landed,
             entry.rows_quarantined, entry.reasons or "")
    return entry


def _split_checked_rows(con: duckdb.DuckDBPyConnection, entry: ManifestEntry, source: Source, present: dict[str, str],
                        raw_target: Path, q_target: Path) -> None:
    """Write the rows of temp table `checked` without reasons to the raw partition and the others, as the file's
    text with their reasons, to the quarantine partition; record the counts and reasons in the manifest entry."""
    lineage = f"{sql_str(entry.file)} AS _source_file, _row_number"
    columns = ", ".join(_ident(c) for c in source.columns)
    landed, quarantined = con.execute(
        "SELECT count(*) FILTER (WHERE _reasons = ''), count(*) FILTER (WHERE _reasons <> '') FROM checked"
    ).fetchone()
    if landed:
        _copy(con, f"SELECT {columns}, {lineage} FROM checked WHERE _reasons = '' ORDER BY _row_number", raw_target)
    else:
        raw_target.unlink(missing_ok=True)
    if quarantined:
        bad = (f"SELECT raw.*, checked._reasons FROM ({raw_copy_sql(source, present, 'src')}) AS raw "
               "INNER JOIN checked USING (_row_number) WHERE checked._reasons <> ''")
        _copy(con, f"SELECT {columns}, {lineage}, _reasons FROM ({bad}) ORDER BY _row_number", q_target)
        entry.reasons = dict(con.execute(
            "SELECT reason, count(*) FROM (SELECT unnest(string_split(_reasons, '; ')) AS reason FROM checked "
            "WHERE _reasons <> '') GROUP BY reason ORDER BY count(*) DESC, reason"
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
        entry = land_file(settings, inc, contract, known, currency)
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
