"""Publish current trigger memberships (marts.trigger_memberships) and this batch's changes to Redis.

Key layout (prefix from config/triggers.yml `redis.key_prefix`, default `seg:triggers`):

    <p>:current                       STRING  the published version, e.g. 20261102T101500.7
    <p>:current_at                    STRING  its evaluation time (microseconds since the epoch, UTC)
    <p>:versions                      LIST    switched-to versions, newest first
    <p>:version_seq                   STRING  counter making versions unique
    <p>:pending                       ZSET    versions being written (score: their start, ms, server clock)
    <p>:v:<ver>:segment:<trigger>     SET     member keys in that trigger segment
    <p>:v:<ver>:member:<sha1(member_key)>
                                      HASH    trigger -> JSON {segment_name, priority, entered_at, expires_at, person_id}
                                              (times as YYYY-MM-DDTHH:MM:SS.ffffff, UTC)
    <p>:v:<ver>:members               SET     every member key of the version (used to expire / delete it)
    <p>:v:<ver>:meta                  HASH    evaluated_at, memberships, segments (JSON list of triggers), key_names,
                                              superseded_at (ms, server clock) once another version is current
    <p>:changes                       STREAM  entered / exited / retracted per micro-batch (auto ids); fields change,
                                              trigger, member_key, at, evaluated_at, seq (1.. within the batch),
                                              person_id and exit_reason when set
    <p>:changes:batch:<at>            STRING  how many of that batch's changes are in the stream

Key names hold no member identifier: a member's hash is named by the SHA-1 hex of its member key (member_key_name(),
redis.sha1hex in Lua); the member key itself (the resolved person_id, else an identifier key as seg.triggers.sql
builds it) is only ever a set member, a stream value or the input of that name. Readers GET <p>:current, then read
keys under that version (HGETALL <p>:v:<ver>:member:<sha1(member_key)>, SISMEMBER a segment).

Lifetimes: a version is registered in <p>:pending before its first key is written, then written completely
(pipelined, non-transactional); one Lua script then makes it current, atomically: it refuses a version evaluated
before the current one (a late or re-ordered run never turns the clock back; the same time again, a re-run,
replaces it) and an incomplete one, points <p>:current at it, takes it off <p>:pending and notes in the meta of the
version it replaces since when that one is superseded. A reader sees either the old or the new version, never a mix.
Every publish then deletes the versions beyond `keep_versions`, those superseded for longer than
`redis.superseded_grace` (readers holding an old pointer finish reading within it) and those pending for longer
than `redis.unpublished_grace` (left by a publish that died before its switch; a refused version is deleted at
once). Each step is idempotent: a publish cut short is tidied up by the next one. So Redis holds the live version,
at most keep_versions - 1 superseded ones and what a publish is writing, whatever crashed before. (Superseded and
orphaned versions are deleted by a later publish rather than given a TTL: a TTL on every member hash costs one more
pass over all of them per publish, +55% publish time at 1 M memberships, on top of the deletion that follows.)

The change stream is lossless and idempotent: each chunk of a batch's changes is added by one Lua script that
skips the changes the batch's marker <p>:changes:batch:<at> counts as added and moves the marker with every entry,
so a re-run (a whole one, or one finishing a batch that failed half-way) adds exactly the missing changes, and a
batch for an earlier evaluation time published after a later one is added too (consumers order by evaluated_at and
seq, not by stream id). A marker lives `redis.change_batch_ttl`.

The client has the connect and socket timeouts `redis.connect_timeout_s` / `redis.socket_timeout_s` (3 attempts in
all); publish_redis PINGs Redis before it reads the warehouse and raises RedisUnavailable, naming the server
(without credentials) and the settings, when Redis cannot be reached or does not answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from urllib.parse import urlsplit

from seg.core.config import Settings
from seg.core.warehouse import connect_waiting
from seg.triggers import definitions
from seg.triggers.tables import CHANGES, CURRENT, ts

CHUNK = 10_000
KEY_NAMES = "sha1"  # meta's key_names: member hashes named by member_key_name (absent: clear names, before #14)
_DEFAULTS = definitions.REDIS_DEFAULTS
CONNECT_TIMEOUT_S = float(_DEFAULTS["connect_timeout_s"])
SOCKET_TIMEOUT_S = float(_DEFAULTS["socket_timeout_s"])
UNPUBLISHED_GRACE_S = definitions.parse_duration(_DEFAULTS["unpublished_grace"]).total_seconds()
SUPERSEDED_GRACE_S = definitions.parse_duration(_DEFAULTS["superseded_grace"]).total_seconds()
CHANGE_BATCH_TTL_S = definitions.parse_duration(_DEFAULTS["change_batch_ttl"]).total_seconds()
# the value of a membership: JSON built in SQL (strftime keeps the ISO form Python's isoformat gives)
VALUE_SQL = ("json_object('segment_name', segment_name, 'priority', priority, "
             "'entered_at', strftime(entered_at, '%Y-%m-%dT%H:%M:%S.%f'), "
             "'expires_at', strftime(expires_at, '%Y-%m-%dT%H:%M:%S.%f'), 'person_id', person_id)::varchar")


class RedisUnavailable(RuntimeError):
    """Redis could not be reached or did not answer within the configured timeouts."""


def client(url: str, connect_timeout_s: float = CONNECT_TIMEOUT_S, socket_timeout_s: float = SOCKET_TIMEOUT_S):
    """A client that gives up after 3 attempts of at most the given timeouts (not the library's defaults)."""
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout_s, socket_timeout=socket_timeout_s,
                                retry=Retry(ExponentialWithJitterBackoff(base=0.1, cap=1.0), 2))


def _where(url: str) -> str:
    """The server of a Redis URL without its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path}" if parts.hostname else parts.path or url


@contextlib.contextmanager
def _reachable(url: str, connect_timeout_s: float, socket_timeout_s: float):
    import redis

    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise RedisUnavailable(
            f"Redis at {_where(url)} is unreachable or did not answer (connect_timeout_s={connect_timeout_s:g}, "
            f"socket_timeout_s={socket_timeout_s:g}: the redis: options of config/triggers.yml): {exc}") from exc


def _us(at: dt.datetime) -> int:
    """Microseconds since the epoch of a UTC evaluation time (naive = UTC), exactly."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return (at - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


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


def member_key_name(member_key: str) -> str:
    """The key-name part of a member: the SHA-1 hex of its member key (as redis.sha1hex computes it in Lua)."""
    return hashlib.sha1(member_key.encode(), usedforsecurity=False).hexdigest()


# One EVAL per chunk: the per-command cost of a client-side pipeline (1 M HSETs) dominates otherwise.
# (On Redis Cluster the keys of a chunk would need one hash slot: wrap the version in {braces} there.)
_HSET_MANY = """
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[2 * i - 1], ARGV[2 * i])
end
return #KEYS
"""


def write_version(r, prefix: str, version: str, rows, at: dt.datetime) -> int:
    """rows: iterable of (member_key, trigger, value_json). Writes the version's keys; returns the row count.

    Written so that drop_version finds every key of a version cut short: a chunk's member keys go to the members set
    before their hashes, a trigger to the meta's segments before its set, and the meta's memberships (what the
    switch checks) last. publish_rows registers the version in <p>:pending first, so a later publish deletes it."""
    base = f"{prefix}:v:{version}"
    sha = r.script_load(_HSET_MANY)
    pipe = _RawPipe(r)
    by_segment: dict[str, list[str]] = {}
    keys: list[str] = []
    args: list[str] = []
    chunk_members: list[str] = []
    n = 0

    def flush_chunk():
        pipe.add("SADD", f"{base}:members", *chunk_members)
        pipe.add("EVALSHA", sha, len(keys), *keys, *args)
        keys.clear(), args.clear(), chunk_members.clear()

    pipe.add("HSET", f"{base}:meta", "evaluated_at", at.isoformat(), "segments", "[]", "key_names", KEY_NAMES)
    for member_key, trigger, value in rows:
        if trigger not in by_segment:
            by_segment[trigger] = []
            pipe.add("HSET", f"{base}:meta", "segments", json.dumps(sorted(by_segment)))
        keys.append(f"{base}:member:{member_key_name(member_key)}")
        args.append(trigger)
        args.append(value)
        chunk_members.append(member_key)
        by_segment[trigger].append(member_key)
        n += 1
        if len(keys) >= CHUNK:
            flush_chunk()
    if keys:
        flush_chunk()
    for trigger, ids in by_segment.items():
        for i in range(0, len(ids), CHUNK):
            pipe.add("SADD", f"{base}:segment:{trigger}", *ids[i:i + CHUNK])
    pipe.add("HSET", f"{base}:meta", "memberships", n)
    pipe.flush()
    return n


def _small_keys(r, prefix: str, version: str) -> list[str]:
    """A version's keys but its member hashes."""
    base = f"{prefix}:v:{version}"
    meta = r.hget(f"{base}:meta", "segments")
    return [f"{base}:meta", f"{base}:members", *(f"{base}:segment:{t}" for t in json.loads(meta or "[]"))]


def _hashed_names(r, prefix: str, version: str) -> str:
    """'1' when the version's member hashes are named by member_key_name, '0' for the clear names before #14."""
    names = r.hget(f"{prefix}:v:{version}:meta", "key_names")
    return "1" if names == KEY_NAMES.encode() or not r.exists(f"{prefix}:v:{version}:meta") else "0"


# Deletes a version's member hashes server side, CHUNK members per call (SPOP empties the member set as it goes).
_DROP_MEMBERS = """
local members = redis.call('SPOP', KEYS[1], ARGV[2])
for _, m in ipairs(members) do
  redis.call('UNLINK', ARGV[1] .. (ARGV[3] == '1' and redis.sha1hex(m) or m))
end
return #members
"""


def drop_version(r, prefix: str, version: str) -> None:
    """Delete a version's keys now (also one of the layout before #14, with clear member hash names)."""
    base = f"{prefix}:v:{version}"
    drop, hashed = r.register_script(_DROP_MEMBERS), _hashed_names(r, prefix, version)
    while drop(keys=[f"{base}:members"], args=[f"{base}:member:", CHUNK, hashed]):
        pass
    r.unlink(*_small_keys(r, prefix, version))
    r.zrem(f"{prefix}:pending", version)


# KEYS: current, current_at, versions, pending. ARGV: version, at (us), prefix, at as in version names, now (ms).
# Returns {1} after the switch, {0, current version} when the current version was evaluated later.
_SWITCH = """
local cur, cur_at = redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])
if cur_at then
  if tonumber(cur_at) > tonumber(ARGV[2]) then return {0, cur} end
elseif cur and string.sub(cur, 1, 15) > ARGV[4] then  -- a pointer published before current_at existed
  return {0, cur}
end
local base = ARGV[3] .. ':v:' .. ARGV[1]
local small = {base .. ':meta', base .. ':members'}
local segments = redis.call('HGET', small[1], 'segments')
for _, t in ipairs(segments and cjson.decode(segments) or {}) do small[#small + 1] = base .. ':segment:' .. t end
local n = tonumber(redis.call('HGET', small[1], 'memberships') or '-1')  -- written last
local expected = #small
if n == 0 then expected = expected - 1 end  -- an empty version has no members set
if n < 0 or redis.call('EXISTS', unpack(small)) ~= expected then
  return redis.error_reply('version ' .. ARGV[1] .. ' is incomplete or was deleted before the switch')
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
local replaced = cur and ARGV[3] .. ':v:' .. cur .. ':meta'
if replaced and cur ~= ARGV[1] and redis.call('EXISTS', replaced) == 1 then
  redis.call('HSETNX', replaced, 'superseded_at', ARGV[5])
end
return {1}
"""


def switch(r, prefix: str, version: str, at: dt.datetime, keep: int = 2,
           superseded_grace_s: float = SUPERSEDED_GRACE_S, unpublished_grace_s: float = UNPUBLISHED_GRACE_S) -> dict:
    """Make `version` (evaluated at `at`) current unless the current version was evaluated later (then `version` is
    deleted), then tidy up (_tidy). Returns {"switched", "current", "dropped_versions"}."""
    import redis

    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    try:
        reply = r.eval(_SWITCH, 4, f"{prefix}:current", f"{prefix}:current_at", f"{prefix}:versions",
                       f"{prefix}:pending", version, _us(at), prefix, f"{at:%Y%m%dT%H%M%S}", _now_ms(r))
    except redis.exceptions.ResponseError as exc:
        drop_version(r, prefix, version)
        raise RuntimeError(f"Redis refused the switch to {prefix} {version}: {exc}") from None
    if not reply[0]:
        drop_version(r, prefix, version)
    out = {"switched": bool(reply[0]), "current": version if reply[0] else reply[1].decode()}
    out["dropped_versions"] = _tidy(r, prefix, keep, superseded_grace_s, unpublished_grace_s)
    return out


def _now_ms(r) -> int:
    seconds, micros = r.time()  # the server's clock: every publisher agrees on it
    return int(seconds) * 1000 + int(micros) // 1000


# KEYS[1]: a version's meta; ARGV[1]: now (ms). Its superseded_at, noted as now if missing; nil without a meta.
_SUPERSEDED_AT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSETNX', KEYS[1], 'superseded_at', ARGV[1])
return redis.call('HGET', KEYS[1], 'superseded_at')
"""


def _tidy(r, prefix: str, keep: int, superseded_grace_s: float, unpublished_grace_s: float) -> list[str]:
    """Delete the versions beyond `keep`, those superseded for longer than `superseded_grace_s` and those pending
    for longer than `unpublished_grace_s` (each step idempotent: a tidy-up cut short is finished by the next
    publish). Returns the deleted versions."""
    now = _now_ms(r)
    current = (r.get(f"{prefix}:current") or b"").decode()
    listed = [v.decode() for v in r.lrange(f"{prefix}:versions", 0, -1)]
    dropped = []
    for i, v in enumerate(listed):
        if v == current:
            continue
        if i < keep:  # superseded before superseded_at was noted (or a switch by an older version): from now
            since = r.eval(_SUPERSEDED_AT, 1, f"{prefix}:v:{v}:meta", now)
            if since is not None and int(since) >= now - _ms(superseded_grace_s):
                continue  # readers holding its pointer may still read it
        drop_version(r, prefix, v)
        r.lrem(f"{prefix}:versions", 0, v)
        dropped.append(v)
    for v in r.zrangebyscore(f"{prefix}:pending", "-inf", now - _ms(unpublished_grace_s)):
        if v.decode() != current and v.decode() not in listed:
            drop_version(r, prefix, v.decode())
            dropped.append(v.decode())
    return dropped


# KEYS: the stream, the batch's marker. ARGV: maxlen, marker TTL (ms), the batch position of the chunk's first
# change, then per change its number of fields and its fields and values. Changes the marker counts are skipped; the
# marker moves with every entry added, so a re-run adds exactly the missing ones.
_ADD_CHANGES = """
local done = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = tonumber(ARGV[3])
if seq > done + 1 then
  return redis.error_reply('changes ' .. done + 1 .. '..' .. seq - 1 .. ' of this batch are missing')
end
local i, added = 4, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if seq > done then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'seq', seq, unpack(ARGV, i + 1, i + 2 * n))
    redis.call('SET', KEYS[2], seq, 'PX', ARGV[2])
    done, added = seq, added + 1
  end
  seq, i = seq + 1, i + 1 + 2 * n
end
return added
"""


def publish_changes(r, prefix: str, at: dt.datetime, changes, maxlen: int,
                    batch_ttl_s: float = CHANGE_BATCH_TTL_S) -> int:
    """XADD this batch's changes (in a stable order) that are not in the stream yet; returns how many were added."""
    add = r.register_script(_ADD_CHANGES)
    keys = [f"{prefix}:changes", f"{prefix}:changes:batch:{at:%Y%m%dT%H%M%S.%f}"]
    head = [maxlen, _ms(batch_ttl_s)]
    first, args, added, seq = 1, [], 0, 0
    for seq, (change, trigger, member_key, person_id, changed_at, exit_reason) in enumerate(changes, start=1):
        fields = ["change", change, "trigger", trigger, "member_key", member_key, "at", changed_at.isoformat(),
                  "evaluated_at", at.isoformat()]
        if person_id:
            fields += ["person_id", person_id]
        if exit_reason:
            fields += ["exit_reason", exit_reason]
        args += [len(fields) // 2, *fields]
        if seq - first + 1 >= CHUNK:
            added += add(keys=keys, args=[*head, first, *args])
            first, args = seq + 1, []
    if args:
        added += add(keys=keys, args=[*head, first, *args])
    return added


def publish_rows(r, prefix: str, at: dt.datetime, rows, keep: int = 2,
                 superseded_grace_s: float = SUPERSEDED_GRACE_S, unpublished_grace_s: float = UNPUBLISHED_GRACE_S) -> dict:
    """Write `rows` as a new version and switch to it (unless a later evaluation is current: the new version is
    deleted then)."""
    start = time.monotonic()
    version = f"{at:%Y%m%dT%H%M%S}.{r.incr(f'{prefix}:version_seq')}"
    r.zadd(f"{prefix}:pending", {version: _now_ms(r)})
    n = write_version(r, prefix, version, rows, at)
    written = time.monotonic() - start
    switched = switch(r, prefix, version, at, keep, superseded_grace_s, unpublished_grace_s)
    return {"version": version, **switched, "memberships": n, "write_s": round(written, 3),
            "seconds": round(time.monotonic() - start, 3)}


def publish_redis(settings: Settings, at: dt.datetime, cfg: definitions.TriggerConfig | None = None,
                  url: str | None = None) -> dict:
    """Check Redis answers, read the current memberships and this batch's changes from the warehouse (read only,
    waiting for a writer up to warehouse.lock_timeout_s) and publish them."""
    cfg = cfg or definitions.load()
    url = url or settings.redis_url
    if not url:
        return {"skipped": "SEG_REDIS_URL is not set: tables only"}
    timeouts = cfg.redis_connect_timeout_s, cfg.redis_socket_timeout_s
    r = client(url, *timeouts)
    with _reachable(url, *timeouts):
        r.ping()  # before the warehouse: an unreachable Redis fails the task at once
    con = connect_waiting(settings, read_only=True)  # waits up to warehouse.lock_timeout_s
    try:
        rows = con.execute(f"select member_key, trigger, {VALUE_SQL} from {CURRENT} order by member_key, trigger").fetchall()
        changes = con.execute(f"select change, trigger, member_key, person_id, changed_at, exit_reason from {CHANGES} "
                              f"where evaluated_at = {ts(at)} "
                              "order by change, trigger, member_key, occurrence_id, changed_at").fetchall()
    finally:
        con.close()
    with _reachable(url, *timeouts):
        out = publish_rows(r, cfg.redis_prefix, at, rows, cfg.keep_versions,
                           cfg.superseded_version_grace.total_seconds(), cfg.unpublished_version_grace.total_seconds())
        out["changes_streamed"] = publish_changes(r, cfg.redis_prefix, at, changes, cfg.stream_maxlen,
                                                  cfg.change_batch_ttl.total_seconds())
    return out


def read_current(r, prefix: str) -> dict[tuple[str, str], dict]:
    """What a reader sees: {(member_key, trigger): value} of the current version (used by tests and tools)."""
    version = r.get(f"{prefix}:current")
    if version is None:
        return {}
    base = f"{prefix}:v:{version.decode()}"
    out = {}
    members = [m.decode() for m in r.sscan_iter(f"{base}:members", count=CHUNK)]
    pipe = r.pipeline(transaction=False)
    for m in members:
        pipe.hgetall(f"{base}:member:{member_key_name(m)}")
    for m, fields in zip(members, pipe.execute(), strict=True):
        for trigger, value in fields.items():
            out[(m, trigger.decode())] = json.loads(value)
    for trigger in json.loads(r.hget(f"{base}:meta", "segments") or "[]"):
        for m in r.sscan_iter(f"{base}:segment:{trigger}", count=CHUNK):
            out.setdefault((m.decode(), trigger), {})["in_segment_set"] = True
    return out
