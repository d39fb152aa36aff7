"""Claim: a mapping turns its one input file into contract files in incoming/ and can do nothing else.

Its SQL runs with DuckDB's external access off except for the input (no other file read, no file written), is one
SELECT statement, and the names and options a mapping gives are quoted, never pasted into the SQL. A refused
mapping fails with a MappingError naming the problem and writes nothing, anywhere.
"""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from seg.lake.importer import MappingError, run_import
from seg.pipeline import cli

DAY = dt.date(2024, 3, 1)
SECRET = "not-for-the-lake-4711"


@pytest.fixture
def export(tmp_path) -> Path:
    path = tmp_path / "crm.csv"
    path.write_text("id,name,signup\n1001,Ada,2024-01-02\n1002,Bo;b,2024-01-03\n")
    return path


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory outside the data directory, holding a file no mapping may read."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.csv").write_text(f"token\n{SECRET}\n")
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def write_mapping(tmp_path: Path, text: str) -> Path:
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(text)
    return mapping


def assert_refused(settings, tmp_path, export, mapping_text, message):
    mapping = write_mapping(tmp_path, mapping_text)
    before = files_under(tmp_path)
    with pytest.raises(MappingError, match=message):
        run_import(settings.paths, export, mapping, DAY)
    assert files_under(tmp_path) == before  # nothing in incoming/, in the quarantine, outside, anywhere
    assert not settings.paths.incoming.exists() or not any(settings.paths.incoming.iterdir())


def crm_sql(sql: str) -> str:
    return "format: csv\ntargets:\n  crm_customers:\n    sql: |\n" + "".join(f"      {line}\n" for line in sql.splitlines())


def crm_columns(columns: str, extra: str = "") -> str:
    return f"format: csv\n{extra}targets:\n  crm_customers:\n    columns: {columns}\n"


@pytest.mark.skipif(not Path("/etc/passwd").is_file(), reason="needs a system file to try to read")
def test_sql_cannot_read_a_system_file(settings, tmp_path, export):
    sql = "select column0 as customer_id, column0 as signup_at from read_csv('/etc/passwd', header = false, sep = ':')"
    assert_refused(settings, tmp_path, export, crm_sql(sql), r"may read only its input.*/etc/passwd")


def test_sql_cannot_read_a_file_outside_the_data_directory(settings, tmp_path, export, outside):
    sql = f"select '1' as customer_id, content as first_name, '2024-01-01' as signup_at from read_text('{outside / 'secret.csv'}')"
    assert_refused(settings, tmp_path, export, crm_sql(sql), "may read only its input")


def test_sql_cannot_read_other_files_of_the_data_directory(settings, tmp_path, export):
    other = settings.paths.root / "warehouse_notes.csv"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(f"token\n{SECRET}\n")
    sql = f"select token as customer_id, '2024-01-01' as signup_at from read_csv('{other}')"
    assert_refused(settings, tmp_path, export, crm_sql(sql), "may read only its input")


def test_a_second_statement_is_refused_and_never_runs(settings, tmp_path, export, outside):
    sql = (f"select id as customer_id, signup as signup_at from input;\n"
           f"copy (select 'pwned' as x) to '{outside / 'evil.csv'}'")
    assert_refused(settings, tmp_path, export, crm_sql(sql), r"one SELECT statement.*2 statements")
    assert not (outside / "evil.csv").exists()


@pytest.mark.parametrize("statement", [
    "copy (select * from input) to '{outside}/evil.csv'",
    "attach '{outside}/evil.duckdb' as evil",
    "set enable_external_access = true",
])
def test_sql_that_is_not_a_select_is_refused(settings, tmp_path, export, outside, statement):
    assert_refused(settings, tmp_path, export, crm_sql(statement.format(outside=outside)), "one SELECT statement")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


def test_where_cannot_add_a_statement(settings, tmp_path, export, outside):
    where = f"1=1; COPY (SELECT 'pwned' AS x) TO '{outside / 'evil.csv'}'"
    mapping = crm_columns('{customer_id: id, signup_at: signup}').rstrip("\n") + f"\n    where: \"{where}\"\n"
    assert_refused(settings, tmp_path, export, mapping, "`where`")
    assert not (outside / "evil.csv").exists()


def test_where_cannot_read_another_file(settings, tmp_path, export, outside):
    where = f"id NOT IN (SELECT token FROM read_csv('{outside / 'secret.csv'}'))"
    mapping = crm_columns('{customer_id: id, signup_at: signup}').rstrip("\n") + f"\n    where: \"{where}\"\n"
    assert_refused(settings, tmp_path, export, mapping, "may read only its input")


def test_a_column_name_cannot_smuggle_sql(settings, tmp_path, export, outside):
    hostile = f"name\\\" || (SELECT content FROM read_text('{outside / 'secret.csv'}')) || \\\"name"
    mapping = crm_columns(f'{{customer_id: id, first_name: "{hostile}", signup_at: signup}}')
    assert_refused(settings, tmp_path, export, mapping, "not a column of the input")


def test_an_input_column_with_a_quote_in_its_name_imports(settings, tmp_path):
    export = tmp_path / "quoted.csv"
    export.write_text('"cust""id",name,signup\n1001,Ada,2024-01-02\n')
    mapping = write_mapping(tmp_path, crm_columns("{customer_id: 'cust\"id', first_name: name, signup_at: signup}"))
    summary = run_import(settings.paths, export, mapping, DAY)
    rows = duckdb.sql(f"select customer_id, first_name from read_parquet('{summary['crm_customers']['file']}')").fetchall()
    assert rows == [("1001", "Ada")]


def test_a_read_option_name_cannot_smuggle_sql(settings, tmp_path, export, outside):
    key = (f"\"all_varchar = true) UNION ALL BY NAME SELECT content AS id FROM read_text('{outside / 'secret.csv'}')"
           f"; COPY (SELECT 1 AS x) TO '{outside / 'evil.csv'}' --\"")
    mapping = crm_columns("{customer_id: id, signup_at: signup}", extra=f"read_options: {{{key}: true}}\n")
    assert_refused(settings, tmp_path, export, mapping, "read_options: .* is not an option name")
    assert not (outside / "evil.csv").exists()


@pytest.mark.parametrize("value", [
    "\"'); COPY (SELECT 1 AS x) TO '{outside}/evil.csv'; --\"",
    "{{\"a'); COPY (SELECT 1 AS x) TO '{outside}/evil.csv'; --\": VARCHAR}}",
])
def test_a_read_option_value_stays_one_quoted_value(settings, tmp_path, export, outside, value):
    mapping = write_mapping(tmp_path, crm_columns("{customer_id: id, signup_at: signup}",
                                                  extra=f"read_options: {{types: {value.format(outside=outside)}}}\n"))
    try:  # DuckDB gets one text: a type it refuses, or a column name it ignores; never a statement
        summary = run_import(settings.paths, export, mapping, DAY)
    except MappingError as exc:
        assert str(exc).startswith(f"cannot read {export} as csv")
        assert not settings.paths.incoming.exists()
    else:
        assert summary["crm_customers"]["rows"] == 2
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


@pytest.mark.parametrize("value", ["null", ".nan", "[1, null]"])
def test_a_read_option_value_must_be_a_plain_value(settings, tmp_path, export, value):
    mapping = crm_columns("{customer_id: id, signup_at: signup}", extra=f"read_options: {{sample_size: {value}}}\n")
    assert_refused(settings, tmp_path, export, mapping, r"read_options: sample_size")


def test_a_semicolon_inside_a_string_or_a_trailing_one_is_not_a_second_statement(settings, tmp_path, export):
    sql = ("select id as customer_id, name || ';' || id as first_name, signup as signup_at -- one statement; this is a comment\n"
           "from input where name <> ';';  -- the trailing ; is fine")
    summary = run_import(settings.paths, export, write_mapping(tmp_path, crm_sql(sql)), DAY)
    rows = duckdb.sql(f"select customer_id, first_name from read_parquet('{summary['crm_customers']['file']}') order by 1").fetchall()
    assert rows == [("1001", "Ada;1001"), ("1002", "Bo;b;1002")]


def test_a_where_with_a_semicolon_in_a_string_and_a_comment_imports(settings, tmp_path, export):
    mapping = crm_columns("{customer_id: id, signup_at: signup}").rstrip("\n") + "\n    where: \"name NOT LIKE '%;%' -- Bo;b has one\"\n"
    summary = run_import(settings.paths, export, write_mapping(tmp_path, mapping), DAY)
    assert summary["crm_customers"]["rows"] == 1


def test_cli_says_nothing_was_written_and_means_it(settings, tmp_path, export, outside, capsys):
    sql = (f"select id as customer_id, signup as signup_at from input;\n"
           f"copy (select 'pwned' as x) to '{outside / 'evil.csv'}'")
    mapping = write_mapping(tmp_path, crm_sql(sql))
    before = files_under(tmp_path)
    assert cli.main(["import", str(export), "--mapping", str(mapping), "--date", DAY.isoformat()]) == 2
    err = capsys.readouterr().err
    assert "one SELECT statement" in err and "nothing was written" in err
    assert files_under(tmp_path) == before
