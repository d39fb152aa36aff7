import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from seg.lake.importer import MappingError, run_import
from seg.lake.landing import land_source

FIXTURES = Path(__file__).parents[1] / "fixtures"
CDNOW_MAPPING = Path(__file__).parents[2] / "examples" / "cdnow" / "mapping.yml"
DAY = dt.date(1998, 7, 1)


def data_lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines()[1:] if line.strip())


def test_cdnow_import_lands_every_line(settings):
    summary = run_import(settings.paths, FIXTURES / "cdnow_sample.txt", CDNOW_MAPPING, DAY)
    lines = data_lines(FIXTURES / "cdnow_sample.txt")
    assert summary["orders"]["rows"] == summary["order_items"]["rows"] == lines
    landed = land_source(settings, "orders", DAY)
    assert landed["rows_landed"] == lines and landed["rows_quarantined"] == 0
    total = duckdb.sql(f"select round(sum(amount), 2) from read_parquet('{settings.paths.raw}/orders/*/*.parquet')").fetchall()[0][0]
    expected = round(sum(float(line.split()[3]) for line in (FIXTURES / "cdnow_sample.txt").read_text().splitlines()[1:] if line.strip()), 2)
    assert total == pytest.approx(expected)


def test_bad_values_are_quarantined_at_landing_not_lost(settings, tmp_path):
    sample = tmp_path / "cdnow_bad.txt"
    shutil.copy(FIXTURES / "cdnow_sample.txt", sample)
    with sample.open("a") as fh:
        fh.write(" 00007 1997XX01  1   11.77\n 00008 19970101  1   abc\n")
    run_import(settings.paths, sample, CDNOW_MAPPING, DAY)
    landed = land_source(settings, "orders", DAY)
    assert landed["rows_in"] == data_lines(sample)
    assert landed["rows_quarantined"] == 2
    reasons = sorted(r[0] for r in duckdb.sql(f"select _reasons from read_parquet('{settings.paths.quarantine}/orders/*/*.parquet')").fetchall())
    assert reasons == ["amount: not a double", "ordered_at: not a timestamp"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("targets: {nope: {columns: {a: b}}}", "'nope' is not a contract source"),
        ("targets: {orders: {columns: {order_id: a, price: b}}}", "not in the contract"),
        ("targets: {orders: {columns: {order_id: column0}}}", "required contract columns"),
        ("targets: {orders: {sql: 'select nonsense from input'}}", "the SQL fails"),
        ("format: xlsx\ntargets: {orders: {sql: 'select 1'}}", "format 'xlsx'"),
        ("targets: {}", "non-empty `targets:`"),
    ],
)
def test_bad_mapping_fails_clearly_and_writes_nothing(settings, tmp_path, mapping, message):
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text("format: csv\nread_options: {header: false}\n" + mapping if not mapping.startswith("format") else mapping)
    with pytest.raises(MappingError, match=message):
        run_import(settings.paths, FIXTURES / "cdnow_sample.txt", mapping_file, DAY)
    assert not settings.paths.incoming.exists() or not any(p.is_file() for p in settings.paths.incoming.rglob("*"))


def test_one_failing_target_writes_no_target(settings, tmp_path):
    mapping_file = tmp_path / "mapping.yml"
    mapping_file.write_text(CDNOW_MAPPING.read_text() + "  survey_responses:\n    sql: 'select 1 as nope from input'\n")
    with pytest.raises(MappingError, match="survey_responses"):
        run_import(settings.paths, FIXTURES / "cdnow_sample.txt", mapping_file, DAY)
    assert not any(p.is_file() for p in settings.paths.incoming.rglob("*"))


def crm_mapping(tmp_path, fmt: str = "csv", extra: str = "") -> Path:
    mapping_file = tmp_path / "crm.yml"
    mapping_file.write_text(f"format: {fmt}\n{extra}targets:\n  crm_customers:\n"
                            "    columns: {customer_id: id, first_name: name, signup_at: signup}\n")
    return mapping_file


def imported(summary: dict, source: str) -> list[tuple]:
    return duckdb.sql(f"select * from read_parquet('{summary[source]['file']}') order by all").fetchall()


def test_crm_updated_at_defaults_to_midnight_utc_of_the_import_date(settings, tmp_path):
    export = tmp_path / "crm.csv"
    export.write_text("id,name,signup\n1001,Ada,2024-01-02 10:00:00\n")
    summary = run_import(settings.paths, export, crm_mapping(tmp_path), DAY)
    assert "updated_at" in summary["crm_customers"]["columns"]
    assert imported(summary, "crm_customers") == [("1001", "Ada", "2024-01-02 10:00:00", dt.datetime(1998, 7, 1))]  # CSV is text


def test_latin1_csv_imports_with_its_accents(settings, tmp_path):
    export = tmp_path / "crm_latin1.csv"
    export.write_bytes("id,name,signup\n1,Zoë Müller,2024-01-02\n2,François,2024-01-03\n".encode("latin-1"))
    summary = run_import(settings.paths, export, crm_mapping(tmp_path, extra="encoding: latin-1\n"), DAY)
    assert [r[1] for r in imported(summary, "crm_customers")] == ["Zoë Müller", "François"]


def test_an_encoding_duckdb_lacks_is_transcoded(settings, tmp_path):
    export = tmp_path / "crm_cp1252.csv"
    export.write_bytes("id,name,signup\n1,Chloé “Coco”,2024-01-02\n".encode("cp1252"))
    summary = run_import(settings.paths, export, crm_mapping(tmp_path, extra="encoding: cp1252\n"), DAY)
    assert imported(summary, "crm_customers")[0][1] == "Chloé “Coco”"


def test_ragged_csv_lines_are_kept_with_line_number_text_and_reason(settings, tmp_path):
    export = tmp_path / "crm_ragged.csv"
    export.write_text("id,name,signup\n1,Ada,2024-01-02\n2,Bob\n3,Cy,2024-01-03,extra\n4,Di,2024-01-04\n")
    summary = run_import(settings.paths, export, crm_mapping(tmp_path), DAY)
    assert summary["crm_customers"]["rows"] == 2
    assert summary["_input"]["lines"] == 4 == summary["_input"]["rows"] + summary["_input"]["rejected"]
    rejects = Path(summary["_input"]["rejects_file"])
    assert rejects == settings.paths.quarantine / "_import" / "1998-07-01" / "crm_ragged.parquet"
    rows = duckdb.sql(f"select line_no, line, reason from read_parquet('{rejects}') order by line_no").fetchall()
    assert [(n, text) for n, text, _ in rows] == [(3, "2,Bob"), (4, "3,Cy,2024-01-03,extra")]
    assert rows[0][2].startswith("missing columns") and rows[1][2].startswith("too many columns")
    assert summary["_input"]["reasons"] == {"missing columns": 1, "too many columns": 1}
    # a clean re-import of the same file name replaces the rejects it had
    export.write_text("id,name,signup\n1,Ada,2024-01-02\n")
    run_import(settings.paths, export, crm_mapping(tmp_path), DAY)
    assert not rejects.exists()


def test_jsonl_keeps_lines_that_are_not_json_objects(settings, tmp_path):
    export = tmp_path / "crm.jsonl"
    export.write_text('{"id": "a1", "name": "Ada", "signup": "2024-01-02"}\n\n{"id": "a2", "name": \n[1, 2]\n'
                      '{"id": 3, "name": "Cy", "signup": "2024-01-03T10:00:00Z"}\n')
    columns = "read_options: {columns: {id: VARCHAR, name: VARCHAR, signup: VARCHAR}}\n"  # ids mix numbers and text
    summary = run_import(settings.paths, export, crm_mapping(tmp_path, "jsonl", columns), DAY)
    assert [r[0] for r in imported(summary, "crm_customers")] == ["3", "a1"]
    assert summary["_input"] == {"rows": 2, "rejected": 2, "lines": 4, "file": str(export),
                                      "rejects_file": summary["_input"]["rejects_file"],
                                      "reasons": {"not valid JSON": 1, "not a JSON object (a list)": 1}}
    rows = duckdb.sql(f"select line_no, line from read_parquet('{summary['_input']['rejects_file']}') order by 1").fetchall()
    assert rows == [(3, '{"id": "a2", "name": '), (4, "[1, 2]")]


def test_json_array_and_latin1_jsonl(settings, tmp_path):
    array = tmp_path / "crm_array.json"
    array.write_text('[{"id": "x1", "name": "Ada", "signup": "2024-01-02"}, {"id": "x2", "name": "Bo", "signup": "2024-01-03"}]')
    summary = run_import(settings.paths, array, crm_mapping(tmp_path, "json"), DAY)
    assert summary["crm_customers"]["rows"] == 2 and summary["_input"]["rejected"] == 0
    latin = tmp_path / "crm_latin.jsonl"
    latin.write_bytes('{"id": "y1", "name": "Jos\u00e9", "signup": "2024-01-02"}\n'.encode("latin-1"))
    summary = run_import(settings.paths, latin, crm_mapping(tmp_path, "jsonl", "encoding: latin-1\n"), DAY)
    assert imported(summary, "crm_customers")[0][1] == "José"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("read_options: {ignore_errors: true}\n", "set by the importer"),
        ("read_options: {encoding: latin-1}\n", "set by the importer"),
        ("encoding: klingon\n", "unknown encoding"),
    ],
)
def test_options_the_importer_owns_are_refused(settings, tmp_path, header, message):
    with pytest.raises(MappingError, match=message):
        run_import(settings.paths, FIXTURES / "cdnow_sample.txt", crm_mapping(tmp_path, extra=header), DAY)


def test_csv_values_arrive_as_the_file_wrote_them(settings, tmp_path):
    export = tmp_path / "crm_zeros.csv"
    export.write_text("id,name,signup\n00042,Ada,2024-01-02\n17850.0,Bo,02/01/2024\n")
    summary = run_import(settings.paths, export, crm_mapping(tmp_path), DAY)
    assert [(r[0], r[2]) for r in imported(summary, "crm_customers")] == [("00042", "2024-01-02"), ("17850.0", "02/01/2024")]
