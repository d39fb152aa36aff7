"""The simulated population: people, personas (and drift), CRM records, devices, loyalty cards, catalogue.

Everything here is drawn once per run from the population generator; the day-by-day behaviour lives in
day.py. All arrays are indexed by person (0..n-1), CRM record, device or product.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.generate import strings as S
from seg.generate.params import DEVICE_TYPES, Params, draw, draw_by

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


def _names(raw: dict) -> tuple[list[str], list[str]]:
    return [str(x) for x in raw["names"]["first"]], [str(x) for x in raw["names"]["last"]]


def build_world(params: Params, rng: np.random.Generator, *, customers: int, days: int, end: dt.date,
                drift_from: dt.date | None) -> World:
    n = customers
    raw = params.raw
    idn = raw["identity"]
    start = end - dt.timedelta(days=days - 1)
    start_us, end_us = day_us(start), day_us(end) + DAY_US
    catalogue = build_catalogue(params, rng)
    sc = params.scalar

    # --- personas, random effects -------------------------------------------------------------------------
    persona = draw(np.cumsum(sc["share"]), rng.random(n)).astype(np.int8)
    act = np.exp(rng.normal(0.0, 1.0, n) * sc["activity_sigma"][persona] - 0.5 * sc["activity_sigma"][persona] ** 2)
    basket = np.exp(rng.normal(0.0, 1.0, n) * sc["basket_sigma"][persona])
    survey_offset = rng.normal(0.0, 0.35, (n, 5))

    # --- signup ---------------------------------------------------------------------------------------------
    u_signup = rng.random(n)
    before = start_us - ((1 + u_signup * 1500) * DAY_US).astype(np.int64)
    last = np.minimum(params.signup_last_days[persona], days)
    in_day = days - 1 - np.floor(rng.random(n) * last).astype(np.int64)
    hour = draw_by(params.hour_cdf, persona, rng.random(n))
    inside = start_us + in_day * DAY_US + hour * HOUR_US + (rng.random(n) * HOUR_US).astype(np.int64)
    in_window = params.in_window[persona]
    signup_us = np.where(in_window, inside, before).astype(np.int64)
    signup_day = np.floor_divide(signup_us - start_us, DAY_US).astype(np.int32)

    # --- lapsing and drift (always drawn, so the stream does not depend on drift_from) ----------------------
    lapse = rng.integers(params.lapse_lo[persona], params.lapse_hi[persona] + 1)
    stop_day = np.maximum(days - lapse, math.ceil(0.3 * days)).astype(np.int32)
    stop_day = np.where(params.lapses[persona], stop_day, NO_DAY).astype(np.int32)
    stop_day_base = stop_day.copy()
    u_switch, u_target = rng.random(n), rng.random(n)
    persona_after = np.full(n, -1, dtype=np.int8)
    switch_day = np.full(n, NO_DAY, dtype=np.int32)
    drift_day = None
    if drift_from is not None:
        drift_day = (drift_from - start).days
        targets = params.drift_targets
        eligible = targets[persona].sum(axis=1) > 0
        n_el = int(eligible.sum())
        if n_el:
            p = min(1.0, float(raw["drift"]["share"]) * n / n_el)
            switch = eligible & (u_switch < p)
            tgt = draw_by(np.cumsum(targets, axis=1), persona, u_target).astype(np.int8)
            persona_after[switch] = tgt[switch]
            switch_day[switch] = drift_day
            to_lapse = switch & params.lapses[tgt]
            stop_day[to_lapse] = drift_day

    # --- where they live, loyalty --------------------------------------------------------------------------
    countries = raw["countries"]
    country_codes = list(countries)
    c_cdf = np.cumsum([float(countries[c]["share"]) for c in country_codes])
    c_cdf /= c_cdf[-1]
    country = draw(c_cdf, rng.random(n))
    region_names, city_names, reg_lo, reg_hi, city_lo, city_hi, region_country = [], [], [], [], [], [], []
    for ci, code in enumerate(country_codes):
        reg_lo.append(len(region_names))
        for reg, cities in countries[code]["regions"].items():
            region_names.append(str(reg))
            region_country.append(ci)
            city_lo.append(len(city_names))
            city_names.extend(str(c) for c in cities)
            city_hi.append(len(city_names))
        reg_hi.append(len(region_names))
    reg_lo, reg_hi = np.array(reg_lo), np.array(reg_hi)
    city_lo, city_hi = np.array(city_lo), np.array(city_hi)
    region = reg_lo[country] + np.floor(rng.random(n) * (reg_hi - reg_lo)[country]).astype(np.int64)
    city = city_lo[region] + np.floor(rng.random(n) * (city_hi - city_lo)[region]).astype(np.int64)
    n_stores = int(raw["stores"])
    home_store = 1 + np.floor(rng.random(n) * n_stores).astype(np.int64)
    has_loyalty = rng.random(n) < sc["loyalty_share"][persona]
    loyalty_num = np.zeros(n, dtype=np.int64)
    k = int(has_loyalty.sum())
    loyalty_num[has_loyalty] = rng.choice(10**9, size=k, replace=False)

    # --- CRM records ------------------------------------------------------------------------------------------
    has_second = rng.random(n) < float(idn["second_crm_record_share"])
    second_people = np.flatnonzero(has_second)
    n2 = second_people.size
    numbers = rng.choice(10**8, size=n + n2, replace=False).astype(np.int64)
    u2 = rng.random(n2)
    sp_signup = signup_us[second_people]
    horizon = np.where(in_window[second_people], end_us - HOUR_US, start_us)
    created2 = sp_signup + (u2 * np.maximum(horizon - sp_signup, 0)).astype(np.int64)
    rec_person = np.concatenate([np.arange(n), second_people])
    rec_created = np.concatenate([signup_us, created2])
    rec_secondary = np.concatenate([np.zeros(n, bool), np.ones(n2, bool)])
    second_rec = np.full(n, -1, dtype=np.int64)
    second_rec[second_people] = n + np.arange(n2)

    # names and emails: first.last<unique number>@domain
    first, lastn = _names(raw)
    domains = [str(d) for d in raw["names"]["email_domains"]]
    fi = np.floor(rng.random(n) * len(first)).astype(np.int64)
    li = np.floor(rng.random(n) * len(lastn)).astype(np.int64)
    di = np.floor(rng.random(n) * len(domains)).astype(np.int64)
    email_no = rng.permutation(n).astype(np.int64) + 1
    cap = rng.random(n) < float(idn["email_capitalised_share"])
    first_all = pa.array(first + [x.capitalize() for x in first])
    last_all = pa.array(lastn + [x.capitalize() for x in lastn])
    dom = S.take(pa.array(domains), di)
    num = S.num_str(email_no)
    norm = S.join(S.take(first_all, fi), ".", S.take(last_all, li), num, "@", dom)
    typed = S.join(S.take(first_all, fi + cap * len(first)), ".", S.take(last_all, li + cap * len(lastn)), num,
                   "@", dom)
    # the second record's email differs only in case / whitespace
    v = np.floor(rng.random(n2) * 4).astype(np.int8)
    base = typed.take(pa.array(second_people))
    variants = [pc.utf8_upper(base), S.join(base, " "), S.join(" ", base), pc.utf8_swapcase(base)]
    typed2 = pc.choose(pa.array(v), *variants) if n2 else pa.array([], pa.string())
    emails_typed = pa.concat_arrays([typed, typed2.cast(pa.string())])
    n_rec = n + n2
    rec_country = country[rec_person]
    prefix = S.take(pa.array([str(countries[c]["phone_prefix"]) for c in country_codes]), rec_country)
    phone_digits = rng.integers(10**9, 10**10, size=n_rec)
    phone = S.join(prefix, " ", S.from_matrix(S.digits(phone_digits // 10**7, 3)), " ",
                   S.from_matrix(S.digits(phone_digits % 10**7, 7)))
    phone_valid = rng.random(n_rec) < 0.85
    phone = pc.if_else(pa.array(phone_valid), phone, pa.nulls(n_rec, pa.string()))
    birth = (dt.date(1945, 1, 1) - EPOCH).days + np.floor(rng.random(n) * 365.25 * 62).astype(np.int64)
    gender = draw(np.cumsum([0.47, 0.47, 0.02, 0.04]), rng.random(n))
    opt_in = rng.random(n_rec) < 0.6
    # records updated inside the window (marketing_opt_in flips): appear again with a later updated_at
    upd = rng.random(n_rec) < float(idn["crm_update_share"])
    u_upd, u_init = rng.random(n_rec), rng.random(n_rec)
    first_upd = start_us + (DAY_US if days > 1 else 0)
    upd_from = np.maximum(rec_created + HOUR_US, first_upd)
    upd_us = upd_from + (u_upd * (end_us - upd_from)).astype(np.int64)
    upd = upd & (upd_us < end_us) & (upd_from < end_us)
    # the version in the initial export was written some time between creation and the window start
    rec_updated = np.where(rec_created < start_us,
                           rec_created + (u_init * (start_us - rec_created)).astype(np.int64), rec_created)

    # --- devices ------------------------------------------------------------------------------------------------
    ndev = 1 + rng.binomial(2, np.clip(sc["devices_extra_mean"][persona] / 2, 0, 1))
    n_dev = int(ndev.sum())
    dev_owner = np.repeat(np.arange(n), ndev)
    dp = persona[dev_owner]
    dev_platform = (rng.random(n_dev) < sc["app_share"][dp]).astype(np.int8)
    web_type = draw_by(params.web_device_cdf, dp, rng.random(n_dev))
    app_type = np.where(rng.random(n_dev) < 0.8, 1, 2)
    dev_type = np.where(dev_platform == 1, app_type, web_type).astype(np.int8)
    u_os = rng.random(n_dev)
    dev_os = np.zeros(n_dev, dtype=np.int8)
    for ti, tname in enumerate(DEVICE_TYPES):
        opts = OS_BY_TYPE[tname]
        cdf = np.cumsum([w for _, w in opts])
        sel = dev_type == ti
        choice = np.searchsorted(cdf, u_os[sel] * cdf[-1], side="right").clip(0, len(opts) - 1)
        dev_os[sel] = np.array([OS_NAMES.index(o) for o, _ in opts], dtype=np.int8)[choice]
    dev_anon = rng.integers(0, np.iinfo(np.uint64).max, size=n_dev, dtype=np.uint64, endpoint=True)
    while True:  # keep anonymous ids unique (a collision is astronomically rare)
        _, first_seen = np.unique(dev_anon, return_index=True)
        if first_seen.size == n_dev:
            break
        again = np.setdiff1d(np.arange(n_dev), first_seen)
        dev_anon[again] = rng.integers(0, np.iinfo(np.uint64).max, size=again.size, dtype=np.uint64, endpoint=True)
    # shared devices (a family tablet): the device is also used by another person
    n_shared = int(round(float(idn["shared_device_share"]) * n_dev)) if n > 1 else 0
    shared_dev = rng.choice(n_dev, size=n_shared, replace=False) if n_shared else np.zeros(0, np.int64)
    other = np.floor(rng.random(n_shared) * (n - 1)).astype(np.int64)
    other = np.where(other >= dev_owner[shared_dev], other + 1, other)
    pairs_p = np.concatenate([dev_owner, other])
    pairs_d = np.concatenate([np.arange(n_dev), shared_dev])
    order = np.lexsort((pairs_d, pairs_p))
    pd_dev = pairs_d[order]
    pd_ptr = np.concatenate([[0], np.cumsum(np.bincount(pairs_p, minlength=n))]).astype(np.int64)
    pp_sorted = pairs_p[order]
    csr = {}
    for plat in (0, 1):
        sel = dev_platform[pd_dev] == plat
        csr[plat] = (np.concatenate([[0], np.cumsum(np.bincount(pp_sorted[sel], minlength=n))]).astype(np.int64),
                     pd_dev[sel])

    # --- survey plan: one answer on a day the person is active -------------------------------------------------
    responds = rng.random(n) < params.survey_prob[persona]
    lo = np.maximum(signup_day, 0)
    base_stop = np.where(params.lapses[persona], stop_day_base, NO_DAY)
    hi = np.minimum(np.int64(days), base_stop.astype(np.int64))
    # (drift does not move the plan: the answer follows the persona in effect that day, and nobody answers
    # while inactive)
    u_day = rng.random(n)
    survey_day = np.where(responds & (hi > lo), lo + np.floor(u_day * (hi - lo)).astype(np.int64), NO_DAY)

    # planted first order soon after signup (new customers)
    u_fo, u_fd = rng.random(n), rng.random(n)
    fo_day = signup_day + np.floor(u_fd * params.first_order_days[persona]).astype(np.int64)
    first_order_day = np.where(in_window & (u_fo < params.first_order_prob[persona]), fo_day, NO_DAY)
    # planted last order shortly before a lapsing person stops
    u_lo, u_ld = rng.random(n), rng.random(n)
    lo_day = stop_day_base.astype(np.int64) - 1 - np.floor(u_ld * params.last_order_days[persona]).astype(np.int64)
    last_order_day = np.where(params.lapses[persona] & (u_lo < params.last_order_prob[persona]) & (lo_day >= 0),
                              lo_day, NO_DAY)

    phone_prefix = [str(countries[c]["phone_prefix"]) for c in country_codes]
    loyalty_ids = S.prefixed_ids("L", loyalty_num, 9, valid=has_loyalty)
    w = World(
        params=params, n=n, days=days, start=start, end=end, start_us=start_us, end_us=end_us,
        drift_day=drift_day, catalogue=catalogue, persona=persona, persona_after=persona_after,
        switch_day=switch_day, stop_day=stop_day, signup_us=signup_us, signup_day=signup_day, act=act,
        basket=basket, survey_offset=survey_offset, country=country, region=region, city=city,
        home_store=home_store, has_loyalty=has_loyalty, loyalty_num=loyalty_num, rec_person=rec_person,
        rec_number=numbers, rec_created_us=rec_created, rec_secondary=rec_secondary, second_rec=second_rec,
        dev_anon=dev_anon, dev_platform=dev_platform, dev_type=dev_type, dev_os=dev_os, dev_owner=dev_owner,
        pd_ptr=pd_ptr, pd_dev=pd_dev, pw_ptr=csr[0][0], pw_dev=csr[0][1], pa_ptr=csr[1][0], pa_dev=csr[1][1],
        survey_day=survey_day.astype(np.int32),
        first_order_day=first_order_day.astype(np.int32), last_order_day=last_order_day.astype(np.int32),
        rec_phone=phone, rec_opt_in=opt_in, rec_updated_us=rec_updated, rec_upd=upd, rec_upd_us=upd_us,
        birth_days=birth, gender=gender,
        country_codes=country_codes, region_names=region_names, city_names=city_names, phone_prefix=phone_prefix,
        customer_ids=S.prefixed_ids("C", numbers, 8), emails_typed=emails_typed, emails_norm=norm,
        loyalty_ids=loyalty_ids, anon_ids=S.hex_ids(dev_anon, 16),
        store_ids=S.prefixed_ids("S", np.arange(n_stores + 1), 3),
    )
    w.extras.update(first_idx=fi, last_idx=li, first_names=first, last_names=lastn, cap=cap,
                    region_country=np.array(region_country), n_stores=n_stores)
    return w
