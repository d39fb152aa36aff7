"""The trigger micro-batch DAG through Airflow (`seg triggers run` = dag.test() in a subprocess) on generated data:
it lands the day's files, evaluates, publishes to the real local Redis (equal to the tables), and a re-run of the
same interval changes nothing."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid

import pytest

from seg.core import config

from .conftest import END, as_generator_deployment, query, seg_run

pytestmark = pytest.mark.e2e
REDIS_URL = "redis://127.0.0.1:6379/13"  # DB 13: this test's own database; keys under a per-run prefix
AT = dt.datetime.combine(END, dt.time(10, 15))


STATE_TABLES = ("marts.trigger_membership_history", "marts.trigger_memberships", "marts.trigger_membership_changes",
                "triggers.runs")
# triggers.runs: when the batch finished and how long its steps took are the run's timing, not its result
RUNS_TIMING_COLUMNS = ("finished_at", "seconds")


def _without_timings(value):
    """A triggers.runs summary without its timing entries (`*_s`, `seconds`, `timings`, `steps`: seconds per step)."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not (k.endswith("_s") or k in ("seconds", "timings", "steps"))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def snapshot(settings, r, prefix: str) -> dict:
    """The trigger state as plain (copied) values: every row of the trigger tables (triggers.runs minus its timing
    columns, its summary without timings, and the Redis version it published, which a rerun renews by design), and
    the Redis keys under `prefix` (see `redis_state`: a rerun publishes a new version by design, so the current
    version's keys are compared under a placeholder name)."""
    state = {}
    for table in STATE_TABLES:
        columns = [c for (c,) in query(settings, f"select column_name from (describe {table})")
                   if not (table == "triggers.runs" and c in RUNS_TIMING_COLUMNS)]
        rows = query(settings, f"select {', '.join(columns)} from {table} order by all")
        if table == "triggers.runs":
            at = columns.index("summary")
            rows = [(*row[:at], _normalise_summary(row[at]), *row[at + 1:]) for row in rows]
        state[table] = sorted(rows, key=repr)
    # the version name is not compared: a rerun publishes a new version by design
    state["redis"] = redis_state(r, prefix, r.get(f"{prefix}:current").decode())
    return state


def redis_state(r, prefix: str, version: str) -> dict:
    """Every key under `prefix` with its value (by type), but the publication bookkeeping (`current`, `versions`,
    `version_seq`, `pending`) and other versions than the current one; the version name becomes `<v>`."""
    out = {}
    for raw in r.scan_iter(f"{prefix}:*", count=10_000):
        key = raw.decode().removeprefix(f"{prefix}:")
        if key in ("current", "versions", "version_seq", "pending"):
            continue
        if key.startswith("v:") and not key.startswith(f"v:{version}:"):  # older versions
            continue
        kind = r.type(raw).decode()
        if kind == "string":
            value = r.get(raw)
        elif kind == "hash":
            value = dict(r.hgetall(raw))
        elif kind == "set":
            value = sorted(r.smembers(raw))
        elif kind == "zset":
            value = r.zrange(raw, 0, -1, withscores=True)
        elif kind == "list":
            value = r.lrange(raw, 0, -1)
        elif kind == "stream":
            value = [(i, dict(f)) for i, f in r.xrange(raw)]
        else:
            value = kind
        out[key.replace(f"v:{version}:", "v:<v>:")] = repr(value).replace(version, "<v>")
    return out


def _normalise_summary(text: str):
    summary = _without_timings(json.loads(text))
    if isinstance(summary.get("redis"), dict):
        summary["redis"].pop("version", None)  # a new version per publication (see snapshot)
        summary["redis"].pop("dropped_versions", None)
    return summary


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
    settings, r = config.load(root), redis.Redis.from_url(REDIS_URL)
    first = seg_run(root, "triggers", "run", "--at", AT.isoformat(), env=env)
    after_first = snapshot(settings, r, prefix)  # captured before the rerun: a separate copy, not the same object
    rerun = seg_run(root, "triggers", "run", "--at", AT.isoformat(), env=env)
    after_rerun = snapshot(settings, r, prefix)
    yield settings, [first, rerun], r, prefix, (after_first, after_rerun)
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}:*", count=10_000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i:i + 5000])


def test_the_micro_batch_dag_runs_its_three_tasks_through_airflow(ran):
    _, runs, _, _, _ = ran
    for proc in runs:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        for task in ("land_recent", "evaluate_triggers", "publish_redis"):
            assert any(task in line and "success" in line for line in proc.stdout.splitlines()), proc.stdout[-2000:]


def test_the_day_was_landed_and_memberships_published_to_redis_equal_the_table(ran):
    from seg.triggers.redis import read_current

    settings, _, r, prefix, _ = ran
    assert (settings.paths.raw / "events" / f"ingest_date={END.isoformat()}").is_dir()
    rows = query(settings, "select member_key, trigger from marts.trigger_memberships")
    assert len(rows) > 50
    assert set(read_current(r, prefix)) == set(rows)
    runs = query(settings, "select evaluated_at from triggers.runs")
    assert runs == [(AT,)]


def test_rerunning_the_same_interval_changes_nothing(ran):
    settings, runs, r, prefix, (after_first, after_rerun) = ran
    assert runs[1].returncode == 0, runs[1].stdout[-3000:] + runs[1].stderr[-3000:]
    # the first run produced something to compare: rows in every table, a published version and a changes stream
    for table in STATE_TABLES:
        assert after_first[table], f"{table} is empty after the first run"
    assert any(":member:" in k for k in after_first["redis"]) and "changes" in after_first["redis"]
    assert after_first is not after_rerun
    for key in after_first:
        assert after_rerun[key] == after_first[key], f"the rerun of {AT} changed {key}"
    first_seen = query(settings, "select distinct first_seen_at from marts.trigger_membership_history")
    assert first_seen == [(AT,)]
    assert r.xlen(f"{prefix}:changes") == len(after_rerun["marts.trigger_membership_changes"])
