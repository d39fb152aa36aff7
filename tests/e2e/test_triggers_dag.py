"""The trigger micro-batch DAG through Airflow (`seg triggers run` = dag.test() in a subprocess) on generated data:
it lands the day's files, evaluates, publishes to the real local Redis (equal to the tables), and a re-run of the
same interval changes nothing."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid

import pytest

from seg.core import config

from .conftest import END, as_generator_deployment, query, seg_run

pytestmark = pytest.mark.e2e
REDIS_URL = "redis://127.0.0.1:6379/13"  # DB 13: this test's own database; keys under a per-run prefix
AT = dt.datetime.combine(END, dt.time(10, 15))


@pytest.fixture(scope="module")
def ran(generated_lake, tmp_path_factory):
    import redis

    root = tmp_path_factory.mktemp("e2e_triggers") / "data"
    shutil.copytree(generated_lake.paths.incoming, root / "incoming")
    as_generator_deployment(root)
    prefix = f"test:e2e:{uuid.uuid4().hex[:10]}"
    triggers_yml = root / "triggers.yml"
    text = (config.REPO_ROOT / "config" / "triggers.yml").read_text().replace('key_prefix: "seg:triggers"', f'key_prefix: "{prefix}"')
    assert prefix in text
    triggers_yml.write_text(text)
    env = {"SEG_REDIS_URL": REDIS_URL, "SEG_TRIGGERS_CONFIG": str(triggers_yml)}
    # the days before the micro-batch's are the daily DAG's to land: land them without Airflow
    assert seg_run(root, "land", "--date", (END - dt.timedelta(days=2)).isoformat()).returncode == 0
    runs = [seg_run(root, "triggers", "run", "--at", AT.isoformat(), env=env) for _ in range(2)]
    yield config.load(root), runs, redis.Redis.from_url(REDIS_URL), prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i:i + 5000])


def test_the_micro_batch_dag_runs_its_three_tasks_through_airflow(ran):
    _, runs, _, _ = ran
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        for task in ("land_recent", "evaluate_triggers", "publish_redis"):
            assert any(task in line and "success" in line for line in proc.stdout.splitlines()), proc.stdout[-2000:]


def test_the_day_was_landed_and_memberships_published_to_redis_equal_the_table(ran):
    from seg.triggers.redis import read_current

    settings, _, r, prefix = ran
    assert (settings.paths.raw / "events" / f"ingest_date={END.isoformat()}").is_dir()
    rows = query(settings, "select member_key, trigger from marts.trigger_memberships")
    assert len(rows) > 50
    assert set(read_current(r, prefix)) == set(rows)
    runs = query(settings, "select evaluated_at from triggers.runs")
    assert runs == [(AT,)]


def test_rerunning_the_same_interval_changes_nothing(ran):
    settings, _, r, prefix = ran
    first_seen = query(settings, "select distinct first_seen_at from marts.trigger_membership_history")
    assert first_seen == [(AT,)]
    assert r.xlen(f"{prefix}:changes") == query(settings, "select count(*) from marts.trigger_membership_changes")[0][0]
