"""Great Expectations 1.24 on DuckDB: every workaround in one place.

GX has no DuckDB support of its own. It reaches DuckDB through SQLAlchemy and duckdb-engine, whose dialect
("duckdb", a subclass of SQLAlchemy's PostgreSQL dialect) GX does not know, so GX treats it as a generic
"other" dialect. Each workaround below was found by running GX 1.24.1 / duckdb 2.0.1 / duckdb-engine 0.17.0 /
SQLAlchemy 2.1 against a DuckDB file; tests/expectations/test_duckdb_compat.py shows each failure with the plain
GX path (where it can still be reproduced) and that the workaround fixes it.

W1  Empty query results (every metric fails with "list index out of range").
    GX's ``SqlAlchemyExecutionEngine.execute_query`` executes inside ``with engine.connect()`` and returns the
    cursor result, which GX fetches after the connection went back to the pool. Closing the connection rolls the
    transaction back, and duckdb-engine's cursor *is* the DuckDB connection, so the ROLLBACK replaces the pending
    result: ``fetchall()`` returns ``[]``. (psycopg2 buffers rows client-side, which is why Postgres works.)
    Fix: ``install()`` wraps ``execute_query`` for the duckdb dialect so the rows are buffered
    (``Result.freeze()``) before the connection closes. Other dialects keep GX's code path.

W2  Regular expressions: ``ExpectColumnValuesToMatchRegex`` (and the LIKE-pattern expectations) fail with
    "Regex is not supported for dialect duckdb": GX only builds regex SQL for dialect modules it knows.
    Fix: ``match_regex()`` expresses the check as an ``UnexpectedRowsExpectation`` over DuckDB's
    ``regexp_full_match`` (the contract says the whole value must match).

W3  Braces in SQL expectations: ``UnexpectedRowsExpectation`` substitutes ``{batch}`` with ``str.format``, so a
    regex quantifier such as ``[0-9]{8}`` in the query is read as a placeholder and the expectation errors.
    Fix: ``sql_literal()`` doubles braces in every literal it renders into a query.

W4  Column types: for query assets GX cannot reflect column types (see W5), its fallback returns names only and
    ``ExpectColumnValuesToBeOfType`` / ``...InTypeList`` fail with KeyError 'type'.
    Fix: ``column_type_in()`` checks ``typeof(column)`` on one row of the batch (a column has one type).

W5  Table assets outside the ``main`` schema: SQLAlchemy 2.1's PostgreSQL reflection (inherited by duckdb-engine)
    queries ``pg_catalog.pg_collation`` / ``REGCLASS``, which DuckDB does not emulate. GX then falls back to
    ``SELECT * FROM <table> LIMIT 1`` *without the schema*, so every column metric on ``marts.customers`` errors
    with "Table with name customers does not exist".
    Fix: validate query assets only (``relation_query()`` -> ``select * from marts.customers``); their columns
    come from the query itself.

W6  Engines GX creates ignore the warehouse settings (memory limit, threads, spill directory), and GX keeps them
    (one on the datasource, one on its execution engine) after the run. DuckDB allows one read-write process per
    file and, within one process, refuses a second connection with a different configuration, so an engine left
    open blocks the gate's own write of ``monitoring.gate_results`` and every later writer.
    Fix: ``datasource_kwargs()`` opens GX's connections read-only with the configured limits, and ``release()``
    disposes every engine of the context when the validation is done.

W7  Samples of failing rows: ``UnexpectedRowsExpectation`` returns its rows only with result_format COMPLETE,
    but COMPLETE makes every column-map expectation return *all* unexpected values (unbounded on a bad day).
    Fix: gates run with SUMMARY and fetch a few sample rows of a failed SQL expectation themselves;
    ``substitute_batch()`` renders ``{batch}`` exactly as GX does (aliased ``subselect`` unless the query joins).

W8  Wrong results from DuckDB itself (duckdb 2.0.1): an aggregate window with PARTITION BY (``count(*) over
    (partition by k)``) over a hive-partitioned Parquet scan filtered on the partition column counts rows of the
    pruned partitions too (optimizer ``window_self_join`` drops the file filter on one side of its self-join).
    GX's ``ExpectColumnValuesToBeUnique`` is built exactly like that, so on ``lake.orders where ingest_date = D``
    it reported an order id as duplicated because the same id landed on another day.
    Fix: every connection the gates open runs with ``disabled_optimizers = 'window_self_join'``
    (``datasource_kwargs()`` for GX, ``configure()`` for the runner's own connections). Anything else that runs
    such a window over the lake (dbt, ad-hoc queries) needs the same setting until DuckDB is fixed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import great_expectations.expectations as gxe
from great_expectations.datasource.fluent import SQLDatasource
from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine

from seg.core.config import Settings

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext

DIALECT = "duckdb"
# W8: optimizers that return wrong results on this DuckDB version
DISABLED_OPTIMIZERS = "window_self_join"

# contract type -> DuckDB types accepted for it (typeof() names); JSON may arrive as plain text
ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {
    "varchar": ("VARCHAR",),
    "integer": ("INTEGER", "SMALLINT", "TINYINT"),
    "bigint": ("BIGINT", "INTEGER", "SMALLINT", "TINYINT"),
    "double": ("DOUBLE", "FLOAT"),
    "boolean": ("BOOLEAN",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"),
    "json": ("JSON", "VARCHAR"),
}


# --- W1 -------------------------------------------------------------------------------------------------------

_ORIGINAL_EXECUTE_QUERY = SqlAlchemyExecutionEngine.execute_query


@functools.wraps(_ORIGINAL_EXECUTE_QUERY)
def _execute_query_buffered(self: SqlAlchemyExecutionEngine, query: Any) -> Any:
    if self.dialect_name != DIALECT:
        return _ORIGINAL_EXECUTE_QUERY(self, query)
    with self.get_connection() as connection:
        result = connection.execute(query)
        if not result.returns_rows:
            return result
        return result.freeze()()  # rows buffered while the connection is still open


_execute_query_buffered.__seg_duckdb_compat__ = True  # type: ignore[attr-defined]


def install() -> None:
    """Apply the process-wide patch (W1). Idempotent; a no-op for every dialect but duckdb."""
    if not getattr(SqlAlchemyExecutionEngine.execute_query, "__seg_duckdb_compat__", False):
        SqlAlchemyExecutionEngine.execute_query = _execute_query_buffered  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo install() (tests use it to show W1)."""
    SqlAlchemyExecutionEngine.execute_query = _ORIGINAL_EXECUTE_QUERY  # type: ignore[method-assign]


# --- W6 -------------------------------------------------------------------------------------------------------

def connection_string(settings: Settings) -> str:
    return f"duckdb:///{settings.paths.warehouse}"


def datasource_kwargs(settings: Settings) -> dict[str, Any]:
    """create_engine() kwargs for GX's datasource: read-only, with the warehouse limits (YAML-serialisable)."""
    wh = settings.warehouse
    spill = settings.paths.root / "tmp" / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    return {
        "connect_args": {
            "read_only": True,
            "config": {
                "memory_limit": wh.memory_limit,
                "threads": wh.threads,
                "temp_directory": str(spill),
                "disabled_optimizers": DISABLED_OPTIMIZERS,
            },
        }
    }


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Settings the gates need on a warehouse connection of their own (W8)."""
    con.execute(f"SET disabled_optimizers = '{DISABLED_OPTIMIZERS}'")
    return con


def release(context: AbstractDataContext) -> None:
    """Dispose every SQLAlchemy engine GX opened for the context's SQL datasources (W6)."""
    for datasource in context.data_sources.all().values():
        if isinstance(datasource, SQLDatasource):
            datasource.get_execution_engine().close()  # disposes the execution engine's own SQLAlchemy engine
            datasource.get_engine().dispose()


# --- W3: literals and identifiers rendered into UnexpectedRowsExpectation queries --------------------------

def sql_literal(value: Any) -> str:
    """A DuckDB literal safe inside an UnexpectedRowsExpectation query (quotes and braces escaped)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("'", "''")
    return "'" + text.replace("{", "{{").replace("}", "}}") + "'"


def sql_identifier(name: str) -> str:
    """A double-quoted identifier, braces escaped for str.format."""
    quoted = '"' + name.replace('"', '""') + '"'
    return quoted.replace("{", "{{").replace("}", "}}")


def _select_list(column: str, index_columns: Iterable[str]) -> str:
    cols = [sql_identifier(c) for c in index_columns if c != column] + [sql_identifier(column)]
    return ", ".join(cols)


# --- W2 -------------------------------------------------------------------------------------------------------

def match_regex(
    column: str, regex: str, index_columns: Iterable[str] = (), **kwargs: Any
) -> gxe.UnexpectedRowsExpectation:
    """Rows whose non-NULL `column` does not fully match `regex`, as an UnexpectedRowsExpectation."""
    col = sql_identifier(column)
    query = (
        f"select {_select_list(column, index_columns)} from {{batch}} "
        f"where {col} is not null and not regexp_full_match(cast({col} as varchar), {sql_literal(regex)})"
    )
    kwargs.setdefault("description", f"`{column}` matches the pattern {regex}")
    return gxe.UnexpectedRowsExpectation(unexpected_rows_query=query, **kwargs)


# --- W4 -------------------------------------------------------------------------------------------------------

def column_type_in(column: str, types: Iterable[str], **kwargs: Any) -> gxe.UnexpectedRowsExpectation:
    """The column's DuckDB type (typeof on one row of the batch) is one of `types`."""
    accepted = tuple(types)
    col = sql_identifier(column)
    query = (
        f"select typeof({col}) as observed_type from (select {col} from {{batch}} limit 1) "
        f"where typeof({col}) not in ({', '.join(sql_literal(t) for t in accepted)})"
    )
    kwargs.setdefault("description", f"`{column}` is of type {' or '.join(accepted)}")
    return gxe.UnexpectedRowsExpectation(unexpected_rows_query=query, **kwargs)


# --- W5 -------------------------------------------------------------------------------------------------------

def relation_query(relation: str, where: str | None = None) -> str:
    """The query of a query asset over a schema-qualified relation (instead of a table asset)."""
    query = f"select * from {relation}"
    return f"{query} where {where}" if where else query


# --- W7 -------------------------------------------------------------------------------------------------------

_JOIN = re.compile(r"\bjoin\b", re.IGNORECASE)


def _has_join(query: str) -> bool:
    try:  # GX's own rule (ignores "join" inside quotes and comments)
        from great_expectations.expectations.metrics.query_metric_provider import _query_has_join_clause
    except ImportError:  # pragma: no cover - renamed in a later GX
        return bool(_JOIN.search(query))
    return _query_has_join_clause(query)


def substitute_batch(unexpected_rows_query: str, batch_query: str) -> str:
    """The SQL GX runs for an UnexpectedRowsExpectation on a query asset whose query is `batch_query`."""
    if _has_join(unexpected_rows_query):
        batch = f"({batch_query})"
    else:
        batch = f"({batch_query}) AS subselect"
    return unexpected_rows_query.format(batch=batch)
