"""Every generated file matches the data contract: columns, types, patterns, allowed values, bounds, rules,
keys, JSON properties per the event taxonomy (checked through DuckDB on the written files)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.parquet as pq
import pytest

from seg.core.contract import SOURCES, load_contract
from seg.generate.tables import ARROW_TYPES

DATASETS = ["small", "window60"]


@pytest.fixture(params=DATASETS)
def gen(request):
    return request.getfixturevalue(request.param)


def q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.mark.parametrize("source", SOURCES)
def test_files_have_exactly_the_contract_columns_and_types(gen, source):
    src = load_contract().source(source)
    files = gen.files(source)
    assert files, f"no files for {source}"
    expected = [(c.name, ARROW_TYPES[c.type]) for c in src.columns.values()]
    for f in files:
        schema = pq.read_schema(f)
        assert [(x.name, x.type) for x in schema] == expected, f
        day = f.parent.name
        assert f.name == f"{source}_{day}.parquet"
        assert pq.read_metadata(f).num_rows > 0  # a day without rows writes no file


@pytest.mark.parametrize("source", SOURCES)
def test_values_follow_patterns_allowed_values_bounds_and_rules(gen, source):
    src = load_contract().source(source)
    rel = f"read_parquet('{gen.glob(source)}')"
    checks = []
    for c in src.columns.values():
        if c.required:
            checks.append((f"{c.name} required", f"{c.name} is null"))
        if c.pattern:
            checks.append((f"{c.name} pattern", f"{c.name} is not null and not regexp_full_match({c.name}, {q(c.pattern)})"))
        if c.allowed:
            values = ", ".join(q(v) for v in c.allowed)
            checks.append((f"{c.name} allowed", f"{c.name} is not null and {c.name} not in ({values})"))
        if c.min is not None:
            lit = f"date {q(str(c.min))}" if c.type == "date" else str(c.min)
            checks.append((f"{c.name} min", f"{c.name} < {lit}"))
        if c.max is not None:
            checks.append((f"{c.name} max", f"{c.name} > {c.max}"))
        if c.type == "json":
            checks.append((f"{c.name} json object",
                           f"{c.name} is not null and (not json_valid({c.name}) or json_type({c.name}::json) <> 'OBJECT')"))
    for rule in src.rules:
        checks.append((f"rule {rule.name}", f"not ({rule.sql})"))
    selects = ", ".join(f"count(*) filter (where {cond})" for _, cond in checks)
    counts = gen.sql(f"select count(*), {selects} from {rel}")[0]
    assert counts[0] > 0
    bad = {name: n for (name, _), n in zip(checks, counts[1:], strict=True) if n}
    assert not bad, f"{source}: rows breaking the contract: {bad}"


@pytest.mark.parametrize("source", SOURCES)
def test_primary_keys_are_unique(gen, source):
    src = load_contract().source(source)
    key = list(src.primary_key)
    cols = ", ".join(key)
    rel = f"read_parquet('{gen.glob(source)}')"
    (dups,), = gen.sql(f"select count(*) from (select {cols} from {rel} group by {cols} having count(*) > 1)")
    assert dups == 0


@pytest.mark.parametrize("source", [s for s in SOURCES if load_contract().source(s).timestamp])
def test_timestamps_fall_on_the_file_day(gen, source):
    ts = load_contract().source(source).timestamp
    rel = f"read_parquet('{gen.glob(source)}', filename = true)"
    day = "regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})\\.parquet$', 1)::date"
    if source == "crm_customers":
        # the first file is the initial export (records last written before the window)
        cond = f"({ts}::date <> {day} and {day} <> (select min({day}) from {rel}))"
    else:
        # sessions / store visits that start before midnight may end a little after it
        cond = f"({ts} < {day} or {ts} >= {day} + interval 1 day + interval 6 hour)"
    (bad,), = gen.sql(f"select count(*) from {rel} where {cond}")
    assert bad == 0


def test_dates_cover_the_window_and_nothing_else(gen):
    end = gen.args["end"]
    start = end - dt.timedelta(days=gen.args["days"] - 1)
    days = sorted({p.name for p in (gen.paths.incoming / "events").iterdir()})
    assert days == [(start + dt.timedelta(days=i)).isoformat() for i in range(gen.args["days"])]
    crm_days = sorted(p.name for p in (gen.paths.incoming / "crm_customers").iterdir())
    assert crm_days[0] == start.isoformat() and crm_days[-1] <= end.isoformat()


def test_event_properties_follow_the_taxonomy(gen):
    contract = load_contract()
    rows = gen.sql(f"""
        select event_type, taxonomy_version, list_sort(json_keys(properties)) as keys, count(*)
        from read_parquet('{gen.glob("events")}') group by all""")
    seen = set()
    for event_type, version, keys, _ in rows:
        spec = contract.event_properties(event_type, version)
        assert keys == sorted(spec), (event_type, keys)
        seen.add(event_type)
    assert seen == set(contract.taxonomy["versions"][1]["event_types"])  # every type occurs
    # typed values and bounds
    for event_type in seen:
        for prop, spec in contract.event_properties(event_type).items():
            path = f"'$.{prop}'"
            kinds = {"double": "('DOUBLE', 'UBIGINT', 'BIGINT')", "integer": "('UBIGINT', 'BIGINT')",
                     "varchar": "('VARCHAR')"}[spec["type"]]
            conds = [f"json_type(properties, {path}) not in {kinds}"]
            if "min" in spec:
                conds.append(f"json_extract(properties, {path})::double < {spec['min']}")
            if "max" in spec:
                conds.append(f"json_extract(properties, {path})::double > {spec['max']}")
            (bad,), = gen.sql(f"""select count(*) from read_parquet('{gen.glob("events")}')
                                where event_type = {q(event_type)} and ({' or '.join(conds)})""")
            assert bad == 0, (event_type, prop)


def test_summary_and_generation_json_report_what_was_written(small):
    meta = json.loads((small.paths.truth / "generation.json").read_text())
    assert meta["customers"] == 2000 and meta["seed"] == 11 and meta["days"] == 10
    for source in SOURCES:
        (n,), = small.sql(f"select count(*) from read_parquet('{small.glob(source)}')")
        assert small.summary["rows"][source] == n == meta["rows_written"][source]
    n_files = sum(len(small.files(s)) for s in SOURCES)
    assert small.summary["files"] == n_files == meta["files"]
    assert small.summary["seconds"] > 0


def test_scale_knobs_are_in_the_documented_range(window60):
    """~0.33 events per customer-day and 1.5-3 orders per customer over 60 days (loosely)."""
    rows = window60.summary["rows"]
    per_day = rows["events"] / (4000 * 60)
    assert 0.25 <= per_day <= 0.45, per_day
    assert 1.5 <= rows["orders"] / 4000 <= 3.2
