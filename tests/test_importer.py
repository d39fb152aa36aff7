import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from seg.importer import MappingError, run_import
from seg.lake.landing import land_source

FIXTURES = Path(__file__).parent / "fixtures"
CDNOW_MAPPING = Path(__file__).parent.parent / "examples" / "cdnow" / "mapping.yml"
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
