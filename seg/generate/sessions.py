"""Online sessions and what happens in them: who browses or buys on which device and when, how many events of
each type a session holds, which products those events touch and when each event happens.

Planted behaviour starts here: carts left behind (cart_prob, checkout_abandon_prob) and products viewed again and
again in one session (repeated_view_prob). The events table itself (urls, properties) is built in events.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.context import SECOND, Counters, Day, within
from seg.generate.params import draw_by
from seg.generate.world import HOUR_US, World

EVENT_TYPES = ("page_view", "login", "product_view", "search", "scroll_depth", "video_play", "add_to_cart",
               "remove_from_cart", "checkout_started", "purchase")
T = {name: i for i, name in enumerate(EVENT_TYPES)}
PRODUCT_EVENTS = (T["product_view"], T["add_to_cart"], T["remove_from_cart"], T["video_play"])


def _scramble(x: np.ndarray) -> np.ndarray:
    """A bijection on uint64 (splitmix64 finaliser): sequential numbers -> random-looking hex ids."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def session_ids(numbers: np.ndarray) -> pa.Array:
    return S.hex_ids(_scramble(numbers), 16, prefix="s-")


@dataclass
class Sessions:
    """The day's online sessions, grouped by person (all arrays indexed by session)."""

    person: np.ndarray       # person of the session
    persona: np.ndarray      # the person's persona in effect
    buy: np.ndarray          # the session ends in an order (one per buy session)
    dev: np.ndarray          # device used
    platform: np.ndarray     # channel code of the device (web / app)
    start: np.ndarray        # start time (us)
    guest: np.ndarray        # buy session checked out as guest
    logged: np.ndarray       # the session has a login event
    login_rec: np.ndarray    # CRM record logged in with (the person's second record for some)
    fix: np.ndarray          # a browse session that views one product again and again
    n_add: np.ndarray        # add_to_cart events
    removal: np.ndarray      # buy session that removes its last added line
    counts: np.ndarray       # [session, event type] number of events
    number: np.ndarray       # sequential session number (-> session_id)
    sid_valid: np.ndarray    # the session id is delivered (not missing)

    @property
    def n(self) -> int:
        return int(self.person.size)


@dataclass
class SessionEvents:
    """The day's events in block order (all page_views, then all logins, ... as EVENT_TYPES) before they are
    sorted by time; plus the product_view and add_to_cart details orders and the truth need."""

    sess: np.ndarray         # session of the event
    j: np.ndarray            # position within the session's events of its type
    type: np.ndarray         # event type code
    slices: list[slice]      # per event type: its block
    product: np.ndarray      # product touched (-1: none)
    t: np.ndarray            # time (us)
    has_cid: np.ndarray      # the event carries the customer id (at or after the session's login)
    sess_end: np.ndarray     # per session: time of its last event
    pv_sess: np.ndarray      # product_view block: session
    pv_prod: np.ndarray      # product_view block: product
    add_sess: np.ndarray     # add_to_cart block: session
    add_j: np.ndarray        # add_to_cart block: position within the session's adds
    add_prod: np.ndarray     # add_to_cart block: product
    add_qty: np.ndarray      # add_to_cart block: quantity
    cart_value: np.ndarray   # per session: value of everything added to the cart
    cart_items: np.ndarray   # per session: quantity of everything added to the cart

    @property
    def n(self) -> int:
        return int(self.sess.size)


def draw_sessions(day: Day, w: World, ctr: Counters, weekday_factor: float) -> Sessions:
    """Who has which sessions today (buy sessions first per person), on which device, from when, and how many
    events of each type each holds."""
    rng, p, sc, eff, d = day.rng, w.params, w.params.scalar, day.eff, day.d
    idn = p.raw["identity"]
    n_o = rng.poisson(sc["online_orders_per_day"][eff] * day.base * weekday_factor)
    n_o += ((w.first_order_day == d) | ((w.last_order_day == d) & (eff == w.persona))) & day.active
    n_b = rng.poisson(sc["browse_sessions_per_day"][eff] * day.base * weekday_factor)
    sp, rank = within(n_o + n_b)
    ns = sp.size
    buy = rank < n_o[sp]
    pe = eff[sp]
    # platform: the persona's app preference when the person has both kinds of device
    n_web = w.pw_ptr[sp + 1] - w.pw_ptr[sp]
    n_app = w.pa_ptr[sp + 1] - w.pa_ptr[sp]
    want_app = rng.random(ns) < sc["app_share"][pe]
    use_app = (n_app > 0) & (want_app | (n_web == 0))
    u_dev = rng.random(ns)
    web_pick = w.pw_dev[np.minimum(w.pw_ptr[sp] + np.floor(u_dev * n_web).astype(np.int64), w.pw_dev.size - 1)] \
        if w.pw_dev.size else np.zeros(ns, np.int64)
    app_pick = w.pa_dev[np.minimum(w.pa_ptr[sp] + np.floor(u_dev * n_app).astype(np.int64), w.pa_dev.size - 1)] \
        if w.pa_dev.size else np.zeros(ns, np.int64)
    dev = np.where(use_app, app_pick, web_pick)
    hour = draw_by(p.hour_cdf, pe, rng.random(ns))
    start = day.day0 + hour * HOUR_US + (rng.random(ns) * HOUR_US).astype(np.int64)
    su = w.signup_us[sp]
    start = np.where(su >= day.day0, su + (rng.random(ns) * (day.day1 - su)).astype(np.int64), start)
    guest = buy & (rng.random(ns) < sc["guest_checkout_share"][pe])
    logged = np.where(buy, ~guest, rng.random(ns) < sc["login_prob"][pe])
    sec = w.second_rec[sp]
    use2 = (sec >= 0) & (w.rec_created_us[np.maximum(sec, 0)] <= start) & \
        (rng.random(ns) < float(idn["second_id_login_share"]))
    login_rec = np.where(use2, sec, sp)
    cart = ~buy & (rng.random(ns) < sc["cart_prob"][pe])
    fix = ~buy & (rng.random(ns) < sc["repeated_view_prob"][pe])
    n_lines = np.where(buy, 1 + rng.poisson(np.maximum(sc["lines_per_order"][pe] - 1, 0)), 0)
    removal = buy & (rng.random(ns) < 0.08)
    n_add = np.where(buy, n_lines + removal, np.where(cart, 1 + rng.poisson(0.3, ns), 0))
    pv_mean = sc["product_views_per_session"][pe]
    n_pv = np.where(buy, n_add + rng.poisson(0.3 * pv_mean), rng.poisson(pv_mean) + 3 * fix)
    n_pv = np.maximum(n_pv, n_add)
    checkout = np.where(buy, 1, cart & (rng.random(ns) < sc["checkout_abandon_prob"][pe]))
    counts = np.stack([
        1 + rng.poisson(sc["pages_per_session"][pe]),          # page_view
        logged.astype(np.int64),                               # login
        n_pv,                                                  # product_view
        rng.poisson(sc["searches_per_session"][pe]),           # search
        rng.poisson(sc["scrolls_per_session"][pe]),            # scroll_depth
        rng.poisson(sc["videos_per_session"][pe]),             # video_play
        n_add,                                                 # add_to_cart
        removal.astype(np.int64),                              # remove_from_cart
        checkout.astype(np.int64),                             # checkout_started
        buy.astype(np.int64),                                  # purchase
    ], axis=1).astype(np.int64)
    sess_no = ctr.session + np.arange(ns, dtype=np.int64)
    ctr.session += ns
    sid_valid = rng.random(ns) >= float(idn["session_id_missing_share"])
    return Sessions(person=sp, persona=pe, buy=buy, dev=dev, platform=w.dev_platform[dev], start=start, guest=guest,
                    logged=logged, login_rec=login_rec, fix=fix, n_add=n_add, removal=removal, counts=counts,
                    number=sess_no, sid_valid=sid_valid)


def draw_session_events(day: Day, w: World, s: Sessions) -> SessionEvents:
    """The sessions' events: block layout, products touched, then their times within each session."""
    sess, j, typ, slices = _layout(s.counts)
    product, pv_sess, pv_prod, add_sess, add_j, add_prod, add_qty = _products(day.rng, w, s, sess, j, slices)
    t, has_cid, sess_end = _times(day.rng, w, s, sess, j, typ, slices)
    price = w.catalogue.price
    cart_value = np.bincount(add_sess, weights=add_qty * price[add_prod], minlength=s.n)
    cart_items = np.bincount(add_sess, weights=add_qty, minlength=s.n)
    return SessionEvents(sess=sess, j=j, type=typ, slices=slices, product=product, t=t, has_cid=has_cid,
                         sess_end=sess_end, pv_sess=pv_sess, pv_prod=pv_prod, add_sess=add_sess, add_j=add_j,
                         add_prod=add_prod, add_qty=add_qty, cart_value=cart_value, cart_items=cart_items)


def _layout(counts: np.ndarray):
    """One block of events per type: (session, position within type, type) per event, and each type's slice."""
    blocks_sess, blocks_j, blocks_type, slices = [], [], [], []
    off = 0
    for t in range(len(EVENT_TYPES)):
        o, j = within(counts[:, t])
        blocks_sess.append(o)
        blocks_j.append(j)
        blocks_type.append(np.full(o.size, t, dtype=np.int8))
        slices.append(slice(off, off + o.size))
        off += o.size
    return np.concatenate(blocks_sess), np.concatenate(blocks_j), np.concatenate(blocks_type), slices


def _products(rng, w: World, s: Sessions, sess, j, slices):
    """Products of product_view, add_to_cart (among the viewed ones), remove_from_cart (the last add) and
    video_play events; quantities of the adds."""
    p, sc, cat = w.params, w.params.scalar, w.catalogue
    sp, pe, counts = s.person, s.persona, s.counts
    pv = T["product_view"]
    pv_first = np.cumsum(counts[:, pv]) - counts[:, pv]
    pv_sl = slices[pv]
    product = np.full(sess.size, -1, dtype=np.int64)
    pv_sess, pv_j = sess[pv_sl], j[pv_sl]
    pv_prod = cat.pick(rng, p.category_cdf, pe[pv_sess], sc["price_level"][pe[pv_sess]] * w.basket[sp[pv_sess]],
                       sc["price_noise"][pe[pv_sess]])
    fixed = s.fix[pv_sess] & (pv_j > 0) & (pv_j < 3)
    pv_prod = np.where(fixed, pv_prod[np.maximum(pv_first[pv_sess], 0)], pv_prod)
    # pv_first indexes into the product_view block, which starts at 0 in pv_prod
    product[pv_sl] = pv_prod
    add_sl = slices[T["add_to_cart"]]
    add_sess, add_j = sess[add_sl], j[add_sl]
    add_prod = pv_prod[pv_first[add_sess] + add_j]
    product[add_sl] = add_prod
    rm_sl = slices[T["remove_from_cart"]]
    rm_sess = sess[rm_sl]
    product[rm_sl] = pv_prod[pv_first[rm_sess] + s.n_add[rm_sess] - 1]
    vid_sl = slices[T["video_play"]]
    vs = sess[vid_sl]
    vid_prod = cat.pick(rng, p.category_cdf, pe[vs], sc["price_level"][pe[vs]], sc["price_noise"][pe[vs]])
    product[vid_sl] = np.where(rng.random(vs.size) < 0.6, vid_prod, -1)
    add_qty = 1 + np.minimum(rng.poisson(sc["extra_quantity_mean"][pe[add_sess]]), 9)
    return product, pv_sess, pv_prod, add_sess, add_j, add_prod, add_qty


def _times(rng, w: World, s: Sessions, sess, j, typ, slices):
    """Event times: (event time, carries customer id, per session the time of its last event)."""
    sc = w.params.scalar
    ns, ne = s.n, sess.size
    # within-session order: landing page, login anywhere before checkout, browsing, adds, removal, checkout,
    # purchase
    u = rng.random(ne)
    key = 2.0 + u
    is_t = [typ == t for t in range(len(EVENT_TYPES))]
    key = np.where(is_t[T["page_view"]] & (j == 0), 0.0, key)
    key = np.where(is_t[T["login"]], 1.0 + 3.9 * u, key)
    key = np.where(is_t[T["add_to_cart"]], 3.0 + 0.001 * j, key)
    key = np.where(is_t[T["remove_from_cart"]], 4.0 + 0.5 * u, key)
    key = np.where(is_t[T["checkout_started"]], 5.0, key)
    key = np.where(is_t[T["purchase"]], 6.0, key)
    login_key = np.full(ns, np.inf)
    lg_sl = slices[T["login"]]
    login_key[sess[lg_sl]] = key[lg_sl]
    has_cid = s.logged[sess] & (key >= login_key[sess])
    order_in_sess = np.argsort(sess * 8.0 + key, kind="stable")
    s_sorted = sess[order_in_sess]
    gap = np.round(rng.exponential(1.0, ne) * sc["seconds_between_events"][s.persona[s_sorted]] * SECOND) \
        .astype(np.int64)
    first_of = np.ones(ne, dtype=bool)
    first_of[1:] = s_sorted[1:] != s_sorted[:-1]
    gap[first_of] = 0
    cs = np.cumsum(gap)
    sess_first_pos = np.flatnonzero(first_of)
    # cumulated gap at each session's first event (sessions with events: all of them)
    t_sorted = s.start[s_sorted] + cs - cs[sess_first_pos][np.cumsum(first_of) - 1]
    ev_t = np.empty(ne, dtype=np.int64)
    ev_t[order_in_sess] = t_sorted
    sess_end = np.full(ns, np.iinfo(np.int64).min, dtype=np.int64)
    if ne:
        np.maximum.at(sess_end, sess, ev_t)
    return ev_t, has_cid, sess_end
