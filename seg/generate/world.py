"""The simulated population: people, personas (and drift), CRM records, devices, loyalty cards, catalogue.

Everything here is drawn once per run from the population stream (the catalogue here, the rest in population.py);
the day-by-day behaviour lives in day.py. All arrays are indexed by person (0..n-1), CRM record, device or
product.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.params import Params, draw_by

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EPOCH = dt.date(1970, 1, 1)
NO_DAY = 1 << 30  # "never" as a day index

OS_BY_TYPE = {  # os name, weight
    "desktop": (("Windows", 0.68), ("macOS", 0.27), ("Linux", 0.05)),
    "mobile": (("Android", 0.55), ("iOS", 0.45)),
    "tablet": (("iPadOS", 0.5), ("Android", 0.5)),
}
GENDERS = ("F", "M", "X", "U")
OS_NAMES = ("Windows", "macOS", "Linux", "Android", "iOS", "iPadOS")


def day_us(day: dt.date) -> int:
    return (day - EPOCH).days * DAY_US


@dataclass
class Catalogue:
    number: np.ndarray          # int64 product number (P<number>, SKU-<number>), sorted by (category, price)
    category: np.ndarray        # int64 category code
    price: np.ndarray           # float64 list price
    key: np.ndarray             # float64 search key: category * 100 + 10 + log(price)
    cat_lo: np.ndarray          # first product index of each category
    cat_hi: np.ndarray          # one past the last
    cat_median: np.ndarray      # configured median price per category
    product_ids: pa.Array       # 'P12345'
    skus: pa.Array              # 'SKU-12345'
    urls: pa.Array              # '/product/P12345'

    def pick(self, rng: np.random.Generator, cat_cdfs: np.ndarray, group: np.ndarray, price_level: np.ndarray,
             price_noise: np.ndarray) -> np.ndarray:
        """One product per row: category from the row's group CDF, the product nearest a lognormal target
        price."""
        n = group.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        cat = draw_by(cat_cdfs, group, rng.random(n))
        target = self.cat_median[cat] * price_level * np.exp(rng.normal(0.0, 1.0, n) * price_noise)
        key = cat * 100.0 + 10.0 + np.log(np.maximum(target, 0.5))
        idx = np.searchsorted(self.key, key)
        return np.clip(idx, self.cat_lo[cat], self.cat_hi[cat] - 1)


def build_catalogue(params: Params, rng: np.random.Generator) -> Catalogue:
    spec = params.raw["catalogue"]
    n = int(spec["products"])
    if not 1 <= n <= 30000:
        raise ValueError("catalogue.products must be between 1 and 30000")
    cats = params.categories
    shares = np.array([float(spec["categories"][c]["share"]) for c in cats])
    medians = np.array([float(spec["categories"][c]["price_median"]) for c in cats])
    sigmas = np.array([float(spec["categories"][c]["price_sigma"]) for c in cats])
    # every category gets at least one product
    counts = np.maximum(1, np.floor(shares / shares.sum() * n).astype(np.int64))
    counts[np.argmax(counts)] += n - counts.sum()
    category = np.repeat(np.arange(len(cats)), counts)
    raw_price = medians[category] * np.exp(rng.normal(0.0, 1.0, n) * sigmas[category])
    price = np.clip(np.round(raw_price) - 0.01, 0.99, float(spec.get("max_price", 4000)))
    number = rng.choice(90000, size=n, replace=False).astype(np.int64) + 10000
    order = np.lexsort((number, price, category))
    number, category, price = number[order], category[order], price[order]
    key = category * 100.0 + 10.0 + np.log(price)
    lo = np.searchsorted(category, np.arange(len(cats)), side="left")
    hi = np.searchsorted(category, np.arange(len(cats)), side="right")
    pid = S.prefixed_ids("P", number, 5)
    return Catalogue(
        number=number, category=category, price=price, key=key, cat_lo=lo, cat_hi=hi, cat_median=medians,
        product_ids=pid, skus=S.prefixed_ids("SKU-", number, 5), urls=S.join("/product/", pid),
    )


@dataclass
class World:
    params: Params
    n: int
    days: int
    start: dt.date
    end: dt.date
    start_us: int
    end_us: int                       # end of the last day (exclusive)
    drift_day: int | None             # day index of drift_from, or None
    catalogue: Catalogue
    # people
    persona: np.ndarray               # int8 base persona
    persona_after: np.ndarray         # int8 persona after drift (-1: no switch)
    switch_day: np.ndarray            # int32 day index of the switch (NO_DAY: none)
    stop_day: np.ndarray              # int32 day index from which a lapsing person is inactive
    signup_us: np.ndarray             # int64
    signup_day: np.ndarray            # int32 day index (negative: before the window)
    act: np.ndarray                   # float64 activity multiplier
    basket: np.ndarray                # float64 basket (price level) multiplier
    survey_offset: np.ndarray         # float64 [n, 5]
    country: np.ndarray               # int64 index into country_codes
    region: np.ndarray                # int64 index into region_names
    city: np.ndarray                  # int64 index into city_names
    home_store: np.ndarray            # int64 store number
    has_loyalty: np.ndarray           # bool
    loyalty_num: np.ndarray           # int64 (valid where has_loyalty)
    # CRM records (primary records are records 0..n-1, record i belongs to person i)
    rec_person: np.ndarray
    rec_number: np.ndarray            # customer number (C<8 digits>)
    rec_created_us: np.ndarray
    rec_secondary: np.ndarray         # bool
    second_rec: np.ndarray            # per person: record index of the second CRM record, -1 if none
    # devices
    dev_anon: np.ndarray              # uint64 anonymous id number
    dev_platform: np.ndarray          # int8 0 web, 1 app
    dev_type: np.ndarray              # int8 index into DEVICE_TYPES
    dev_os: np.ndarray                # int8 index into OS_NAMES
    dev_owner: np.ndarray             # int64 person
    pd_ptr: np.ndarray                # CSR person -> devices (includes shared ones)
    pd_dev: np.ndarray
    pw_ptr: np.ndarray                # CSR person -> web devices
    pw_dev: np.ndarray
    pa_ptr: np.ndarray                # CSR person -> app devices
    pa_dev: np.ndarray
    # survey plan
    survey_day: np.ndarray            # int32 day index of the survey answer (NO_DAY: none)
    first_order_day: np.ndarray       # int32 day index of a planted first order after signup (NO_DAY: none)
    last_order_day: np.ndarray        # int32 day index of a planted last order before lapsing (NO_DAY: none)
    # CRM attributes
    rec_phone: pa.Array
    rec_opt_in: np.ndarray
    rec_updated_us: np.ndarray        # updated_at of the first version
    rec_upd: np.ndarray               # bool: updated once more inside the window
    rec_upd_us: np.ndarray
    birth_days: np.ndarray            # per person, days since epoch
    gender: np.ndarray                # per person, index into GENDERS
    # strings
    country_codes: list[str]
    region_names: list[str]
    city_names: list[str]
    phone_prefix: list[str]
    customer_ids: pa.Array            # per CRM record
    emails_typed: pa.Array            # per CRM record, as typed
    emails_norm: pa.Array             # per person (lower/trimmed)
    loyalty_ids: pa.Array             # per person (null where none)
    anon_ids: pa.Array                # per device
    store_ids: pa.Array               # per store number (index = number)
    extras: dict = field(default_factory=dict)

    def persona_on(self, d: int) -> np.ndarray:
        """Persona in effect on day index d (after drift for switchers)."""
        if self.drift_day is None or d < self.drift_day:
            return self.persona
        return np.where(self.switch_day <= d, self.persona_after, self.persona)
