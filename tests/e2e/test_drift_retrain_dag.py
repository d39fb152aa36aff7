"""A persona-mix shift makes the real daily DAG retrain early: drift report -> choose_model -> train, in Airflow.

Generated data with the generator's drift knob (`drift_from` = SHIFT), three DAG runs ending on SHIFT:
- SHIFT-2: no champion yet, so the DAG trains;
- SHIFT-1: not a training weekday and nothing drifted, so the DAG reuses the champion;
- SHIFT: the day's channel mix changed, the drift report decides `retrain` and the DAG trains a day early,
  and the new version (compared with the champion on the same day's customers) becomes the champion.

The 20 stationary days and the "segments follow the new mix" bars run on the faster path in
tests/ml/test_drift_quality.py; this test shows the same decision taken and acted on by Airflow.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import pytest
import yaml

from seg.core import config

from .conftest import query, seg_run

pytestmark = pytest.mark.e2e

SHIFT = dt.date(2026, 11, 5)  # a Thursday; config/settings.yml trains on Mondays
DAYS = [SHIFT - dt.timedelta(days=2), SHIFT - dt.timedelta(days=1), SHIFT]
# Enough orders per day for the channel-mix test (~800 a day) and 28 days of reference before the first training.
CUSTOMERS = 20_000
HISTORY_DAYS = 40
# The generator's population is stationary until its last ~35 days (new sign-ups, lapsing; docs/generator.md), so
# it generates 35 days past SHIFT and the DAG runs end on SHIFT (landing takes files dated up to the run's date).
TAIL_DAYS = 35


# A smaller model search (the decision logic is what is under test).
OVERRIDES = {
    "ml": {
        "k_min": 4,
        "k_max": 6,
        "fit_sample_size": 10_000,
        "selection": {"stability_bootstraps": 2, "stability_sample_size": 3000},
    },
    "drift": {"segment_sample_size": 5000},
}


def _merged(base: dict, overrides: Mapping) -> dict:
    for key, value in overrides.items():
        base[key] = _merged(base[key], value) if isinstance(value, Mapping) else value
    return base


def _settings_file(path) -> config.Settings:
    """config/settings.yml with OVERRIDES, written for the DAG's `seg run` (SEG_CONFIG); returns it loaded, which
    checks it as the subprocess will."""
    document = _merged(yaml.safe_load(config.DEFAULT_SETTINGS.read_text()), OVERRIDES)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEG_CONFIG", str(path))
        written = config.load(path.parent / "unused")
    expected = config.load(path.parent / "unused").with_overrides(OVERRIDES)
    assert (written.ml, written.drift) == (expected.ml, expected.drift)
    return written


def _stages(settings, day: dt.date) -> dict[str, str]:
    path = settings.paths.reports / "stage_metrics" / f"{day.isoformat()}.jsonl"
    return {r["stage"]: r["status"] for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    from seg.generate import run as generate

    root = tmp_path_factory.mktemp("drift_dag")
    settings_file = root / "settings.yml"
    _settings_file(settings_file)
    data = root / "data"
    settings = config.load(data)
    generate(settings.paths, customers=CUSTOMERS, days=HISTORY_DAYS + TAIL_DAYS, end=SHIFT + dt.timedelta(days=TAIL_DAYS),
             seed=5, drift_from=SHIFT)
    proc = seg_run(data, "run", "--date", SHIFT.isoformat(), "--days", str(len(DAYS)),
                   env={"SEG_CONFIG": str(settings_file)}, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return config.load(data), proc


def _report(settings, day: dt.date) -> dict:
    return json.loads((settings.paths.reports / "drift" / day.isoformat() / settings.lens / "drift_report.json")
                      .read_text())


@pytest.mark.parametrize("lens", ["profile", "behaviour"])
def test_the_dag_trains_without_a_champion_then_reuses_it_while_nothing_drifts(shifted, lens):
    settings, _ = shifted
    settings = settings.for_lens(lens)
    first, second = (_stages(settings, d) for d in DAYS[:2])
    assert first.get(f"{lens}.train") == "success" and f"{lens}.load_champion" not in first
    assert second.get(f"{lens}.load_champion") == "success" and f"{lens}.train" not in second
    report = _report(settings, DAYS[1])
    assert report["decision"] != "retrain", report["reasons"]


# The day's channel mix is one of each lens's drift signals (ml/drift/rules.py): both lenses act on it.
@pytest.mark.parametrize("lens", ["profile", "behaviour"])
def test_a_behaviour_change_makes_the_dag_retrain_early_and_promote_the_new_model(shifted, lens):
    settings, proc = shifted
    settings = settings.for_lens(lens)
    stages = _stages(settings, SHIFT)
    assert stages.get(f"{lens}.drift_report") == "success"
    assert stages.get(f"{lens}.train") == "success" and f"{lens}.load_champion" not in stages, stages
    report = _report(settings, SHIFT)
    assert report["decision"] == "retrain"
    assert any(r.startswith("behaviour changed: today's orders.channel") for r in report["reasons"]), report["reasons"]
    # the decision and its reasons are queryable next to every other day's
    decisions = {d: (decision, reasons) for d, decision, reasons in query(
        settings, "select as_of_date, decision, reasons from monitoring.drift_decisions where segmentation = ? "
                  "order by 1", [lens])}
    assert set(decisions) == set(DAYS)
    assert decisions[SHIFT][0] == "retrain" and "behaviour changed" in decisions[SHIFT][1]

    from ml import tracking

    trained = tracking.version_trained_on(settings, SHIFT)
    champion = tracking.champion_version(settings)
    assert trained is not None and champion is not None
    assert champion.version == trained.version, (champion.tags, trained.tags)
    assert "today's fit sample" in trained.tags.get("promotion_reason", "")
    # the day's segments were assigned by the model trained that day
    (version,) = query(settings, "select distinct model_version from marts.customer_segments where segmentation = ?",
                       [lens])[0]
    assert str(version) == str(trained.version)
