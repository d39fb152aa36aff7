"""Trigger definitions: config/triggers.yml (or SEG_TRIGGERS_CONFIG) -> validated dataclasses.

A definition names its pattern, window, threshold, exclusion, membership expiry and priority; the evaluation SQL
(seg.triggers.sql) interprets them. A bad file raises ValueError naming the trigger and the field.
The Airflow pool of the warehouse-writing tasks is not set here: it is airflow.warehouse_pool in config/settings.yml,
shared with the daily DAG (one DuckDB writer across DAGs). Nor is the session gap: sessions.gap_minutes in
config/settings.yml, shared with dbt (seg.triggers.sessions.gap).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seg.core.config import REPO_ROOT

DEFAULT_FILE = REPO_ROOT / "config" / "triggers.yml"
KINDS = ("cart_abandonment", "repeated_product_view", "browse_abandonment", "lapsing", "win_back")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> dt.timedelta:
    """'30m', '24h', '3d' -> timedelta."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration (e.g. 30m, 24h, 3d): {value!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


# Defaults of the redis: options config/triggers.yml may leave out.
REDIS_DEFAULTS: dict[str, Any] = {"key_prefix": "seg:triggers", "stream_maxlen": 100_000, "keep_versions": 2,
                                  "connect_timeout_s": 5.0, "socket_timeout_s": 10.0, "unpublished_grace": "1h",
                                  "superseded_grace": "1h", "change_batch_ttl": "30d"}


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str
    segment_name: str
    priority: int
    expiry: dt.timedelta
    window: dt.timedelta | None = None
    threshold: int = 1
    no_buy_window: dt.timedelta | None = None
    min_inactive_days: int = 21
    usual_gap_factor: float = 0.0
    exclusion: str = "none"
    pattern: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerConfig:
    triggers: dict[str, Trigger]
    schedule: str
    land_sources: list[str]
    horizon: dt.timedelta
    redis_prefix: str
    stream_maxlen: int
    keep_versions: int
    # the Redis client's timeouts and the lifetimes of what a publish leaves behind (seg/triggers/redis.py)
    redis_connect_timeout_s: float
    redis_socket_timeout_s: float
    unpublished_version_grace: dt.timedelta
    superseded_version_grace: dt.timedelta
    change_batch_ttl: dt.timedelta

    def of_kind(self, kind: str) -> list[Trigger]:
        return [t for t in self.triggers.values() if t.kind == kind]


def _trigger(name: str, raw: dict) -> Trigger:
    def need(key):
        if key not in raw:
            raise ValueError(f"trigger {name}: missing {key!r}")
        return raw[key]

    kind = need("kind")
    if kind not in KINDS:
        raise ValueError(f"trigger {name}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    try:
        trig = Trigger(
            name=name, kind=kind, segment_name=str(need("segment_name")), priority=int(need("priority")),
            expiry=parse_duration(need("expiry")),
            window=parse_duration(raw["window"]) if raw.get("window") is not None else None,
            threshold=int(raw.get("threshold", 1)),
            no_buy_window=parse_duration(raw["no_buy_window"]) if raw.get("no_buy_window") is not None else None,
            min_inactive_days=int(raw.get("min_inactive_days", 21)),
            usual_gap_factor=float(raw.get("usual_gap_factor", 0.0)),
            exclusion=str(raw.get("exclusion", "none")), pattern=dict(raw.get("pattern") or {}),
        )
    except ValueError as exc:
        raise ValueError(f"trigger {name}: {exc}") from None
    if kind in ("cart_abandonment", "repeated_product_view", "browse_abandonment") and trig.window is None:
        raise ValueError(f"trigger {name}: kind {kind} needs a window")
    if trig.threshold < 1 or trig.min_inactive_days < 1 or trig.usual_gap_factor < 0:
        raise ValueError(f"trigger {name}: threshold and min_inactive_days must be >= 1, usual_gap_factor >= 0")
    return trig


def _redis_options(raw: dict) -> dict[str, Any]:
    """The redis: section -> TriggerConfig fields; an unknown key or a bad value raises ValueError naming it."""
    unknown = sorted(set(raw) - set(REDIS_DEFAULTS))
    if unknown:
        raise ValueError(f"redis: unknown option(s) {', '.join(unknown)} (one of {', '.join(REDIS_DEFAULTS)})")
    opt = {**REDIS_DEFAULTS, **raw}

    def positive(key, cast):
        try:
            value = cast(opt[key])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"redis.{key}: {exc}") from None
        if value <= (dt.timedelta() if cast is parse_duration else 0):
            raise ValueError(f"redis.{key} must be positive, got {opt[key]!r}")
        return value

    prefix = str(opt["key_prefix"]).strip()
    if not prefix or prefix.endswith(":"):
        raise ValueError(f"redis.key_prefix must be non-empty and not end with ':', got {opt['key_prefix']!r}")
    return {"redis_prefix": prefix, "stream_maxlen": positive("stream_maxlen", int),
            "keep_versions": positive("keep_versions", int),
            "redis_connect_timeout_s": positive("connect_timeout_s", float),
            "redis_socket_timeout_s": positive("socket_timeout_s", float),
            "unpublished_version_grace": positive("unpublished_grace", parse_duration),
            "superseded_version_grace": positive("superseded_grace", parse_duration),
            "change_batch_ttl": positive("change_batch_ttl", parse_duration)}


def load(path: Path | str | None = None) -> TriggerConfig:
    path = Path(path or os.environ.get("SEG_TRIGGERS_CONFIG") or DEFAULT_FILE)
    raw = yaml.safe_load(path.read_text())
    triggers = {name: _trigger(name, spec) for name, spec in (raw.get("triggers") or {}).items()}
    if not triggers:
        raise ValueError(f"{path}: no triggers defined")
    if any(t.kind == "win_back" for t in triggers.values()) and not any(t.kind == "lapsing" for t in triggers.values()):
        raise ValueError("win_back needs a lapsing trigger")
    if "session_gap" in raw:  # an older file: one gap for dbt's sessions and the triggers' now
        raise ValueError(f"{path}: session_gap is not a trigger setting any more: the session gap is "
                         "sessions.gap_minutes in config/settings.yml (dbt's sessions use it too); remove it here")
    if "lock_timeout_s" in raw:  # an older file: one lock wait for every command now
        raise ValueError(f"{path}: lock_timeout_s is not a trigger setting any more: the wait for the warehouse lock "
                         "is warehouse.lock_timeout_s in config/settings.yml (every command uses it); remove it here")
    if "warehouse_pool" in raw:  # an older file: the pool is a setting shared by every DAG now
        warnings.warn(
            f"{path}: warehouse_pool is ignored; the pool is airflow.warehouse_pool in config/settings.yml",
            stacklevel=2,
        )
    cfg = TriggerConfig(
        triggers=triggers, schedule=str(raw.get("schedule", "*/15 * * * *")),
        land_sources=list(raw.get("land_sources") or ["events", "orders", "order_items"]),
        horizon=parse_duration(raw.get("horizon", "5d")),
        **_redis_options(raw.get("redis") or {}),
    )
    longest = max(((t.window or dt.timedelta()) * (2 if t.kind == "repeated_product_view" else 1)
                   + (t.no_buy_window or t.window or dt.timedelta()) + t.expiry)
                  for t in triggers.values() if t.kind not in ("lapsing", "win_back"))
    if cfg.horizon < longest:
        raise ValueError(f"horizon {cfg.horizon} is shorter than the longest window + expiry ({longest})")
    return cfg
