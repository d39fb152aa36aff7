"""CSV files as users put them into incoming/ themselves: ragged lines, another encoding, an oversized field."""

import datetime as dt

import duckdb

from seg.lake import landing

DAY = "2026-01-05"
HEADER = "order_id,customer_id,email,ordered_at,channel,status,amount,currency\n"


def write(settings, name: str, content: bytes) -> None:
    folder = settings.paths.incoming / "orders" / DAY
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)


def land(settings):
    return landing.land_source(settings, "orders", dt.date.fromisoformat(DAY))


def line(order_id: str, customer_id: str = "C00000001") -> str:
    return f"{order_id},{customer_id},,2026-01-05 10:00:00,web,completed,1.5,EUR\n"


def test_ragged_lines_are_quarantined_with_their_text_and_every_line_is_counted(settings):
    too_many = "O2,C00000001,,2026-01-05 10:00:00,web,completed,1.5,EUR,surplus\n"
    too_few = "O3,C00000001,,2026-01-05 10:00:00,web,1.5\n"
    quoted = 'O5,C00000001,"a@b.c\nsecond line",2026-01-05 10:00:00,web,completed,1.5,EUR\n'  # a record, two lines
    write(settings, "orders.csv", (HEADER + line("O1") + too_many + too_few + line("O4") + quoted + line("O6")).encode())

    summary = land(settings)

    assert (summary["files_landed"], summary["rows_in"], summary["rows_landed"], summary["rows_quarantined"]) == (1, 6, 4, 2)
    landed = duckdb.sql(f"select order_id, _row_number from read_parquet('{settings.paths.raw}/orders/*/*.parquet') "
                        "order by _row_number").fetchall()
    assert landed == [("O1", 1), ("O4", 4), ("O5", 5), ("O6", 6)]  # row numbers are the records' places in the file
    kept = duckdb.sql(f"select _row_number, order_id, _line, _reasons, _source_file "
                      f"from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet') order by _row_number").fetchall()
    assert kept == [
        (2, None, too_many.rstrip("\n"), "line: too many fields (the header has 8)", f"orders/{DAY}/orders.csv"),
        (3, None, too_few.rstrip("\n"), "line: too few fields (the header has 8)", f"orders/{DAY}/orders.csv"),
    ]
    (entry,) = landing.read_manifests(settings.paths, "orders")
    assert entry["reasons"] == {"line: too few fields (the header has 8)": 1, "line: too many fields (the header has 8)": 1}
    assert entry["rows_in"] == entry["rows_landed"] + entry["rows_quarantined"]
    assert land(settings)["files_skipped"] == 1


def test_ragged_lines_and_bad_values_are_quarantined_together(settings):
    write(settings, "orders.csv", (HEADER + line("O1") + "O2,C1\n" + line("O3", customer_id="")).encode())
    summary = land(settings)
    assert (summary["rows_in"], summary["rows_landed"], summary["rows_quarantined"]) == (3, 1, 2)
    reasons = dict(duckdb.sql(f"select _row_number, _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet')").fetchall())
    assert reasons == {2: "line: too few fields (the header has 8)", 3: "rule customer_id_or_email"}


def test_a_latin1_csv_is_rejected_whole_with_what_is_wrong_and_what_to_do(settings):
    content = (HEADER + line("O1") + line("O2", customer_id="Müller") + line("O3")).encode("latin-1")
    write(settings, "export.csv", content)

    summary = land(settings)

    assert (summary["files_rejected"], summary["rows_landed"]) == (1, 0)
    (entry,) = summary["entries"]
    message = entry["message"]
    assert "not UTF-8" in message and "line 3" in message
    assert "seg import" in message and "encoding:" in message  # what to do
    rejected = settings.paths.quarantine_partition("orders", DAY) / "_rejected" / "export.csv"
    assert rejected.read_bytes() == content  # kept whole, as it arrived


def test_a_csv_line_above_the_readers_limit_is_rejected_whole_with_the_limit(settings):
    write(settings, "notes.csv", (HEADER + line("O1") + line("O2", customer_id="x" * (2 * 1024 * 1024))).encode())

    summary = land(settings)

    assert summary["files_rejected"] == 1
    message = summary["entries"][0]["message"]
    assert "line 3" in message and "2000000 bytes" in message  # what is wrong: the reader's limit per line
    assert "max_line_size" in message and "seg import" in message  # what to do
    assert len(message) < 1000  # not the 2 MB line itself
    assert (settings.paths.quarantine_partition("orders", DAY) / "_rejected" / "notes.csv").exists()
