"""personas.yml (or a profile over it) -> numpy parameter tables indexed by persona code.

A profile is a second, independently shaped world of the same generator: a YAML file in profiles/ whose top-level
sections replace those of personas.yml (at least `personas`, usually `drift` too), plus `sources:`, the contract
sources it delivers (default: all). Its `persona_defaults:` section, if any, gives every persona the parameters it
does not set itself. The default profile is personas.yml alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from seg.core.contract import SOURCES

PERSONAS_FILE = Path(__file__).with_name("personas.yml")
PROFILES_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "default"

DEVICE_TYPES = ("desktop", "mobile", "tablet")
CHANNELS = ("web", "app", "store")
STATUSES = ("completed", "cancelled", "returned")
LIKERT_QUESTIONS = ("price_sensitivity", "brand_loyalty", "sustainability_interest", "innovation_seeking",
                    "shopping_enjoyment")
QUESTIONS = LIKERT_QUESTIONS + ("preferred_channel",)

# scalar per-persona parameters (all numeric)
SCALARS = (
    "share", "activity_sigma", "basket_sigma", "online_orders_per_day", "browse_sessions_per_day", "app_share",
    "devices_extra_mean", "login_prob", "guest_checkout_share", "cart_prob", "checkout_abandon_prob",
    "pages_per_session", "product_views_per_session", "searches_per_session", "videos_per_session",
    "video_percent", "scrolls_per_session", "scroll_percent", "seconds_between_events", "repeated_view_prob",
    "lines_per_order", "extra_quantity_mean", "price_level", "price_noise", "discount_line_prob",
    "loyalty_share", "store_visits_per_day", "store_purchase_prob", "store_guest_orders_per_day",
)


@dataclass
class Params:
    raw: dict[str, Any]
    names: tuple[str, ...]
    categories: tuple[str, ...]
    scalar: dict[str, np.ndarray]          # name -> float64[n_personas]
    web_device_cdf: np.ndarray             # [n_personas, 3]
    status_cdf: np.ndarray                 # [n_personas, 3]
    category_cdf: np.ndarray               # [n_personas, n_categories]
    hour_cdf: np.ndarray                   # [n_personas, 24]
    discount_lo: np.ndarray
    discount_hi: np.ndarray
    dwell_median: np.ndarray
    dwell_sigma: np.ndarray
    survey_prob: np.ndarray
    survey_mean: np.ndarray                # [n_personas, 5] Likert means in LIKERT_QUESTIONS order
    channel_pref_cdf: np.ndarray           # [n_personas, 3]
    in_window: np.ndarray                  # bool[n_personas]: signs up inside the window
    signup_last_days: np.ndarray
    first_order_prob: np.ndarray           # share of people who place a first order soon after signup
    first_order_days: np.ndarray           # ... within this many days
    last_order_prob: np.ndarray            # share of lapsing people who place a last order shortly before they stop
    last_order_days: np.ndarray            # ... within this many days before the stop
    lapses: np.ndarray                     # bool[n_personas]
    lapse_lo: np.ndarray
    lapse_hi: np.ndarray
    drift_targets: np.ndarray              # [n_personas, n_personas] transition weights (rows sum to 1 or 0)
    sources: tuple[str, ...] = SOURCES     # the contract sources delivered (a profile may deliver fewer)
    profile: str = DEFAULT_PROFILE

    def code(self, name: str) -> int:
        return self.names.index(name)


def _cdf(weights: list[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum: {weights}")
    c = np.cumsum(w / w.sum())
    c[-1] = 1.0
    return c


def _hours(spec: dict) -> np.ndarray:
    h = np.arange(24, dtype=np.float64) + 0.5
    w = np.full(24, 0.02)
    for peak in spec["peaks"]:
        d = np.minimum(np.abs(h - peak), 24 - np.abs(h - peak))
        w += np.exp(-0.5 * (d / float(spec["spread"])) ** 2)
    return _cdf(list(w))


def profiles() -> tuple[str, ...]:
    """The profile names: `default` (personas.yml) and one per profiles/<name>.yml."""
    return (DEFAULT_PROFILE, *sorted(p.stem for p in PROFILES_DIR.glob("*.yml")))


def profile_file(profile: str) -> Path:
    """The YAML file of a profile (personas.yml for the default); ValueError naming the known ones otherwise."""
    if profile == DEFAULT_PROFILE:
        return PERSONAS_FILE
    if not isinstance(profile, str) or profile not in profiles():
        raise ValueError(f"unknown generator profile {profile!r}: one of {', '.join(profiles())}")
    return PROFILES_DIR / f"{profile}.yml"


def _profile_raw(base: dict[str, Any], profile: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """personas.yml with the profile's sections in place of its own, and the profile's sources."""
    over = yaml.safe_load(profile_file(profile).read_text()) or {}
    sources = tuple(over.pop("sources", SOURCES))
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ValueError(f"profile {profile}: sources must be some of {', '.join(SOURCES)}, got {list(sources)}")
    defaults = over.pop("persona_defaults", {}) or {}
    raw = {**base, **over}
    raw["personas"] = {name: {**defaults, **spec} for name, spec in over["personas"].items()}
    return raw, tuple(s for s in SOURCES if s in sources)


@lru_cache(maxsize=4)
def load_params(path: str | None = None, profile: str = DEFAULT_PROFILE) -> Params:
    raw = yaml.safe_load(Path(path or PERSONAS_FILE).read_text())
    sources = SOURCES
    if profile != DEFAULT_PROFILE:
        raw, sources = _profile_raw(raw, profile)
    personas = raw["personas"]
    names = tuple(personas)
    if profile == DEFAULT_PROFILE and len(names) < 6:
        raise ValueError("personas.yml needs at least 6 personas")
    if len(names) < 2:
        raise ValueError(f"profile {profile} needs at least 2 personas")
    categories = tuple(raw["catalogue"]["categories"])
    scalar = {}
    for key in SCALARS:
        try:
            scalar[key] = np.array([float(personas[p][key]) for p in names])
        except KeyError as exc:
            raise ValueError(f"personas.yml: persona parameter {exc} missing") from None
    scalar["share"] = scalar["share"] / scalar["share"].sum()
    n = len(names)
    drift = np.zeros((n, n))
    for src, targets in (raw.get("drift", {}).get("transitions") or {}).items():
        for dst, w in targets.items():
            if dst == src:
                raise ValueError(f"drift transition {src} -> {dst} is not a change")
            drift[names.index(src), names.index(dst)] = float(w)
    rows = drift.sum(axis=1, keepdims=True)
    drift = np.divide(drift, rows, out=np.zeros_like(drift), where=rows > 0)
    for dst in range(n):
        if drift[:, dst].any() and personas[names[dst]].get("signup") == "in_window":
            raise ValueError(f"drift cannot switch people to {names[dst]} (signs up inside the window)")
    return Params(
        raw=raw,
        names=names,
        categories=categories,
        scalar=scalar,
        web_device_cdf=np.array([_cdf([personas[p]["web_device_mix"][d] for d in DEVICE_TYPES]) for p in names]),
        status_cdf=np.array([_cdf([personas[p]["status"][s] for s in STATUSES]) for p in names]),
        category_cdf=np.array([_cdf([personas[p]["categories"].get(c, 0.0) for c in categories]) for p in names]),
        hour_cdf=np.array([_hours(personas[p]["hours"]) for p in names]),
        discount_lo=np.array([float(personas[p]["discount_range"][0]) for p in names]),
        discount_hi=np.array([float(personas[p]["discount_range"][1]) for p in names]),
        dwell_median=np.array([float(personas[p]["dwell_minutes"]["median"]) for p in names]),
        dwell_sigma=np.array([float(personas[p]["dwell_minutes"]["sigma"]) for p in names]),
        survey_prob=np.array([float(personas[p]["survey"]["response_prob"]) for p in names]),
        survey_mean=np.array([[float(personas[p]["survey"][q]) for q in LIKERT_QUESTIONS] for p in names]),
        channel_pref_cdf=np.array([_cdf([personas[p]["survey"]["preferred_channel"][c] for c in CHANNELS])
                                   for p in names]),
        in_window=np.array([personas[p].get("signup") == "in_window" for p in names]),
        signup_last_days=np.array([int(personas[p].get("signup_within_last_days", 10**6)) for p in names]),
        first_order_prob=np.array([float(personas[p].get("first_order_prob", 0.0)) for p in names]),
        first_order_days=np.array([int(personas[p].get("first_order_within_days", 1)) for p in names]),
        last_order_prob=np.array([float(personas[p].get("last_order_prob", 0.0)) for p in names]),
        last_order_days=np.array([int(personas[p].get("last_order_within_days", 1)) for p in names]),
        lapses=np.array([bool(personas[p].get("lapses", False)) for p in names]),
        lapse_lo=np.array([int((personas[p].get("lapse_days_before_end") or [0, 0])[0]) for p in names]),
        lapse_hi=np.array([int((personas[p].get("lapse_days_before_end") or [0, 0])[1]) for p in names]),
        drift_targets=drift,
        sources=sources,
        profile=profile,
    )


def draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling from one CDF: the category index for each u in [0, 1)."""
    cdf = np.asarray(cdf, dtype=np.float64)
    return np.searchsorted(cdf, u, side="left").clip(0, cdf.size - 1).astype(np.int64)


def draw_by(cdfs: np.ndarray, group: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling with one CDF row per group (e.g. persona): row cdfs[group[i]] for draw i."""
    out = np.zeros(u.shape[0], dtype=np.int64)
    group = np.asarray(group)
    for g in range(cdfs.shape[0]):
        sel = group == g
        if sel.any():
            out[sel] = draw(cdfs[g], u[sel])
    return out
