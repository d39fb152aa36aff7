"""Landing names its lake files after the whole incoming file name: two files of one stem, glob characters."""

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from seg.lake import landing

DAY = "2026-01-05"
HEADER = "order_id,customer_id,email,ordered_at,channel,status,amount,currency\n"


def csv_line(order_id: str, amount: str = "1.0") -> str:
    return f"{order_id},C00000001,,2026-01-05 10:00:00,web,completed,{amount},EUR\n"


def json_row(order_id: str, amount: float = 1.0) -> dict:
    return {"order_id": order_id, "customer_id": "C00000001", "ordered_at": "2026-01-05 11:00:00",
            "amount": amount, "currency": "EUR"}


def day_dir(settings, day: str = DAY):
    folder = settings.paths.incoming / "orders" / day
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_parquet(path, order_ids: list[str]) -> None:
    table = pa.table({"order_id": order_ids, "customer_id": ["C00000001"] * len(order_ids),
                      "ordered_at": [dt.datetime(2026, 1, 5, 12)] * len(order_ids),
                      "amount": [2.0] * len(order_ids), "currency": ["EUR"] * len(order_ids)})
    pq.write_table(table, path)  # pyarrow writes the name as given (DuckDB's COPY would see a glob)


def by_file(glob) -> dict[str, list[str]]:
    rows = duckdb.sql(f"select _source_file, order_id from read_parquet('{glob}') order by _source_file, _row_number").fetchall()
    found: dict[str, list[str]] = {}
    for source_file, order_id in rows:
        found.setdefault(source_file, []).append(order_id)
    return found


def land(settings):
    return landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))


def test_a_csv_and_a_json_export_of_one_name_each_keep_all_their_rows(settings):
    folder = day_dir(settings)
    (folder / "export.csv").write_text(HEADER + csv_line("O1") + csv_line("O2") + csv_line("O3", "-1"))
    (folder / "export.json").write_text(json.dumps([json_row("O4"), json_row("O5", -2.0)]))

    summary = land(settings)

    assert (summary["rows_in"], summary["rows_landed"], summary["rows_quarantined"]) == (5, 3, 2)
    raw = settings.paths.raw / "orders" / "*" / "*.parquet"
    quarantine = settings.paths.quarantine / "orders" / "*" / "*.parquet"
    expected_raw = {f"orders/{DAY}/export.csv": ["O1", "O2"], f"orders/{DAY}/export.json": ["O4"]}
    expected_quarantine = {f"orders/{DAY}/export.csv": ["O3"], f"orders/{DAY}/export.json": ["O5"]}
    assert by_file(raw) == expected_raw
    assert by_file(quarantine) == expected_quarantine
    manifests = {m["file"]: m for m in landing.read_manifests(settings.paths, "orders")}
    assert {f: (m["rows_landed"], m["rows_quarantined"]) for f, m in manifests.items()} == {
        f"orders/{DAY}/export.csv": (2, 1), f"orders/{DAY}/export.json": (1, 1)}

    again = land(settings)  # reruns stay no-ops

    assert (again["files_skipped"], again["rows_in"]) == (2, 0)
    assert by_file(raw) == expected_raw and by_file(quarantine) == expected_quarantine


def _as_the_old_landing_left_it(settings, keep: str) -> None:
    """Put the lake of DAY back as landing before #14 wrote it: one `<stem>.parquet` per partition holding the rows
    of `keep` (the last file of that stem landed), manifests without the fields landing now adds."""
    for partition in (settings.paths.raw_partition("orders", DAY), settings.paths.quarantine_partition("orders", DAY)):
        for path in sorted(partition.glob("*.parquet")):
            ((source_file,),) = duckdb.sql(f"select any_value(_source_file) from read_parquet('{path}')").fetchall()
            if source_file == f"orders/{DAY}/{keep}":
                path.rename(partition / (keep.rsplit(".", 1)[0] + ".parquet"))
            else:
                path.unlink()
    for path in (settings.paths.manifests / "orders" / f"ingest_date={DAY}").glob("*.json"):
        entry = json.loads(path.read_text())
        for new_field in ("lake_file", "landed_on"):
            entry.pop(new_field, None)
        path.write_text(json.dumps(entry))


def test_a_lake_landed_under_the_old_names_reruns_as_a_noop_and_a_changed_file_replaces_its_old_rows(settings):
    folder = day_dir(settings)
    (folder / "orders_a.csv").write_text(HEADER + csv_line("O1"))
    land(settings)
    _as_the_old_landing_left_it(settings, keep="orders_a.csv")
    raw = settings.paths.raw / "orders" / "*" / "*.parquet"

    assert land(settings)["files_skipped"] == 1  # an existing lake's manifests still say "unchanged"
    assert by_file(raw) == {f"orders/{DAY}/orders_a.csv": ["O1"]}

    (folder / "orders_a.csv").write_text(HEADER + csv_line("O1") + csv_line("O2"))
    assert land(settings)["files_landed"] == 1

    assert by_file(raw) == {f"orders/{DAY}/orders_a.csv": ["O1", "O2"]}  # the old-named file went, no row twice


def test_a_lake_where_two_files_shared_one_target_gets_the_lost_rows_back_on_the_next_run(settings):
    folder = day_dir(settings)
    (folder / "export.csv").write_text(HEADER + csv_line("O1") + csv_line("O2"))
    (folder / "export.json").write_text(json.dumps([json_row("O3")]))
    land(settings)
    _as_the_old_landing_left_it(settings, keep="export.json")  # export.csv's rows were overwritten

    summary = land(settings)

    assert summary["files_landed"] == 2
    assert by_file(settings.paths.raw / "orders" / "*" / "*.parquet") == {
        f"orders/{DAY}/export.csv": ["O1", "O2"], f"orders/{DAY}/export.json": ["O3"]}
    assert not (settings.paths.raw_partition("orders", DAY) / "export.parquet").exists()
    assert land(settings)["files_skipped"] == 2  # repaired once, then no-ops again


def test_file_names_with_glob_characters_are_read_as_exactly_that_file(settings):
    folder = day_dir(settings)
    (folder / "part*.csv").write_text(HEADER + csv_line("O1"))
    (folder / "part1.csv").write_text(HEADER + csv_line("O2"))
    (folder / "p[1].csv").write_text(HEADER + csv_line("O3"))
    (folder / "p1.csv").write_text(HEADER + csv_line("O4"))
    write_parquet(folder / "q?.parquet", ["O5"])
    write_parquet(folder / "qx.parquet", ["O6"])

    summary = land(settings)

    assert (summary["files_landed"], summary["files_rejected"], summary["files_duplicate"]) == (6, 0, 0)
    assert (summary["rows_in"], summary["rows_landed"]) == (6, 6)
    assert by_file(settings.paths.raw / "orders" / "*" / "*.parquet") == {
        f"orders/{DAY}/{name}": [order_id] for name, order_id in
        [("p1.csv", "O4"), ("p[1].csv", "O3"), ("part*.csv", "O1"), ("part1.csv", "O2"), ("q?.parquet", "O5"),
         ("qx.parquet", "O6")]}
    assert land(settings)["files_skipped"] == 6
