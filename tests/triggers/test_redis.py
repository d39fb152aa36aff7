"""The Redis publication (seg.triggers.redis) against the real local server, DB 15, keys under a per-test prefix:
nothing lives forever but the live version and the pointers, an older evaluation never becomes current, the change
stream loses nothing and adds nothing twice, an unreachable Redis fails clearly within the configured timeouts,
the benchmark never writes under the production prefix, and no key name carries a member identifier."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import threading
import time
import uuid

import pytest
import yaml

from seg.core import config
from seg.triggers import definitions
from seg.triggers import redis as trigger_redis

REDIS_URL = "redis://127.0.0.1:6379/15"  # DB 15: these tests' own database; keys under a per-test prefix
T1 = dt.datetime(2026, 11, 3, 12, 0)
T2 = T1 + dt.timedelta(minutes=15)
PII = ("email:alice@example.com", "customer_id:C00000001", "loyalty_id:L-77", "anonymous_id:dev-42")


@pytest.fixture
def r():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def _unlink_all(r, pattern: str) -> None:
    keys = list(r.scan_iter(pattern, count=10_000))
    for i in range(0, len(keys), 5000):
        r.unlink(*keys[i:i + 5000])


@pytest.fixture
def prefix(r):
    prefix = f"test:redis:{uuid.uuid4().hex[:10]}"
    yield prefix
    _unlink_all(r, f"{prefix}:*")


def _value(trigger: str, person_id: str | None = None) -> str:
    return json.dumps({"segment_name": trigger.title(), "priority": 1, "entered_at": "2026-11-03T10:00:00.000000",
                       "expires_at": "2026-11-05T10:00:00.000000", "person_id": person_id})


def _rows(members=PII, triggers=("cart_abandonment", "lapsing")) -> list[tuple[str, str, str]]:
    return sorted((m, t, _value(t)) for m in members for t in triggers)


def _seen(rows) -> dict:
    return {(m, t): {**json.loads(v), "in_segment_set": True} for m, t, v in rows}


def _version_keys(r, prefix: str, version: str) -> list[bytes]:
    return list(r.scan_iter(f"{prefix}:v:{version}:*", count=10_000))


# 1. TTLs ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("crash", ["mid_write", "before_switch"])
def test_a_version_left_by_a_publish_that_died_is_deleted_by_a_later_publish(r, prefix, monkeypatch, crash):
    many = [f"customer_id:C{i:08d}" for i in range(12)]

    def dying_rows():
        for i, row in enumerate(_rows(many)):
            if i == 22:
                raise RuntimeError("crashed")
            yield row

    def dying_switch(*args, **kwargs):
        raise RuntimeError("crashed")

    with monkeypatch.context() as m:
        m.setattr(trigger_redis, "CHUNK", 1)  # ... so that the first chunks reach Redis before the crash
        if crash == "before_switch":
            m.setattr(trigger_redis, "switch", dying_switch)
        with pytest.raises(RuntimeError, match="crashed"):
            trigger_redis.publish_rows(r, prefix, T1, dying_rows() if crash == "mid_write" else _rows(many))
    assert r.get(f"{prefix}:current") is None
    orphan = {k.decode().split(":v:")[1].split(":")[0] for k in r.scan_iter(f"{prefix}:v:*", count=10_000)}
    assert len(orphan) == 1
    (orphan,) = orphan
    trigger_redis.publish_rows(r, prefix, T1, _rows())
    assert _version_keys(r, prefix, orphan), "a version younger than redis.unpublished_grace may still be written"
    r.zadd(f"{prefix}:pending", {orphan: 0})  # ... an older one was left by a publish that died
    trigger_redis.publish_rows(r, prefix, T2, _rows())
    assert _version_keys(r, prefix, orphan) == []


def test_a_superseded_version_is_deleted_once_its_grace_is_over_and_nothing_else_stays(r, prefix):
    first = trigger_redis.publish_rows(r, prefix, T1, _rows(), keep=3)["version"]
    second = trigger_redis.publish_rows(r, prefix, T2, _rows(PII[:3]), keep=3)["version"]
    assert _version_keys(r, prefix, first), "kept for readers holding its pointer"
    r.hset(f"{prefix}:v:{first}:meta", "superseded_at", 0)  # superseded for longer than redis.superseded_grace
    live = trigger_redis.publish_rows(r, prefix, T2 + dt.timedelta(minutes=15), _rows(PII[:2]), keep=3)["version"]
    trigger_redis.publish_changes(r, prefix, T2, [("entered", "lapsing", PII[0], None, T2, None)], 1000)
    assert _version_keys(r, prefix, first) == []
    assert _version_keys(r, prefix, second), "superseded within its grace"
    names = {k.decode().removeprefix(prefix + ":") for k in r.scan_iter(f"{prefix}:*", count=10_000)}
    version_keys = {k.decode().removeprefix(prefix + ":") for v in (second, live) for k in _version_keys(r, prefix, v)}
    assert names - version_keys == {"current", "current_at", "versions", "version_seq", "changes",
                                    f"changes:batch:{T2:%Y%m%dT%H%M%S.%f}"}
    assert r.ttl(f"{prefix}:changes:batch:{T2:%Y%m%dT%H%M%S.%f}") > 0
    assert trigger_redis.read_current(r, prefix) == _seen(_rows(PII[:2]))


def test_versions_beyond_keep_are_deleted_at_the_switch(r, prefix):
    versions = [trigger_redis.publish_rows(r, prefix, T1 + dt.timedelta(minutes=15 * i), _rows(), keep=2)["version"]
                for i in range(3)]
    assert _version_keys(r, prefix, versions[0]) == []
    assert [v.decode() for v in r.lrange(f"{prefix}:versions", 0, -1)] == versions[:0:-1]


def test_an_incomplete_version_is_refused_by_the_switch(r, prefix):
    trigger_redis.write_version(r, prefix, "gone", _rows(), T1)
    r.hdel(f"{prefix}:v:gone:meta", "memberships")  # written last: its publish did not finish
    with pytest.raises(RuntimeError, match="incomplete"):
        trigger_redis.switch(r, prefix, "gone", T1)
    assert r.get(f"{prefix}:current") is None and _version_keys(r, prefix, "gone") == []


def test_versions_published_before_hashed_key_names_are_deleted_too_and_their_pointer_holds(r, prefix):
    legacy = f"{T2:%Y%m%dT%H%M%S}.1"
    base = f"{prefix}:v:{legacy}"  # the layout before #14: member hashes named by the member key in clear
    r.sadd(f"{base}:members", *PII)
    for m in PII:
        r.hset(f"{base}:member:{m}", "lapsing", _value("lapsing"))
    r.sadd(f"{base}:segment:lapsing", *PII)
    r.hset(f"{base}:meta", mapping={"evaluated_at": T2.isoformat(), "memberships": len(PII), "segments": '["lapsing"]'})
    r.set(f"{prefix}:current", legacy)
    r.lpush(f"{prefix}:versions", legacy)
    assert not trigger_redis.publish_rows(r, prefix, T1, _rows())["switched"]  # no current_at: the name's time
    assert r.get(f"{prefix}:current").decode() == legacy
    assert trigger_redis.publish_rows(r, prefix, T2, _rows())["switched"]
    assert len(_version_keys(r, prefix, legacy)) == len(PII) + 3  # superseded: kept for readers of its pointer
    trigger_redis.publish_rows(r, prefix, T2, _rows())
    assert _version_keys(r, prefix, legacy) == []
    assert trigger_redis.read_current(r, prefix) == _seen(_rows())


# 2. a monotonic pointer ------------------------------------------------------------------------------------------

def test_a_publish_for_an_older_evaluation_time_does_not_replace_the_current_one(r, prefix):
    newer = trigger_redis.publish_rows(r, prefix, T2, _rows(PII[:1]), keep=2)
    older = trigger_redis.publish_rows(r, prefix, T1, _rows(PII), keep=2)
    assert r.get(f"{prefix}:current").decode() == newer["version"]
    assert trigger_redis.read_current(r, prefix) == _seen(_rows(PII[:1]))
    assert not older.get("switched", True)
    assert _version_keys(r, prefix, older["version"]) == []  # the refused version is not left behind
    # the same evaluation time again (a re-run) does replace it
    rerun = trigger_redis.publish_rows(r, prefix, T2, _rows(PII[:3]), keep=2)
    assert r.get(f"{prefix}:current").decode() == rerun["version"]
    assert trigger_redis.read_current(r, prefix) == _seen(_rows(PII[:3]))


# 3. a lossless, idempotent change stream -------------------------------------------------------------------------

def _changes(at: dt.datetime, members) -> list[tuple]:
    return [("entered", "cart_abandonment", m, None, at - dt.timedelta(minutes=5), None) for m in members] + [
        ("exited", "lapsing", m, "person-1", at, "reactivated") for m in members]


def _stream(r, prefix) -> list[tuple[str, str, str]]:
    return [(f[b"evaluated_at"].decode(), f[b"change"].decode(), f[b"member_key"].decode())
            for _, f in r.xrange(f"{prefix}:changes")]


def _expected(at, changes) -> list[tuple[str, str, str]]:
    return [(at.isoformat(), c[0], c[2]) for c in changes]


def test_a_batch_interrupted_mid_way_is_completed_by_the_rerun_without_duplicates(r, prefix, monkeypatch):
    monkeypatch.setattr(trigger_redis, "CHUNK", 3)
    changes = _changes(T1, PII)  # 8 changes: chunks of 3

    def interrupted():
        for i, change in enumerate(changes):
            if i == 5:
                raise ConnectionError("lost the warehouse cursor")
            yield change

    with pytest.raises(ConnectionError):
        trigger_redis.publish_changes(r, prefix, T1, interrupted(), 1000)
    trigger_redis.publish_changes(r, prefix, T1, changes, 1000)
    trigger_redis.publish_changes(r, prefix, T1, changes, 1000)  # and a second re-run adds nothing
    assert _stream(r, prefix) == _expected(T1, changes)


def test_a_batch_for_an_earlier_evaluation_time_published_after_a_later_one_is_not_dropped(r, prefix):
    later, earlier = _changes(T2, PII[:2]), _changes(T1, PII[2:])
    trigger_redis.publish_changes(r, prefix, T2, later, 1000)
    trigger_redis.publish_changes(r, prefix, T1, earlier, 1000)
    trigger_redis.publish_changes(r, prefix, T1, earlier, 1000)
    assert _stream(r, prefix) == _expected(T2, later) + _expected(T1, earlier)


# 4. timeouts: fail clearly when Redis is unreachable --------------------------------------------------------------

def _config_with(tmp_path, **redis_options) -> definitions.TriggerConfig:
    raw = yaml.safe_load(definitions.DEFAULT_FILE.read_text())
    raw["redis"].update(redis_options)
    path = tmp_path / "triggers.yml"
    path.write_text(yaml.safe_dump(raw))
    return definitions.load(path)


def test_the_redis_timeouts_are_read_from_the_definitions(tmp_path):
    cfg = _config_with(tmp_path, connect_timeout_s=1.5, socket_timeout_s=7)
    assert (cfg.redis_connect_timeout_s, cfg.redis_socket_timeout_s) == (1.5, 7.0)
    with pytest.raises(ValueError, match="socket_timeout_s"):
        _config_with(tmp_path, socket_timeout_s=0)


def _publish_in_thread(settings, at, cfg, url, wait_s: float) -> dict:
    out: dict = {}

    def target():
        t0 = time.monotonic()
        try:
            out["result"] = trigger_redis.publish_redis(settings, at, cfg, url=url)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out["error"] = exc
        out["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(wait_s)
    out["alive"] = thread.is_alive()
    return out


def test_a_redis_that_accepts_but_never_answers_fails_the_publish_within_the_timeouts(lake_copy, tmp_path, prefix):
    from seg.triggers.batch import evaluate_and_write

    cfg = dataclasses.replace(_config_with(tmp_path, connect_timeout_s=0.5, socket_timeout_s=0.5),
                              redis_prefix=prefix)
    evaluate_and_write(lake_copy, T1, cfg)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    port = silent.getsockname()[1]
    try:
        out = _publish_in_thread(lake_copy, T1, cfg, f"redis://:s3cret@127.0.0.1:{port}/15", wait_s=20)
    finally:
        silent.close()
    assert not out["alive"], "publish_redis was still waiting for Redis after 20 s"
    assert type(out.get("error")).__name__ == "RedisUnavailable", out
    assert out["seconds"] < 4, out  # 3 attempts of 0.5 s, not the client library's default timeouts and retries
    error = out["error"]
    assert f"127.0.0.1:{port}" in str(error) and "socket_timeout_s" in str(error) and "s3cret" not in str(error)


def test_an_unreachable_redis_fails_clearly_before_the_warehouse_is_read(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    settings = config.load(tmp_path / "no_warehouse")  # reading the warehouse would fail: there is none
    out = _publish_in_thread(settings, T1, definitions.load(), f"redis://127.0.0.1:{port}/15", wait_s=20)
    assert not out["alive"]
    assert type(out.get("error")).__name__ == "RedisUnavailable", out
    error = out["error"]
    assert f"127.0.0.1:{port}" in str(error) and "config/triggers.yml" in str(error)


# 5. the benchmark has its own prefix ------------------------------------------------------------------------------

def test_the_bench_refuses_to_publish_under_the_production_prefix(r):
    from seg.bench.triggers import redis_publish

    production = definitions.load().redis_prefix
    before = r.dbsize()
    for bad in (production, f"{production}:bench"):
        with pytest.raises(ValueError, match="production"):
            redis_publish(REDIS_URL, memberships=10, prefix=bad)
    assert r.dbsize() == before


def test_the_bench_micro_batch_publishes_under_its_own_prefix_and_cleans_up(r, tmp_path, monkeypatch):
    from seg.bench.triggers import run

    production = f"test:production:{uuid.uuid4().hex[:10]}"  # stands in for the deployment's seg:triggers
    raw = yaml.safe_load(definitions.DEFAULT_FILE.read_text())
    raw["redis"]["key_prefix"] = production
    (tmp_path / "triggers.yml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SEG_TRIGGERS_CONFIG", str(tmp_path / "triggers.yml"))
    before = {k for k in r.scan_iter("bench:*", count=10_000)}
    try:
        out = run(customers=300, days=3, end=dt.date(2026, 11, 2), events=10**9, data_dir=tmp_path / "data",
                  redis_url=REDIS_URL, memberships=100, through_airflow=False)
        leaked = list(r.scan_iter(f"{production}:*", count=10_000))
        assert leaked == [], f"the bench wrote {len(leaked)} keys under the production prefix"
        assert out["micro_batch"]["active_memberships"] > 0 and out["redis_publish"]["memberships"] == 100
        assert {k for k in r.scan_iter("bench:*", count=10_000)} == before  # the bench's own keys are removed
    finally:
        _unlink_all(r, f"{production}:*")


# 6. no member identifier in a key name ---------------------------------------------------------------------------

def test_no_key_name_contains_a_member_identifier(r, prefix):
    rows = _rows()
    trigger_redis.publish_rows(r, prefix, T1, rows, keep=2)
    trigger_redis.publish_rows(r, prefix, T2, rows, keep=2)
    trigger_redis.publish_changes(r, prefix, T2, _changes(T2, PII), 1000)
    names = [k.decode() for k in r.scan_iter(f"{prefix}:*", count=10_000)]
    assert names
    for member in PII:
        for part in (member, member.split(":", 1)[1]):
            assert not [n for n in names if part in n], f"{part!r} in a key name"
    assert not [n for n in names if "@" in n]
    assert trigger_redis.read_current(r, prefix) == _seen(rows)
