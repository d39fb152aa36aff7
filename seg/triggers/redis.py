"""Publish current trigger memberships (marts.trigger_memberships) and this batch's changes to Redis.

Key layout (prefix from config/triggers.yml `redis.key_prefix`, default `seg:triggers`):

    <p>:current                       STRING  the published version, e.g. 20261102T101500.7
    <p>:v:<ver>:segment:<trigger>     SET     member keys in that trigger segment
    <p>:v:<ver>:member:<member_key>   HASH    trigger -> JSON {segment_name, priority, entered_at, expires_at, person_id}
                                              (times as YYYY-MM-DDTHH:MM:SS.ffffff, UTC)
    <p>:v:<ver>:members               SET     every member key of the version (used to delete it later)
    <p>:v:<ver>:meta                  HASH    evaluated_at, memberships, segments (JSON list of triggers)
    <p>:versions                      LIST    published versions, newest first
    <p>:version_seq                   STRING  counter making versions unique
    <p>:changes                       STREAM  entered / exited / retracted per micro-batch, id = <evaluated_at ms>-<n>

Readers GET <p>:current, then read keys under that version. A new version is written completely (pipelined,
non-transactional), then <p>:current and <p>:versions are switched in one MULTI/EXEC, so a reader sees either
the old or the new version, never a mix. Versions beyond `keep_versions` are deleted afterwards. member_key is
the resolved person_id when identity resolution knows the person, else 'customer_id:...', 'email:...',
'loyalty_id:...' or 'anonymous_id:...'.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from seg.core.config import Settings
from seg.core.warehouse import connect_waiting
from seg.triggers import definitions
from seg.triggers.tables import CHANGES, CURRENT, ts

CHUNK = 10_000
# the value of a member's hash field: JSON built in SQL (strftime keeps the ISO form Python's isoformat gives)
VALUE_SQL = ("json_object('segment_name', segment_name, 'priority', priority, "
             "'entered_at', strftime(entered_at, '%Y-%m-%dT%H:%M:%S.%f'), "
             "'expires_at', strftime(expires_at, '%Y-%m-%dT%H:%M:%S.%f'), 'person_id', person_id)::varchar")


def client(url: str):
    import redis

    return redis.Redis.from_url(url)


def _ms(at: dt.datetime) -> int:
    return int(at.replace(tzinfo=dt.UTC).timestamp() * 1000)


# One EVAL per chunk: the per-command cost of a client-side pipeline (1 M HSETs) dominates otherwise.
# (On Redis Cluster the keys of a chunk would need one hash slot: wrap the version in {braces} there.)
_HSET_MANY = """
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])
end
return #KEYS
"""


def _pack(args) -> bytes:
    """One command in RESP; redis-py's generic packer costs ~10 us per argument, this ~1 us."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _RawPipe:
    """Pipelined commands packed by hand, sent every `flush_every` commands; replies are read and errors raised."""

    def __init__(self, r, flush_every: int = 20):
        self.r, self.flush_every, self.buffer = r, flush_every, []

    def add(self, *args) -> None:
        self.buffer.append(_pack(args))
        if len(self.buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        conn = self.r.connection_pool.get_connection()
        try:
            conn.send_packed_command(self.buffer)
            errors = []
            for _ in self.buffer:
                try:
                    conn.read_response()
                except Exception as exc:  # keep reading so the connection stays in sync
                    errors.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            self.r.connection_pool.release(conn)
        self.buffer = []
        if errors:
            raise errors[0]


def write_version(r, prefix: str, version: str, rows, at: dt.datetime) -> int:
    """rows: iterable of (member_key, trigger, value_json). Writes the version's keys; returns the row count."""
    base = f"{prefix}:v:{version}"
    sha = r.script_load(_HSET_MANY)
    pipe = _RawPipe(r)
    by_segment: dict[str, list[str]] = {}
    members: set[str] = set()
    keys: list[str] = []
    args: list[str] = []
    n = 0
    for member_key, trigger, value in rows:
        keys.append(f"{base}:member:{member_key}")
        args.append(trigger)
        args.append(value)
        by_segment.setdefault(trigger, []).append(member_key)
        members.add(member_key)
        n += 1
        if len(keys) >= CHUNK:
            pipe.add("EVALSHA", sha, len(keys), *keys, *args)
            keys, args = [], []
    if keys:
        pipe.add("EVALSHA", sha, len(keys), *keys, *args)
    for trigger, ids in by_segment.items():
        for i in range(0, len(ids), CHUNK):
            pipe.add("SADD", f"{base}:segment:{trigger}", *ids[i:i + CHUNK])
    member_list = list(members)
    for i in range(0, len(member_list), CHUNK):
        pipe.add("SADD", f"{base}:members", *member_list[i:i + CHUNK])
    pipe.add("HSET", f"{base}:meta", "evaluated_at", at.isoformat(), "memberships", n,
             "segments", json.dumps(sorted(by_segment)))
    pipe.flush()
    return n


# Deletes a version's member hashes server side, CHUNK members per call (SPOP empties the member set as it goes).
_DROP_MEMBERS = """
local members = redis.call('SPOP', KEYS[1], ARGV[2])
for _, m in ipairs(members) do
  redis.call('UNLINK', ARGV[1] .. m)
end
return #members
"""


def drop_version(r, prefix: str, version: str) -> None:
    base = f"{prefix}:v:{version}"
    drop = r.register_script(_DROP_MEMBERS)
    while drop(keys=[f"{base}:members"], args=[f"{base}:member:", CHUNK]):
        pass
    meta = r.hget(f"{base}:meta", "segments")
    segments = [f"{base}:segment:{trigger}" for trigger in (json.loads(meta) if meta else [])]
    r.unlink(*segments, f"{base}:members", f"{base}:meta")


def switch(r, prefix: str, version: str, keep: int) -> list[str]:
    """Point readers at `version` atomically; delete versions beyond `keep`. Returns the dropped versions."""
    with r.pipeline(transaction=True) as pipe:
        pipe.set(f"{prefix}:current", version)
        pipe.lpush(f"{prefix}:versions", version)
        pipe.execute()
    old = [v.decode() for v in r.lrange(f"{prefix}:versions", keep, -1)]
    for v in old:
        drop_version(r, prefix, v)
    if old:
        r.ltrim(f"{prefix}:versions", 0, keep - 1)
    return old


def publish_changes(r, prefix: str, at: dt.datetime, changes, maxlen: int) -> int:
    """XADD this batch's changes with ids <at ms>-<n>; a batch already in the stream (a re-run) is not re-added."""
    stream = f"{prefix}:changes"
    ms = _ms(at)
    last = r.xrevrange(stream, count=1)
    if last and int(last[0][0].decode().split("-")[0]) >= ms:
        return 0
    pipe = r.pipeline(transaction=False)
    n = 0
    for n, (change, trigger, member_key, person_id, changed_at, exit_reason) in enumerate(changes, start=1):
        fields = {"change": change, "trigger": trigger, "member_key": member_key, "at": changed_at.isoformat(),
                  "evaluated_at": at.isoformat()}
        if person_id:
            fields["person_id"] = person_id
        if exit_reason:
            fields["exit_reason"] = exit_reason
        pipe.xadd(stream, fields, id=f"{ms}-{n}", maxlen=maxlen, approximate=True)
        if n % CHUNK == 0:
            pipe.execute()
    pipe.execute()
    return n


def publish_rows(r, prefix: str, at: dt.datetime, rows, keep: int = 2) -> dict:
    start = time.monotonic()
    version = f"{at:%Y%m%dT%H%M%S}.{r.incr(f'{prefix}:version_seq')}"
    n = write_version(r, prefix, version, rows, at)
    written = time.monotonic() - start
    dropped = switch(r, prefix, version, keep)
    return {"version": version, "memberships": n, "write_s": round(written, 3),
            "seconds": round(time.monotonic() - start, 3), "dropped_versions": dropped}


def publish_redis(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
                  url: str | None = None) -> dict:
    """Read the current memberships and this batch's changes from the warehouse (read only, waiting for a writer
    up to the definitions' lock_timeout_s) and publish them."""
    cfg = cfg or definitions.load()
    url = url or settings.redis_url
    if not url:
        return {"skipped": "SEG_REDIS_URL is not set: tables only"}
    con = connect_waiting(settings, read_only=True, timeout_s=cfg.lock_timeout_s)
    try:
        rows = con.execute(f"select member_key, trigger, {VALUE_SQL} from {CURRENT} order by member_key, trigger").fetchall()
        changes = con.execute(f"select change, trigger, member_key, person_id, changed_at, exit_reason from {CHANGES} "
                              f"where evaluated_at = {ts(at)} order by change, trigger, member_key").fetchall()
    finally:
        con.close()
    r = client(url)
    out = publish_rows(r, cfg.redis_prefix, at, rows, cfg.keep_versions)
    out["changes_streamed"] = publish_changes(r, cfg.redis_prefix, at, changes, cfg.stream_maxlen)
    return out


def read_current(r, prefix: str) -> dict[tuple[str, str], dict]:
    """What a reader sees: {(member_key, trigger): value} of the current version (used by tests and tools)."""
    version = r.get(f"{prefix}:current")
    if version is None:
        return {}
    base = f"{prefix}:v:{version.decode()}"
    out = {}
    members = [m.decode() for m in r.smembers(f"{base}:members")]
    pipe = r.pipeline(transaction=False)
    for m in members:
        pipe.hgetall(f"{base}:member:{m}")
    for m, fields in zip(members, pipe.execute(), strict=True):
        for trigger, value in fields.items():
            out[(m, trigger.decode())] = json.loads(value)
    for trigger in json.loads(r.hget(f"{base}:meta", "segments") or "[]"):
        for m in r.smembers(f"{base}:segment:{trigger}"):
            out.setdefault((m.decode(), trigger), {})["in_segment_set"] = True
    return out
