import duckdb

from seg.core.warehouse import DISABLED_OPTIMIZERS, connect


def window_counts(con, tmp_path):
    con.execute(f"copy (select * from (values ('a', DATE '2025-01-01'), ('a', DATE '2025-01-02'), ('b', DATE '2025-01-02')) "
                f"t(k, day)) to '{tmp_path}/lake' (format parquet, partition_by (day), overwrite_or_ignore)")
    return con.execute(f"select k, count(*) over (partition by k) from read_parquet('{tmp_path}/lake/*/*.parquet', "
                       "hive_partitioning = true) where day = DATE '2025-01-02' order by k").fetchall()


def test_configured_connections_count_windows_over_pruned_partitions_correctly(settings, tmp_path):
    with connect(settings, database=":memory:") as con:
        assert window_counts(con, tmp_path) == [("a", 1), ("b", 1)]


def test_the_duckdb_window_bug_still_needs_the_workaround(tmp_path):
    """When this fails, DuckDB fixed the bug: DISABLED_OPTIMIZERS can go (and this test with it)."""
    con = duckdb.connect()
    assert window_counts(con, tmp_path) == [("a", 2), ("b", 1)]
    con.execute(f"SET disabled_optimizers = '{DISABLED_OPTIMIZERS}'")
