"""Drawing the simulated population (world.py's World): personas and their random effects, signups, lapsing
and drift, homes, loyalty cards, CRM records with their emails and attributes, devices and who uses them, and
the planted survey answers and orders.

build_world runs these steps in a fixed order, all drawing from the one population stream: the order of the
steps, and of the draws inside each, is part of the output (reordering them changes every generated file). The
steps return small frozen records; build_world lays them out as the World's flat arrays.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.generate import strings as S
from seg.generate.params import DEVICE_TYPES, Params, draw, draw_by
from seg.generate.world import DAY_US, EPOCH, HOUR_US, NO_DAY, OS_BY_TYPE, OS_NAMES, World, build_catalogue, day_us


@dataclass(frozen=True)
class _Lapses:
    stop_day: np.ndarray              # int32 day index from which a lapsing person is inactive, after drift
    stop_day_base: np.ndarray         # the same before drift (the survey and order plans follow it)
    persona_after: np.ndarray
    switch_day: np.ndarray
    drift_day: int | None


@dataclass(frozen=True)
class _Homes:
    country_codes: list[str]
    region_names: list[str]
    city_names: list[str]
    region_country: np.ndarray        # per region: its country
    phone_prefix: list[str]           # per country
    country: np.ndarray               # per person
    region: np.ndarray
    city: np.ndarray
    n_stores: int
    home_store: np.ndarray


@dataclass(frozen=True)
class _Records:
    """CRM records: record i < n is person i's own, the people with a second record follow in person order."""

    person: np.ndarray
    number: np.ndarray
    created_us: np.ndarray
    secondary: np.ndarray
    second_rec: np.ndarray            # per person: index of the second record, -1 if none
    second_people: np.ndarray         # people with a second record, ascending


@dataclass(frozen=True)
class _Emails:
    first_names: list[str]
    last_names: list[str]
    first_idx: np.ndarray             # per person
    last_idx: np.ndarray
    cap: np.ndarray                   # per person: typed with capitalised names
    norm: pa.Array                    # per person (lower case)
    typed: pa.Array                   # per CRM record, as typed


@dataclass(frozen=True)
class _CrmAttributes:
    phone: pa.Array                   # per record
    opt_in: np.ndarray
    updated_us: np.ndarray
    upd: np.ndarray
    upd_us: np.ndarray
    birth_days: np.ndarray            # per person
    gender: np.ndarray


@dataclass(frozen=True)
class _Devices:
    owner: np.ndarray
    platform: np.ndarray
    type: np.ndarray
    os: np.ndarray
    anon: np.ndarray


@dataclass(frozen=True)
class _DeviceLinks:
    """Person -> devices as CSR (pointer per person, device indices), shared devices included."""

    pd_ptr: np.ndarray
    pd_dev: np.ndarray
    pw_ptr: np.ndarray                # web devices only
    pw_dev: np.ndarray
    pa_ptr: np.ndarray                # app devices only
    pa_dev: np.ndarray


def _draw_personas(params: Params, rng: np.random.Generator, n: int):
    """Base persona and the per-person random effects: activity (mean 1), basket size, survey offsets."""
    sc = params.scalar
    persona = draw(np.cumsum(sc["share"]), rng.random(n)).astype(np.int8)
    act = np.exp(rng.normal(0.0, 1.0, n) * sc["activity_sigma"][persona] - 0.5 * sc["activity_sigma"][persona] ** 2)
    basket = np.exp(rng.normal(0.0, 1.0, n) * sc["basket_sigma"][persona])
    survey_offset = rng.normal(0.0, 0.35, (n, 5))
    return persona, act, basket, survey_offset


def _draw_signups(params: Params, rng: np.random.Generator, persona: np.ndarray, days: int,
                  start_us: int) -> np.ndarray:
    """Signup time per person: up to ~4 years before the window, or inside it for in-window personas (within
    their last `signup_last_days`, at a persona hour)."""
    n = persona.size
    u_signup = rng.random(n)
    before = start_us - ((1 + u_signup * 1500) * DAY_US).astype(np.int64)
    last = np.minimum(params.signup_last_days[persona], days)
    in_day = days - 1 - np.floor(rng.random(n) * last).astype(np.int64)
    hour = draw_by(params.hour_cdf, persona, rng.random(n))
    inside = start_us + in_day * DAY_US + hour * HOUR_US + (rng.random(n) * HOUR_US).astype(np.int64)
    return np.where(params.in_window[persona], inside, before).astype(np.int64)


def _draw_lapses(params: Params, rng: np.random.Generator, persona: np.ndarray, days: int, start: dt.date,
                 drift_from: dt.date | None) -> _Lapses:
    """When lapsing personas stop, and who switches persona at drift_from. The switch draws happen with or
    without drift, so the rest of the stream does not depend on drift_from."""
    n = persona.size
    lapse = rng.integers(params.lapse_lo[persona], params.lapse_hi[persona] + 1)
    stop_day = np.maximum(days - lapse, math.ceil(0.3 * days)).astype(np.int32)
    stop_day_base = np.where(params.lapses[persona], stop_day, NO_DAY).astype(np.int32)
    u_switch, u_target = rng.random(n), rng.random(n)
    stop_day = stop_day_base.copy()
    persona_after = np.full(n, -1, dtype=np.int8)
    switch_day = np.full(n, NO_DAY, dtype=np.int32)
    drift_day = None if drift_from is None else (drift_from - start).days
    if drift_day is not None:
        _switch_personas(params, persona, u_switch, u_target, drift_day, persona_after, switch_day, stop_day)
    return _Lapses(stop_day=stop_day, stop_day_base=stop_day_base, persona_after=persona_after,
                   switch_day=switch_day, drift_day=drift_day)


def _switch_personas(params: Params, persona: np.ndarray, u_switch: np.ndarray, u_target: np.ndarray,
                     drift_day: int, persona_after: np.ndarray, switch_day: np.ndarray, stop_day: np.ndarray) -> None:
    """Drift, in place: a share (drift.share of everyone) of the people whose persona has drift targets switches
    on drift_day; a switch to a lapsing persona stops them that day."""
    targets = params.drift_targets
    eligible = targets[persona].sum(axis=1) > 0
    n_el = int(eligible.sum())
    if not n_el:
        return
    p = min(1.0, float(params.raw["drift"]["share"]) * persona.size / n_el)
    switch = eligible & (u_switch < p)
    tgt = draw_by(np.cumsum(targets, axis=1), persona, u_target).astype(np.int8)
    persona_after[switch] = tgt[switch]
    switch_day[switch] = drift_day
    stop_day[switch & params.lapses[tgt]] = drift_day


def _geography(countries: dict):
    """Countries -> regions -> cities as flat name lists, with each country's region range and each region's
    city range."""
    country_codes = list(countries)
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
    ranges = tuple(np.array(x) for x in (reg_lo, reg_hi, city_lo, city_hi))
    return country_codes, region_names, city_names, np.array(region_country), ranges


def _draw_homes(raw: dict, rng: np.random.Generator, n: int) -> _Homes:
    """Where each person lives (country by share, then a region and a city uniformly) and their home store."""
    countries = raw["countries"]
    country_codes, region_names, city_names, region_country, ranges = _geography(countries)
    reg_lo, reg_hi, city_lo, city_hi = ranges
    c_cdf = np.cumsum([float(countries[c]["share"]) for c in country_codes])
    c_cdf /= c_cdf[-1]
    country = draw(c_cdf, rng.random(n))
    region = reg_lo[country] + np.floor(rng.random(n) * (reg_hi - reg_lo)[country]).astype(np.int64)
    city = city_lo[region] + np.floor(rng.random(n) * (city_hi - city_lo)[region]).astype(np.int64)
    n_stores = int(raw["stores"])
    home_store = 1 + np.floor(rng.random(n) * n_stores).astype(np.int64)
    return _Homes(country_codes=country_codes, region_names=region_names, city_names=city_names,
                  region_country=region_country,
                  phone_prefix=[str(countries[c]["phone_prefix"]) for c in country_codes],
                  country=country, region=region, city=city, n_stores=n_stores, home_store=home_store)


def _draw_loyalty(params: Params, rng: np.random.Generator, persona: np.ndarray):
    """Who holds a loyalty card (persona share) and its unique 9-digit number (0 where none)."""
    n = persona.size
    has_loyalty = rng.random(n) < params.scalar["loyalty_share"][persona]
    loyalty_num = np.zeros(n, dtype=np.int64)
    k = int(has_loyalty.sum())
    loyalty_num[has_loyalty] = rng.choice(10**9, size=k, replace=False)
    return has_loyalty, loyalty_num


def _draw_crm_records(idn: dict, rng: np.random.Generator, signup_us: np.ndarray, in_window: np.ndarray,
                      start_us: int, end_us: int) -> _Records:
    """One CRM record per person, created at signup, and a second one for some people (the identity puzzle),
    created between signup and the window's end (before the window for people who signed up before it)."""
    n = signup_us.size
    has_second = rng.random(n) < float(idn["second_crm_record_share"])
    second_people = np.flatnonzero(has_second)
    n2 = second_people.size
    numbers = rng.choice(10**8, size=n + n2, replace=False).astype(np.int64)
    u2 = rng.random(n2)
    sp_signup = signup_us[second_people]
    horizon = np.where(in_window[second_people], end_us - HOUR_US, start_us)
    created2 = sp_signup + (u2 * np.maximum(horizon - sp_signup, 0)).astype(np.int64)
    second_rec = np.full(n, -1, dtype=np.int64)
    second_rec[second_people] = n + np.arange(n2)
    return _Records(person=np.concatenate([np.arange(n), second_people]), number=numbers,
                    created_us=np.concatenate([signup_us, created2]),
                    secondary=np.concatenate([np.zeros(n, bool), np.ones(n2, bool)]),
                    second_rec=second_rec, second_people=second_people)


def _names(raw: dict) -> tuple[list[str], list[str]]:
    return [str(x) for x in raw["names"]["first"]], [str(x) for x in raw["names"]["last"]]


def _draw_emails(raw: dict, rng: np.random.Generator, n: int, second_people: np.ndarray) -> _Emails:
    """Names and emails first.last<unique number>@domain, typed capitalised by some people; a second record's
    email differs from the first only in case or whitespace (so normalising joins them)."""
    idn = raw["identity"]
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
    n2 = second_people.size
    v = np.floor(rng.random(n2) * 4).astype(np.int8)
    base = typed.take(pa.array(second_people))
    variants = [pc.utf8_upper(base), S.join(base, " "), S.join(" ", base), pc.utf8_swapcase(base)]
    typed2 = pc.choose(pa.array(v), *variants) if n2 else pa.array([], pa.string())
    return _Emails(first_names=first, last_names=lastn, first_idx=fi, last_idx=li, cap=cap, norm=norm,
                   typed=pa.concat_arrays([typed, typed2.cast(pa.string())]))


def _draw_crm_attributes(idn: dict, rng: np.random.Generator, homes: _Homes, rec: _Records, days: int,
                         start_us: int, end_us: int) -> _CrmAttributes:
    """The CRM columns besides ids and emails: phone (85 % valid), birth date, gender, marketing opt-in, and the
    record versions (some records are updated once more inside the window, when their opt-in flips)."""
    n, n_rec = homes.country.size, rec.person.size
    prefix = S.take(pa.array(homes.phone_prefix), homes.country[rec.person])
    phone_digits = rng.integers(10**9, 10**10, size=n_rec)
    phone = S.join(prefix, " ", S.from_matrix(S.digits(phone_digits // 10**7, 3)), " ",
                   S.from_matrix(S.digits(phone_digits % 10**7, 7)))
    phone_valid = rng.random(n_rec) < 0.85
    phone = pc.if_else(pa.array(phone_valid), phone, pa.nulls(n_rec, pa.string()))
    birth = (dt.date(1945, 1, 1) - EPOCH).days + np.floor(rng.random(n) * 365.25 * 62).astype(np.int64)
    gender = draw(np.cumsum([0.47, 0.47, 0.02, 0.04]), rng.random(n))
    opt_in = rng.random(n_rec) < 0.6
    upd = rng.random(n_rec) < float(idn["crm_update_share"])
    u_upd, u_init = rng.random(n_rec), rng.random(n_rec)
    # the update lands after the creation and after the first day (the initial export)
    first_upd = start_us + (DAY_US if days > 1 else 0)
    upd_from = np.maximum(rec.created_us + HOUR_US, first_upd)
    upd_us = upd_from + (u_upd * (end_us - upd_from)).astype(np.int64)
    upd = upd & (upd_us < end_us) & (upd_from < end_us)
    # the version in the initial export was written some time between creation and the window start
    created = rec.created_us
    updated = np.where(created < start_us, created + (u_init * (start_us - created)).astype(np.int64), created)
    return _CrmAttributes(phone=phone, opt_in=opt_in, updated_us=updated, upd=upd, upd_us=upd_us,
                          birth_days=birth, gender=gender)


def _device_os(dev_type: np.ndarray, u_os: np.ndarray) -> np.ndarray:
    """Operating system per device, by the OS_BY_TYPE weights of its type."""
    dev_os = np.zeros(dev_type.size, dtype=np.int8)
    for ti, tname in enumerate(DEVICE_TYPES):
        opts = OS_BY_TYPE[tname]
        cdf = np.cumsum([w for _, w in opts])
        sel = dev_type == ti
        choice = np.searchsorted(cdf, u_os[sel] * cdf[-1], side="right").clip(0, len(opts) - 1)
        dev_os[sel] = np.array([OS_NAMES.index(o) for o, _ in opts], dtype=np.int8)[choice]
    return dev_os


def _draw_anon_ids(rng: np.random.Generator, n_dev: int) -> np.ndarray:
    """Unique random 64-bit anonymous id numbers (a collision is astronomically rare; it is redrawn)."""
    dev_anon = rng.integers(0, np.iinfo(np.uint64).max, size=n_dev, dtype=np.uint64, endpoint=True)
    while True:
        _, first_seen = np.unique(dev_anon, return_index=True)
        if first_seen.size == n_dev:
            return dev_anon
        again = np.setdiff1d(np.arange(n_dev), first_seen)
        dev_anon[again] = rng.integers(0, np.iinfo(np.uint64).max, size=again.size, dtype=np.uint64, endpoint=True)


def _draw_devices(params: Params, rng: np.random.Generator, persona: np.ndarray) -> _Devices:
    """One to three devices per person: web (desktop/mobile/tablet by persona) or app (mobile 80 %, else
    tablet), an OS and an anonymous id each."""
    sc = params.scalar
    ndev = 1 + rng.binomial(2, np.clip(sc["devices_extra_mean"][persona] / 2, 0, 1))
    n_dev = int(ndev.sum())
    dev_owner = np.repeat(np.arange(persona.size), ndev)
    dp = persona[dev_owner]
    dev_platform = (rng.random(n_dev) < sc["app_share"][dp]).astype(np.int8)
    web_type = draw_by(params.web_device_cdf, dp, rng.random(n_dev))
    app_type = np.where(rng.random(n_dev) < 0.8, 1, 2)
    dev_type = np.where(dev_platform == 1, app_type, web_type).astype(np.int8)
    dev_os = _device_os(dev_type, rng.random(n_dev))
    return _Devices(owner=dev_owner, platform=dev_platform, type=dev_type, os=dev_os,
                    anon=_draw_anon_ids(rng, n_dev))


def _link_devices(idn: dict, rng: np.random.Generator, n: int, dev: _Devices) -> _DeviceLinks:
    """Who uses which device: its owner, and for shared devices (a family tablet) one other person too."""
    n_dev = dev.owner.size
    n_shared = int(round(float(idn["shared_device_share"]) * n_dev)) if n > 1 else 0
    shared_dev = rng.choice(n_dev, size=n_shared, replace=False) if n_shared else np.zeros(0, np.int64)
    other = np.floor(rng.random(n_shared) * (n - 1)).astype(np.int64)
    other = np.where(other >= dev.owner[shared_dev], other + 1, other)  # anyone but the owner
    pairs_p = np.concatenate([dev.owner, other])
    pairs_d = np.concatenate([np.arange(n_dev), shared_dev])
    order = np.lexsort((pairs_d, pairs_p))
    pd_dev = pairs_d[order]
    pd_ptr = np.concatenate([[0], np.cumsum(np.bincount(pairs_p, minlength=n))]).astype(np.int64)
    pp_sorted = pairs_p[order]
    csr = {}
    for plat in (0, 1):
        sel = dev.platform[pd_dev] == plat
        csr[plat] = (np.concatenate([[0], np.cumsum(np.bincount(pp_sorted[sel], minlength=n))]).astype(np.int64),
                     pd_dev[sel])
    return _DeviceLinks(pd_ptr=pd_ptr, pd_dev=pd_dev, pw_ptr=csr[0][0], pw_dev=csr[0][1], pa_ptr=csr[1][0],
                        pa_dev=csr[1][1])


def _plan_survey(params: Params, rng: np.random.Generator, persona: np.ndarray, signup_day: np.ndarray,
                 stop_day_base: np.ndarray, days: int) -> np.ndarray:
    """The day of each respondent's one survey answer: uniform over the days they are active (NO_DAY: none).
    Drift does not move the plan: the answer follows the persona in effect that day, and nobody answers while
    inactive."""
    n = persona.size
    responds = rng.random(n) < params.survey_prob[persona]
    lo = np.maximum(signup_day, 0)
    base_stop = np.where(params.lapses[persona], stop_day_base, NO_DAY)
    hi = np.minimum(np.int64(days), base_stop.astype(np.int64))
    u_day = rng.random(n)
    survey_day = np.where(responds & (hi > lo), lo + np.floor(u_day * (hi - lo)).astype(np.int64), NO_DAY)
    return survey_day.astype(np.int32)


def _plan_orders(params: Params, rng: np.random.Generator, persona: np.ndarray, signup_day: np.ndarray,
                 stop_day_base: np.ndarray):
    """Planted orders (NO_DAY: none): a first order soon after an in-window signup (new customers), and a last
    order shortly before a lapsing person stops."""
    n = persona.size
    u_fo, u_fd = rng.random(n), rng.random(n)
    fo_day = signup_day + np.floor(u_fd * params.first_order_days[persona]).astype(np.int64)
    first_order_day = np.where(params.in_window[persona] & (u_fo < params.first_order_prob[persona]), fo_day,
                               NO_DAY)
    u_lo, u_ld = rng.random(n), rng.random(n)
    lo_day = stop_day_base.astype(np.int64) - 1 - np.floor(u_ld * params.last_order_days[persona]).astype(np.int64)
    last_order_day = np.where(params.lapses[persona] & (u_lo < params.last_order_prob[persona]) & (lo_day >= 0),
                              lo_day, NO_DAY)
    return first_order_day.astype(np.int32), last_order_day.astype(np.int32)


def build_world(params: Params, rng: np.random.Generator, *, customers: int, days: int, end: dt.date,
                drift_from: dt.date | None) -> World:
    """The run's population, drawn from `rng` in this order (the order fixes every draw)."""
    n, raw = customers, params.raw
    start = end - dt.timedelta(days=days - 1)
    start_us, end_us = day_us(start), day_us(end) + DAY_US
    catalogue = build_catalogue(params, rng)
    persona, act, basket, survey_offset = _draw_personas(params, rng, n)
    signup_us = _draw_signups(params, rng, persona, days, start_us)
    signup_day = np.floor_divide(signup_us - start_us, DAY_US).astype(np.int32)
    lapses = _draw_lapses(params, rng, persona, days, start, drift_from)
    homes = _draw_homes(raw, rng, n)
    has_loyalty, loyalty_num = _draw_loyalty(params, rng, persona)
    rec = _draw_crm_records(raw["identity"], rng, signup_us, params.in_window[persona], start_us, end_us)
    emails = _draw_emails(raw, rng, n, rec.second_people)
    crm = _draw_crm_attributes(raw["identity"], rng, homes, rec, days, start_us, end_us)
    dev = _draw_devices(params, rng, persona)
    links = _link_devices(raw["identity"], rng, n, dev)
    survey_day = _plan_survey(params, rng, persona, signup_day, lapses.stop_day_base, days)
    first_order_day, last_order_day = _plan_orders(params, rng, persona, signup_day, lapses.stop_day_base)
    w = World(
        params=params, n=n, days=days, start=start, end=end, start_us=start_us, end_us=end_us,
        drift_day=lapses.drift_day, catalogue=catalogue, persona=persona, persona_after=lapses.persona_after,
        switch_day=lapses.switch_day, stop_day=lapses.stop_day, signup_us=signup_us, signup_day=signup_day,
        act=act, basket=basket, survey_offset=survey_offset, country=homes.country, region=homes.region,
        city=homes.city, home_store=homes.home_store, has_loyalty=has_loyalty, loyalty_num=loyalty_num,
        rec_person=rec.person, rec_number=rec.number, rec_created_us=rec.created_us, rec_secondary=rec.secondary,
        second_rec=rec.second_rec, dev_anon=dev.anon, dev_platform=dev.platform, dev_type=dev.type,
        dev_os=dev.os, dev_owner=dev.owner, pd_ptr=links.pd_ptr, pd_dev=links.pd_dev, pw_ptr=links.pw_ptr,
        pw_dev=links.pw_dev, pa_ptr=links.pa_ptr, pa_dev=links.pa_dev, survey_day=survey_day,
        first_order_day=first_order_day, last_order_day=last_order_day, rec_phone=crm.phone,
        rec_opt_in=crm.opt_in, rec_updated_us=crm.updated_us, rec_upd=crm.upd, rec_upd_us=crm.upd_us,
        birth_days=crm.birth_days, gender=crm.gender, country_codes=homes.country_codes,
        region_names=homes.region_names, city_names=homes.city_names, phone_prefix=homes.phone_prefix,
        customer_ids=S.prefixed_ids("C", rec.number, 8), emails_typed=emails.typed, emails_norm=emails.norm,
        loyalty_ids=S.prefixed_ids("L", loyalty_num, 9, valid=has_loyalty), anon_ids=S.hex_ids(dev.anon, 16),
        store_ids=S.prefixed_ids("S", np.arange(homes.n_stores + 1), 3),
    )
    w.extras.update(first_idx=emails.first_idx, last_idx=emails.last_idx, first_names=emails.first_names,
                    last_names=emails.last_names, cap=emails.cap, region_country=homes.region_country,
                    n_stores=homes.n_stores)
    return w
