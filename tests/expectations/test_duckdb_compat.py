"""Each workaround in expectations/duckdb_compat.py: the failure on GX's plain path, and the fix.

Every test validates through GX's SQL datasource on a real DuckDB file, so a GX / duckdb-engine / DuckDB
upgrade that changes the behaviour shows up here first (the "plain path fails" assertions then tell us a
workaround may be dropped).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import great_expectations as gx
import great_expectations.expectations as gxe
import pytest

from expectations import duckdb_compat as compat

from ._lakes import DAY, PREVIOUS_DAY, write_partition


@pytest.fixture
def warehouse_file(settings):
    """marts.t in the warehouse and lake.orders over two ingest dates (O1 lands on both days)."""
    write_partition(settings, "orders", PREVIOUS_DAY, [
        {"order_id": "O0000000001", "ordered_at": dt.datetime(2025, 3, 9, 9), "amount": 1.0}])
    write_partition(settings, "orders", DAY, [
        {"order_id": "O0000000001", "ordered_at": dt.datetime(2025, 3, 10, 9), "amount": 1.0},
        {"order_id": "O0000000002", "ordered_at": dt.datetime(2025, 3, 10, 9), "amount": 2.0}])
    con = duckdb.connect(str(settings.paths.warehouse))
    try:
        con.execute("create schema marts")
        con.execute("""create table marts.t as select * from (values
            (1, 'C00000001', 2.5), (2, 'C0000002', 3.5), (3, NULL, NULL)) v(id, customer_id, score)""")
        con.execute("create schema lake")
        con.execute(f"""create view lake.orders as select * from read_parquet(
            '{settings.paths.raw}/orders/*/*.parquet', hive_partitioning = true, union_by_name = true)""")
    finally:
        con.close()
    return settings


def validate(settings, query_or_table, expectations, *, kwargs=None, table=False):
    """Run expectations on a query asset (or a table asset in schema marts) through an ephemeral context."""
    context = gx.get_context(mode="ephemeral")
    datasource = context.data_sources.add_sql(
        name="wh", connection_string=compat.connection_string(settings),
        kwargs=compat.datasource_kwargs(settings) if kwargs is None else kwargs)
    if table:
        asset = datasource.add_table_asset(name="a", table_name=query_or_table, schema_name="marts")
    else:
        asset = datasource.add_query_asset(name="a", query=query_or_table)
    suite = context.suites.add(gx.ExpectationSuite(name="s", expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="v", data=asset.add_batch_definition_whole_table("b"), suite=suite))
    try:
        return definition.run(result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}).results
    finally:
        compat.release(context)


def error_of(result) -> str:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return info["exception_message"]
    return " ".join(str(v.get("exception_message")) for v in info.values() if isinstance(v, dict))


def test_w1_results_are_empty_without_the_patch_and_complete_with_it(warehouse_file):
    compat.uninstall()
    try:
        plain = validate(warehouse_file, "select * from marts.t", [gxe.ExpectTableRowCountToBeBetween(min_value=1)])
    finally:
        compat.install()
    assert not plain[0].success
    assert "list index out of range" in error_of(plain[0])

    patched = validate(warehouse_file, "select * from marts.t", [gxe.ExpectTableRowCountToBeBetween(min_value=1)])
    assert patched[0].success
    assert patched[0].result["observed_value"] == 3


def test_w2_native_regex_is_unsupported_and_the_sql_version_finds_the_bad_value(warehouse_file):
    compat.install()
    native, sql = validate(warehouse_file, "select * from marts.t", [
        gxe.ExpectColumnValuesToMatchRegex(column="customer_id", regex="^C[0-9]{8}$"),
        compat.match_regex("customer_id", "^C[0-9]{8}$", index_columns=("id",)),
    ])
    assert not native.success
    assert "Regex is not supported for dialect duckdb" in error_of(native)
    assert not sql.success and not error_of(sql)
    assert sql.result["observed_value"] == 1  # 'C0000002' has 7 digits; NULL is not a pattern violation


def test_w3_braces_in_sql_break_the_batch_substitution_unless_escaped(warehouse_file):
    compat.install()
    raw_braces = gxe.UnexpectedRowsExpectation(
        unexpected_rows_query="select * from {batch} where not regexp_full_match(customer_id, '^C[0-9]{8}$')")
    escaped = gxe.UnexpectedRowsExpectation(
        unexpected_rows_query="select * from {batch} where not regexp_full_match(customer_id, "
        + compat.sql_literal("^C[0-9]{8}$") + ")")
    broken, fixed = validate(warehouse_file, "select * from marts.t", [raw_braces, escaped])
    assert not broken.success and "placeholder" in error_of(broken)
    assert fixed.result["observed_value"] == 1
    assert compat.sql_literal("it's {x}") == "'it''s {{x}}'"


def test_w4_column_types_cannot_be_reflected_and_typeof_checks_them(warehouse_file):
    compat.install()
    native, right, wrong = validate(warehouse_file, "select * from marts.t", [
        gxe.ExpectColumnValuesToBeOfType(column="id", type_="INTEGER"),
        compat.column_type_in("score", ("DECIMAL(2,1)", "DOUBLE")),
        compat.column_type_in("id", ("VARCHAR",)),
    ])
    assert not native.success and "type" in error_of(native)
    assert right.success
    assert not wrong.success and wrong.result["observed_value"] == 1


def test_w5_table_assets_outside_main_lose_their_schema_and_query_assets_work(warehouse_file):
    compat.install()
    table = validate(warehouse_file, "t", [gxe.ExpectColumnValuesToNotBeNull(column="id")], table=True)
    assert not table[0].success
    assert "does not exist" in error_of(table[0])
    query = validate(warehouse_file, compat.relation_query("marts.t"), [gxe.ExpectColumnValuesToNotBeNull(column="id")])
    assert query[0].success


def test_w6_engines_are_read_only_with_the_warehouse_limits_and_released(warehouse_file):
    compat.install()
    context = gx.get_context(mode="ephemeral")
    datasource = context.data_sources.add_sql(
        name="wh", connection_string=compat.connection_string(warehouse_file),
        kwargs=compat.datasource_kwargs(warehouse_file))
    with datasource.get_engine().connect() as connection:
        settings_seen = connection.exec_driver_sql(
            "select current_setting('threads'), current_setting('disabled_optimizers')").fetchall()[0]
        with pytest.raises(Exception, match="read-only"):
            connection.exec_driver_sql("create table marts.x (i integer)")
    assert settings_seen == (warehouse_file.warehouse.threads, compat.DISABLED_OPTIMIZERS)
    # while GX holds its read-only connection, the warehouse cannot be opened for writing
    with pytest.raises(duckdb.Error):
        duckdb.connect(str(warehouse_file.paths.warehouse)).close()
    compat.release(context)
    duckdb.connect(str(warehouse_file.paths.warehouse)).close()


def test_w7_substitute_batch_runs_the_same_sql_as_gx(warehouse_file):
    compat.install()
    batch = "select * from marts.t where id < 3"
    plain = "select id from {batch} where score > 3"
    joined = "select b.id from {batch} as b join marts.t as t on b.id = t.id where t.score > 3"
    results = validate(warehouse_file, batch, [
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=plain),
        gxe.UnexpectedRowsExpectation(unexpected_rows_query=joined),
    ])
    con = duckdb.connect(str(warehouse_file.paths.warehouse), read_only=True)
    try:
        for query, result in zip((plain, joined), results, strict=True):
            assert not error_of(result)
            rows = con.execute(compat.substitute_batch(query, batch)).fetchall()
            assert rows == [(2,)]
            assert result.result["observed_value"] == len(rows)
    finally:
        con.close()


def test_w8_duckdb_counts_pruned_partitions_in_windows_unless_the_optimizer_is_disabled(warehouse_file):
    compat.install()
    day_batch = f"select * from lake.orders where ingest_date = DATE '{DAY.isoformat()}'"
    unique = gxe.ExpectColumnValuesToBeUnique(column="order_id")
    plain_kwargs = {"connect_args": {"read_only": True}}
    plain = validate(warehouse_file, day_batch, [unique], kwargs=plain_kwargs)
    assert not plain[0].success, "DuckDB fixed window_self_join? then W8 can go"
    assert plain[0].result["partial_unexpected_list"] == ["O0000000001"]  # only once on DAY

    fixed = validate(warehouse_file, day_batch, [gxe.ExpectColumnValuesToBeUnique(column="order_id")])
    assert fixed[0].success
