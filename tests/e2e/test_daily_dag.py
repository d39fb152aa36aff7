"""The real daily DAG through Airflow on generated data: stages run, outputs reconcile, reruns change nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil

import pytest

from seg.core import config
from seg.core.contract import SOURCES
from seg.lake.landing import read_manifests

from .conftest import END, as_generator_deployment, query, seg_run

pytestmark = pytest.mark.e2e
DAY1 = END - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ran(generated_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e") / "data"
    shutil.copytree(generated_lake.paths.incoming, root / "incoming")
    as_generator_deployment(root)
    settings = config.load(root)
    proc = seg_run(root, "run", "--date", END.isoformat(), "--days", "2")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return settings, proc


def table_fingerprint(settings, table: str) -> str:
    # Doubles are compared to 9 decimals: DuckDB's parallel sums may differ in the last bit between runs
    # (addition order), which is not a change of the data.
    columns = query(settings, f"select column_name, column_type from (describe {table})")
    select = ", ".join(f"round(\"{name}\", 9)" if dtype in ("DOUBLE", "FLOAT") else f"\"{name}\"" for name, dtype in columns)
    rows = query(settings, f"select {select} from {table} order by all")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def stage_states(stdout: str, day: dt.date) -> dict[str, str]:
    """The task states of the DAG run for `day`, as `seg run` prints them from the run's task instances."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"segmentation_daily {day}: "))
    states = {}
    for line in lines[head + 2:]:
        fields = line.split()
        if len(fields) != 3:
            break
        states[fields[0]] = fields[1]
    return states


def stage_metrics(settings, day: dt.date) -> list[tuple[str, str]]:
    """(stage, status) of every stage execution recorded for `day`, in order."""
    path = settings.paths.reports / "stage_metrics" / f"{day.isoformat()}.jsonl"
    return [(r["stage"], r["status"]) for r in map(json.loads, path.read_text().splitlines())]


def registry(settings) -> tuple[list[tuple[str, str, str]], str]:
    """The registered versions (version, as_of_date tag, promotion tag) of the lens's model and its champion."""
    from ml.tracking import client as mlflow_client

    # not mlflow.set_tracking_uri: it exports MLFLOW_TRACKING_URI, which later `seg run` subprocesses would inherit
    client = mlflow_client(settings)
    name = settings.ml.registered_model_name
    versions = sorted((str(v.version), v.tags.get("as_of_date"), v.tags.get("promotion"))
                      for v in client.search_model_versions(f"name = '{name}'"))
    return versions, str(client.get_model_version_by_alias(name, "champion").version)


def registries(settings) -> dict[str, tuple]:
    return {lens: registry(settings.for_lens(lens)) for lens in settings.lenses}


def published_model_versions(settings) -> set[str]:
    return {str(v) for (v,) in query(settings, "select distinct model_version from marts.customer_segments "
                                               "where segmentation = ?", [settings.lens])}


def lenses(settings):
    return [settings.for_lens(lens) for lens in settings.lenses]


def test_the_deployment_has_two_lenses(ran):
    settings, _ = ran
    assert settings.lenses == ("profile", "behaviour")


@pytest.mark.parametrize("lens", ["profile", "behaviour"])
def test_day_one_trained_the_champion_and_day_two_followed_its_drift_decision(ran, lens):
    """Day 1 has no champion: each lens trains and promotes. On day 2 a lens trains on its schedule or when its
    drift report decided `retrain`, and then assigns with the new version only if that version won promotion.
    The lens's registry, champion alias and published model versions must tell the same story."""
    settings, proc = ran
    settings = settings.for_lens(lens)
    day1, day2 = stage_states(proc.stdout, DAY1), stage_states(proc.stdout, END)
    assert (day1[f"{lens}.train"], day1[f"{lens}.load_champion"]) == ("success", "skipped"), day1
    assert (f"{lens}.train", "success") in stage_metrics(settings, DAY1)
    (decision,), = query(settings, "select decision from monitoring.drift_decisions where segmentation = ? and "
                                   "as_of_date = ?", [lens, END])
    from ml.train import is_training_day

    trains = decision == "retrain" or is_training_day(settings, END)[0]
    assert (day2[f"{lens}.train"], day2[f"{lens}.load_champion"]) == (
        ("success", "skipped") if trains else ("skipped", "success"))
    assert ((f"{lens}.train", "success") in stage_metrics(settings, END)) is trains

    versions, champion = registry(settings)
    assert [d for _, d, _ in versions] == [DAY1.isoformat()] + ([END.isoformat()] if trains else [])
    first, *second = versions
    # day 1's version was promoted once its segments passed the gate (never left pending); when day 2's version
    # took the alias, day 1's tag says so (no two versions tagged champion)
    if second and second[0][2] == "champion":
        assert (champion, first[2]) == (second[0][0], f"superseded by v{second[0][0]}")
    else:
        assert (champion, first[2]) == (first[0], "champion")
        assert not second or second[0][2] == "challenger", second
    assert published_model_versions(settings) == {champion}
    history = query(settings, "select as_of_date, count(distinct model_version), min(model_version) "
                              "from marts.customer_segment_history where segmentation = ? group by 1 order by 1",
                    [lens])
    assert [(d, n, str(v)) for d, n, v in history] == [(DAY1, 1, first[0]), (END, 1, champion)]


def test_each_lens_has_its_own_model_features_and_segments(ran):
    """The two lenses are two segmentations: their own registered models, trained on their own feature marts,
    with their own segments (not one model's segments copied under two names)."""
    settings, _ = ran
    from ml.tracking import champion_version, client

    runs = {}
    for lens in lenses(settings):
        version = champion_version(lens)
        runs[lens.lens] = client(lens).get_run(version.run_id).data.tags
        assert runs[lens.lens]["segmentation"] == lens.lens
        assert runs[lens.lens]["data.table"] == f"marts.{lens.feature_table}"
    assert set(runs["profile"]["features"].split(",")) <= set(settings.for_lens("profile").ml.features) | set(
        settings.for_lens("profile").ml.lifecycle_features)
    assert set(runs["behaviour"]["features"].split(",")) <= set(settings.for_lens("behaviour").ml.features)
    (agreement,), = query(settings, """
        select count(*) filter (where p.segment_id = b.segment_id) / count(*) from marts.customer_segments p
        join marts.customer_segments b using (person_id)
        where p.segmentation = 'profile' and b.segmentation = 'behaviour'""")
    assert agreement < 0.9, "the behaviour lens's segments are not a copy of the profile lens's"


def test_every_stage_ran_and_is_reported(ran):
    _, proc = ran
    for stage in ("land_orders", "gate_raw", "dbt_build", "gate_marts", "build_features", "publish_marts"):
        assert stage in proc.stdout
    for lens in ("profile", "behaviour"):
        for stage in ("drift_report", "choose_model", "assign", "gate_segments", "promote", "publish"):
            assert f"{lens}.{stage}" in proc.stdout
    assert f"segmentation_daily {END}: SUCCESS" in proc.stdout
    # day 1 trained (no champion yet); day 2 is not a training weekday and reused the champion
    assert f"segmentation_daily {DAY1}: SUCCESS" in proc.stdout


def test_landing_reconciles_and_the_corrupt_file_is_rejected_with_its_reason(ran):
    settings, _ = ran
    incoming_files = sorted(p for p in settings.paths.incoming.rglob("*") if p.is_file())
    entries = [e for source in SOURCES for e in read_manifests(settings.paths, source)]
    assert len(entries) == len(incoming_files), "every incoming file has a manifest entry"
    for e in entries:
        if e["status"] != "rejected":
            assert e["rows_in"] == e["rows_landed"] + e["rows_quarantined"], e["file"]
    rejected = [e for e in entries if e["status"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["source"] == "orders"
    assert "cannot read parquet file" in rejected[0]["message"]


def test_marts_reconcile_with_the_landed_orders(ran):
    settings, _ = ran
    raw = settings.paths.raw / "orders" / "*" / "*.parquet"
    (lake_orders, lake_revenue), = query(settings, f"""
        with latest as (
            select * from read_parquet('{raw}', hive_partitioning = true)
            where ordered_at < date '{END}' + interval 1 day
            qualify row_number() over (partition by order_id order by ingest_date desc, _row_number desc) = 1)
        select count(*), round(sum(amount) filter (where status = 'completed'), 2) from latest""")
    (mart_orders,), = query(settings, "select count(*) from marts.orders")
    assert mart_orders == lake_orders
    (rfm_revenue,), = query(settings, "select round(sum(monetary), 2) from marts.customer_rfm")
    assert float(rfm_revenue) == pytest.approx(lake_revenue, rel=1e-6)  # marts keep money as DECIMAL


@pytest.mark.parametrize("lens", ["profile", "behaviour"])
def test_every_person_has_exactly_one_published_segment_per_lens(ran, lens):
    settings, _ = ran
    (people,), = query(settings, "select count(*) from marts.customers")
    (assigned, distinct_people, segments), = query(
        settings, "select count(*), count(distinct person_id), count(distinct segment_id) from marts.customer_segments "
                  "where segmentation = ?", [lens])
    assert people == assigned == distinct_people
    assert segments >= 2
    dates = [r[0] for r in query(settings, "select distinct as_of_date from marts.customer_segment_history "
                                           "where segmentation = ? order by 1", [lens])]
    assert dates == [DAY1, END]
    (named,), = query(settings, "select count(*) from marts.segment_profiles where segmentation = ? and "
                                "as_of_date = ? and segment_name <> ''", [lens, END])
    assert named == segments, "every segment of the lens has a name and a profile"


@pytest.mark.parametrize("lens", ["profile", "behaviour"])
def test_mlflow_run_with_metrics_and_a_champion(ran, lens):
    settings, _ = ran
    settings = settings.for_lens(lens)
    from ml.tracking import client as mlflow_client

    # not mlflow.set_tracking_uri: it exports MLFLOW_TRACKING_URI, which later `seg run` subprocesses would inherit
    client = mlflow_client(settings)
    name = settings.ml.registered_model_name
    champion = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(champion.run_id)
    assert run.data.metrics, "the training run logged metrics"
    assert published_model_versions(settings) == {str(champion.version)}


def test_quality_gate_results_and_drift_reports_exist(ran):
    settings, _ = ran
    names = ("raw", "marts", "features", "segments.profile", "segments.behaviour")
    for day in (DAY1, END):
        for gate in names:
            assert (settings.paths.reports / "gx" / day.isoformat() / f"{gate}.json").exists()
        for lens in settings.lenses:
            report = json.loads((settings.paths.reports / "drift" / day.isoformat() / lens / "drift_report.json")
                                .read_text())
            assert report["decision"] in {"none", "warn", "retrain"} and report["segmentation"] == lens
    assert (settings.paths.reports / "data_docs" / "index.html").exists()
    gates = {r[0] for r in query(settings, "select distinct gate from monitoring.gate_results")}
    assert set(names) <= gates


def test_rerunning_a_date_changes_nothing(ran):
    settings, _ = ran
    tables = ["marts.customers", "marts.orders", "marts.customer_rfm", "marts.customer_features",
              "marts.customer_segments", "marts.customer_segment_history", "monitoring.gate_results"]
    before = {t: table_fingerprint(settings, t) for t in tables if t != "monitoring.gate_results"}
    (gate_rows_before,), = query(settings, "select count(*) from monitoring.gate_results")
    manifests_before = sorted(p.read_text() for p in settings.paths.manifests.rglob("*.json"))
    registry_before = registries(settings)
    proc = seg_run(settings.paths.root, "run", "--date", END.isoformat())
    assert proc.returncode == 0, proc.stdout[-3000:]
    # a rerun reuses the lens's model of the date (no new version, the same alias)
    states = stage_states(proc.stdout, END)
    for lens in settings.lenses:
        assert (states[f"{lens}.train"], states[f"{lens}.load_champion"]) == ("skipped", "success"), states
        assert published_model_versions(settings.for_lens(lens)) == {registry_before[lens][1]}
    assert registries(settings) == registry_before
    assert {t: table_fingerprint(settings, t) for t in before} == before
    (gate_rows_after,), = query(settings, "select count(*) from monitoring.gate_results")
    assert gate_rows_after == gate_rows_before
    assert sorted(p.read_text() for p in settings.paths.manifests.rglob("*.json")) == manifests_before


def drift_decisions(settings) -> list[tuple]:
    return query(settings, "select segmentation, as_of_date, decision, reasons, model_version "
                           "from monitoring.drift_decisions order by all")


def test_rerunning_an_older_date_keeps_the_current_state_and_reproduces_that_date(ran):
    """After END, a rerun of DAY1 (a backfill or repaired day) writes DAY1's history again, with the model live on
    DAY1 and the drift decision DAY1's first run made, and leaves every current table, the registry and the other
    days' decisions as they were (before the fix it published DAY1's marts and segments as the current ones)."""
    settings, _ = ran
    current = ["marts.customers", "marts.orders", "marts.customer_rfm", "marts.customer_features",
               "marts.identities", "marts.customer_segments"]
    before = {t: table_fingerprint(settings, t) for t in current}
    assert {d for (d,) in query(settings, "select distinct as_of_date from marts.customer_features")} == {END}
    day1 = f"where as_of_date = date '{DAY1.isoformat()}'"
    history_before = {t: query(settings, f"select count(*), count(distinct person_id) from {t} {day1}")
                      for t in ("marts.customer_segment_history", "marts.customer_features_history")}
    day1_segments = table_fingerprint_where(settings, "marts.customer_segment_history", day1)
    decisions_before, registry_before = drift_decisions(settings), registries(settings)

    proc = seg_run(settings.paths.root, "run", "--date", DAY1.isoformat())
    assert proc.returncode == 0, proc.stdout[-3000:]
    states = stage_states(proc.stdout, DAY1)
    for lens in settings.lenses:
        assert (states[f"{lens}.train"], states[f"{lens}.load_champion"], states[f"{lens}.publish"]) == (
            "skipped", "success", "success"), states

    assert {t: table_fingerprint(settings, t) for t in current} == before
    assert registries(settings) == registry_before
    assert drift_decisions(settings) == decisions_before
    assert {t: query(settings, f"select count(*), count(distinct person_id) from {t} {day1}")
            for t in history_before} == history_before
    assert table_fingerprint_where(settings, "marts.customer_segment_history", day1) == day1_segments
    # DAY1 has fewer customers than END: had its build been published as current, the fingerprints would differ
    (day1_people,), = query(settings, f"select count(*) from marts.customer_features_history {day1}")
    (end_people,), = query(settings, "select count(*) from marts.customer_features")
    assert day1_people < end_people


def table_fingerprint_where(settings, table: str, where: str) -> str:
    rows = query(settings, f"select * from {table} {where} order by all")
    return hashlib.sha256(repr(rows).encode()).hexdigest()
