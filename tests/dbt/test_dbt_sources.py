import yaml

from seg.core.contract import dbt_sources, load_contract


def test_committed_sources_file_equals_the_one_generated_from_the_contract():
    committed = dbt_sources.SOURCES_FILE.read_text()
    assert committed == dbt_sources.render(), "run: python -m seg.core.contract.dbt_sources"
    assert dbt_sources.main(["--check"]) == 0


def test_every_contract_column_has_its_type_and_description_in_the_sources_file():
    contract = load_contract()
    tables = {t["name"]: t for t in yaml.safe_load(dbt_sources.render())["sources"][0]["tables"]}
    assert set(tables) == set(contract.sources)
    for name, source in contract.sources.items():
        columns = {c["name"]: c for c in tables[name]["columns"]}
        assert list(columns)[: len(source.columns)] == list(source.columns)
        assert {"ingest_date", "_source_file", "_row_number"} <= set(columns)
        for column in source.columns.values():
            expected = "VARCHAR" if column.type == "json" else column.duckdb_type
            assert columns[column.name]["data_type"] == expected
            assert columns[column.name]["description"].startswith(column.description.strip())
        meta = tables[name]["config"]["meta"]
        assert meta["lake_glob"].endswith(f"/lake/raw/{name}/*/*.parquet")
        assert "hive_partitioning = true" in meta["external_location"]


def test_check_mode_reports_a_stale_file(tmp_path):
    stale = tmp_path / "sources.yml"
    stale.write_text("version: 2\n")
    assert dbt_sources.main(["--check", "--output", str(stale)]) == 1
    assert dbt_sources.main(["--output", str(stale)]) == 0
    assert dbt_sources.main(["--check", "--output", str(stale)]) == 0
