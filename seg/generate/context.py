"""What every step of a simulated day works with: the day itself (index, random stream, time bounds, effective
personas, who is active), the running id counters, the Arrow value arrays tables take their strings from, and
the group-expansion helper the steps share."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seg.generate.world import DAY_US, World

SECOND = 1_000_000


@dataclass
class Counters:
    """Running identifier counters (ids are sequential in time order within a run)."""

    event: int = 100_000_000_000
    order: int = 1_000_000_000
    visit: int = 1_000_000_000
    response: int = 1_000_000_000
    session: int = 1


@dataclass(frozen=True)
class Day:
    """One simulated day. Every step draws from `rng`, in the order DaySimulator.simulate calls them."""

    d: int                   # day index (0 = first generated day)
    rng: np.random.Generator
    day0: int                # first microsecond of the day
    day1: int                # first microsecond of the next day
    weekday: int
    eff: np.ndarray          # persona in effect per person on this day (after drift)
    active: np.ndarray       # per person: signed up and not lapsed
    base: np.ndarray         # activity per person (0 when not active)

    @classmethod
    def of(cls, w: World, d: int, rng: np.random.Generator) -> Day:
        day0 = w.start_us + d * DAY_US
        eff = w.persona_on(d)
        active = (w.signup_day <= d) & ~(w.params.lapses[eff] & (d >= w.stop_day))
        return cls(d=d, rng=rng, day0=day0, day1=day0 + DAY_US, weekday=(w.start + dt.timedelta(days=d)).weekday(),
                   eff=eff, active=active, base=w.act * active)


@dataclass(frozen=True)
class Lookups:
    """Arrow value arrays of the world the day's tables take their strings from (built once per run)."""

    categories: pa.Array
    category_pages: pa.Array
    terms: pa.Array              # search terms of all categories, category after category
    term_lo: np.ndarray          # per category: its first term in `terms`
    term_n: np.ndarray           # per category: its number of terms
    countries: pa.Array
    regions: pa.Array
    cities: pa.Array
    first_names: pa.Array
    last_names: pa.Array

    @classmethod
    def of(cls, w: World) -> Lookups:
        p = w.params
        cats = p.raw["catalogue"]["categories"]
        terms, term_lo, term_n = [], [], []
        for c in p.categories:
            term_lo.append(len(terms))
            lst = [str(t) for t in cats[c].get("search_terms") or [c]]
            terms.extend(lst)
            term_n.append(len(lst))
        ex = w.extras
        return cls(
            categories=pa.array(list(p.categories)),
            category_pages=pa.array([f"/c/{c}" for c in p.categories]),
            terms=pa.array(terms), term_lo=np.array(term_lo), term_n=np.array(term_n),
            countries=pa.array(w.country_codes), regions=pa.array(w.region_names), cities=pa.array(w.city_names),
            first_names=pa.array([x.capitalize() for x in ex["first_names"]]),
            last_names=pa.array([x.capitalize() for x in ex["last_names"]]),
        )


def within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: (group index per element, position within the group)."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - starts[owner]
