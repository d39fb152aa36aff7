"""One simulated day: sessions and events, web/app orders, store visits and orders, survey answers, CRM rows.

Everything is vectorised over the day's sessions / events / orders; the only Python loops run over event
types, questions or sources. Planted behaviour (cart abandonment, repeated product views, lapsing) is driven
by persona parameters; the exact truth is computed afterwards from what was generated (truth.py).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.generate import strings as S
from seg.generate.params import CHANNELS, DEVICE_TYPES, QUESTIONS, STATUSES, draw, draw_by
from seg.generate.tables import to_table
from seg.generate.world import DAY_US, GENDERS, HOUR_US, OS_NAMES, World

EVENT_TYPES = ("page_view", "login", "product_view", "search", "scroll_depth", "video_play", "add_to_cart",
               "remove_from_cart", "checkout_started", "purchase")
T = {name: i for i, name in enumerate(EVENT_TYPES)}
PRODUCT_EVENTS = (T["product_view"], T["add_to_cart"], T["remove_from_cart"], T["video_play"])
REFERRERS = ("direct", "https://www.google.com/", "https://www.instagram.com/", "https://www.facebook.com/",
             "newsletter", "https://www.bing.com/", "/", "/sale")
LOGIN_METHODS = ("password", "sso", "magic_link")
STATIC_PAGES = ("/", "/sale", "/new", "/account", "/help", "/stores")
SECOND = 1_000_000


@dataclass
class Counters:
    """Running identifier counters (ids are sequential in time order within a run)."""

    event: int = 100_000_000_000
    order: int = 1_000_000_000
    visit: int = 1_000_000_000
    response: int = 1_000_000_000
    session: int = 1


@dataclass
class TruthAcc:
    """What the truth computation needs, accumulated day by day (compact numpy chunks)."""

    carts: list = field(default_factory=list)        # per session with add_to_cart
    views: list = field(default_factory=list)        # (person, product, t) per product_view
    bought: list = field(default_factory=list)       # (person, product, t) per order line
    orders: list = field(default_factory=list)       # (person, t) per order
    last_activity: np.ndarray | None = None
    n_orders: np.ndarray | None = None


def _scramble(x: np.ndarray) -> np.ndarray:
    """A bijection on uint64 (splitmix64 finaliser): sequential numbers -> random-looking hex ids."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def session_ids(numbers: np.ndarray) -> pa.Array:
    return S.hex_ids(_scramble(numbers), 16, prefix="s-")


def _within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: (group index per element, position within the group)."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - starts[owner]


def _amounts(order, qty, price, disc, n_orders):
    """Order totals = sum(quantity * unit_price * (1 - discount)) rounded to cents, computed exactly in
    integers. A total that would end in exactly half a cent is avoided (one discount moves by 0.01), so
    anyone re-summing the lines in floating point rounds to the same cent."""
    cents = np.round(price * 100).astype(np.int64)
    pct = np.round(disc * 100).astype(np.int64)
    for _ in range(20):
        line = qty.astype(np.int64) * cents * (100 - pct)            # 1/10000 EUR
        total = np.zeros(n_orders, dtype=np.int64)
        np.add.at(total, order, line)
        tie = total % 100 == 50
        if not tie.any():
            break
        # first discounted line of each tied order
        cand = np.flatnonzero(tie[order] & (pct > 0) & (pct < 99))
        _, first = np.unique(order[cand], return_index=True)
        pct[cand[first]] += 1
    return pct / 100.0, (total + 50) // 100 / 100.0


def _json_parts(*parts) -> pa.Array:
    return S.join(*parts)


class DaySimulator:
    def __init__(self, world: World, seed: int):
        self.w = world
        self.seed = seed
        self.ctr = Counters()
        self.acc = TruthAcc(last_activity=np.full(world.n, np.iinfo(np.int64).min, dtype=np.int64),
                            n_orders=np.zeros(world.n, dtype=np.int32))
        p = world.params
        raw = p.raw
        self.wf_online = np.array(raw["weekday_factor"]["online"], dtype=np.float64)
        self.wf_store = np.array(raw["weekday_factor"]["store"], dtype=np.float64)
        self.store_open = float(raw["store_hours"]["open"])
        self.store_close = float(raw["store_hours"]["close"])
        self.idn = raw["identity"]
        cats = raw["catalogue"]["categories"]
        terms, term_lo, term_n = [], [], []
        for c in p.categories:
            term_lo.append(len(terms))
            lst = [str(t) for t in cats[c].get("search_terms") or [c]]
            terms.extend(lst)
            term_n.append(len(lst))
        self.terms = pa.array(terms)
        self.term_lo, self.term_n = np.array(term_lo), np.array(term_n)
        self.cat_names = pa.array(list(p.categories))
        self.cat_pages = pa.array([f"/c/{c}" for c in p.categories])
        self.referrer_json = pa.array([json.dumps({"referrer": r}) for r in REFERRERS])
        self.login_json = pa.array([json.dumps({"method": m}) for m in LOGIN_METHODS])
        self.type_names = pa.array(list(EVENT_TYPES))
        self.device_names = pa.array(list(DEVICE_TYPES))
        self.os_names = pa.array(list(OS_NAMES))
        self.country_arr = pa.array(world.country_codes)
        self.region_arr = pa.array(world.region_names)
        self.city_arr = pa.array(world.city_names)
        self.channel_arr = pa.array(list(CHANNELS))
        self.status_arr = pa.array(list(STATUSES))
        self.question_arr = pa.array(list(QUESTIONS))
        self.gender_arr = pa.array(list(GENDERS))
        ex = world.extras
        self.first_cap = pa.array([x.capitalize() for x in ex["first_names"]])
        self.last_cap = pa.array([x.capitalize() for x in ex["last_names"]])
        rc = np.floor_divide(world.rec_created_us - world.start_us, DAY_US)
        self.rec_cday = np.maximum(rc, 0)
        self.rec_uday = np.where(world.rec_upd, np.floor_divide(world.rec_upd_us - world.start_us, DAY_US), -1)

    # ------------------------------------------------------------------------------------------------------
    def rng(self, d: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 1, d])))

    def _lines(self, rng, person, pe, n_lines):
        """Order lines for orders not built from a cart (store orders): product, quantity, discount."""
        w, sc = self.w, self.w.params.scalar
        owner, j = _within(n_lines)
        lp = pe[owner]
        prod = w.catalogue.pick(rng, w.params.category_cdf, lp, sc["price_level"][lp] * w.basket[person[owner]],
                                sc["price_noise"][lp])
        qty = 1 + np.minimum(rng.poisson(sc["extra_quantity_mean"][lp]), 9)
        return owner, j, prod, qty

    def _discounts(self, rng, pe):
        p = self.w.params
        has = rng.random(pe.size) < p.scalar["discount_line_prob"][pe]
        d = np.round(p.discount_lo[pe] + rng.random(pe.size) * (p.discount_hi[pe] - p.discount_lo[pe]), 2)
        return np.where(has, d, 0.0)

    # ------------------------------------------------------------------------------------------------------
    def simulate(self, d: int) -> dict[str, pa.Table]:
        w, p = self.w, self.w.params
        sc = p.scalar
        rng = self.rng(d)
        acc = self.acc
        cat = w.catalogue
        day0 = w.start_us + d * DAY_US
        day1 = day0 + DAY_US
        weekday = (w.start + dt.timedelta(days=d)).weekday()
        eff = w.persona_on(d)
        active = (w.signup_day <= d) & ~(p.lapses[eff] & (d >= w.stop_day))
        base = w.act * active

        # ---------------------------------------------------------------- sessions
        n_o = rng.poisson(sc["online_orders_per_day"][eff] * base * self.wf_online[weekday])
        n_o += ((w.first_order_day == d) | ((w.last_order_day == d) & (eff == w.persona))) & active
        n_b = rng.poisson(sc["browse_sessions_per_day"][eff] * base * self.wf_online[weekday])
        sp, rank = _within(n_o + n_b)
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
        platform = w.dev_platform[dev]
        hour = draw_by(p.hour_cdf, pe, rng.random(ns))
        start = day0 + hour * HOUR_US + (rng.random(ns) * HOUR_US).astype(np.int64)
        su = w.signup_us[sp]
        start = np.where(su >= day0, su + (rng.random(ns) * (day1 - su)).astype(np.int64), start)
        guest = buy & (rng.random(ns) < sc["guest_checkout_share"][pe])
        logged = np.where(buy, ~guest, rng.random(ns) < sc["login_prob"][pe])
        sec = w.second_rec[sp]
        use2 = (sec >= 0) & (w.rec_created_us[np.maximum(sec, 0)] <= start) & \
            (rng.random(ns) < float(self.idn["second_id_login_share"]))
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
        sess_no = self.ctr.session + np.arange(ns, dtype=np.int64)
        self.ctr.session += ns
        sid_valid = rng.random(ns) >= float(self.idn["session_id_missing_share"])

        # ---------------------------------------------------------------- events (block per type)
        blocks_sess, blocks_j, blocks_type, block_off = [], [], [], {}
        off = 0
        for t in range(len(EVENT_TYPES)):
            o, j = _within(counts[:, t])
            blocks_sess.append(o)
            blocks_j.append(j)
            blocks_type.append(np.full(o.size, t, dtype=np.int8))
            block_off[t] = off
            off += o.size
        ev_sess = np.concatenate(blocks_sess)
        ev_j = np.concatenate(blocks_j)
        ev_type = np.concatenate(blocks_type)
        ne = ev_sess.size
        pv_first = np.cumsum(counts[:, T["product_view"]]) - counts[:, T["product_view"]]
        pv_sl = slice(block_off[T["product_view"]], block_off[T["product_view"]] + int(counts[:, T["product_view"]].sum()))
        ev_person = sp[ev_sess]
        ev_pe = pe[ev_sess]

        # products
        product = np.full(ne, -1, dtype=np.int64)
        pv_sess, pv_j = ev_sess[pv_sl], ev_j[pv_sl]
        pv_prod = cat.pick(rng, p.category_cdf, pe[pv_sess], sc["price_level"][pe[pv_sess]] * w.basket[sp[pv_sess]],
                           sc["price_noise"][pe[pv_sess]])
        fixed = fix[pv_sess] & (pv_j > 0) & (pv_j < 3)
        pv_prod = np.where(fixed, pv_prod[np.maximum(pv_first[pv_sess], 0)], pv_prod)
        # pv_first indexes into the product_view block, which starts at 0 in pv_prod
        product[pv_sl] = pv_prod
        add_sl = slice(block_off[T["add_to_cart"]], block_off[T["add_to_cart"]] + int(n_add.sum()))
        add_sess, add_j = ev_sess[add_sl], ev_j[add_sl]
        add_prod = pv_prod[pv_first[add_sess] + add_j]
        product[add_sl] = add_prod
        rm_sl = slice(block_off[T["remove_from_cart"]], block_off[T["remove_from_cart"]] + int(removal.sum()))
        rm_sess = ev_sess[rm_sl]
        product[rm_sl] = pv_prod[pv_first[rm_sess] + n_add[rm_sess] - 1]
        vid_sl = slice(block_off[T["video_play"]], block_off[T["video_play"]] + int(counts[:, T["video_play"]].sum()))
        vs = ev_sess[vid_sl]
        vid_prod = cat.pick(rng, p.category_cdf, pe[vs], sc["price_level"][pe[vs]], sc["price_noise"][pe[vs]])
        product[vid_sl] = np.where(rng.random(vs.size) < 0.6, vid_prod, -1)
        add_qty = 1 + np.minimum(rng.poisson(sc["extra_quantity_mean"][pe[add_sess]]), 9)

        # within-session order: landing page, login anywhere before checkout, browsing, adds, removal, checkout,
        # purchase
        u = rng.random(ne)
        key = 2.0 + u
        is_t = [ev_type == t for t in range(len(EVENT_TYPES))]
        key = np.where(is_t[T["page_view"]] & (ev_j == 0), 0.0, key)
        key = np.where(is_t[T["login"]], 1.0 + 3.9 * u, key)
        key = np.where(is_t[T["add_to_cart"]], 3.0 + 0.001 * ev_j, key)
        key = np.where(is_t[T["remove_from_cart"]], 4.0 + 0.5 * u, key)
        key = np.where(is_t[T["checkout_started"]], 5.0, key)
        key = np.where(is_t[T["purchase"]], 6.0, key)
        login_key = np.full(ns, np.inf)
        lg_sl = slice(block_off[T["login"]], block_off[T["login"]] + int(logged.sum()))
        login_key[ev_sess[lg_sl]] = key[lg_sl]
        has_cid = logged[ev_sess] & (key >= login_key[ev_sess])
        order_in_sess = np.argsort(ev_sess * 8.0 + key, kind="stable")
        s_sorted = ev_sess[order_in_sess]
        gap = np.round(rng.exponential(1.0, ne) * sc["seconds_between_events"][pe[s_sorted]] * SECOND).astype(np.int64)
        first_of = np.ones(ne, dtype=bool)
        first_of[1:] = s_sorted[1:] != s_sorted[:-1]
        gap[first_of] = 0
        cs = np.cumsum(gap)
        sess_first_pos = np.flatnonzero(first_of)
        # cumulated gap at each session's first event (sessions with events: all of them)
        t_sorted = start[s_sorted] + cs - cs[sess_first_pos][np.cumsum(first_of) - 1]
        ev_t = np.empty(ne, dtype=np.int64)
        ev_t[order_in_sess] = t_sorted
        sess_end = np.full(ns, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(sess_end, ev_sess, ev_t) if ne else None

        # ---------------------------------------------------------------- web / app orders (one per buy session)
        buy_sess = np.flatnonzero(buy)
        pur_sl = slice(block_off[T["purchase"]], block_off[T["purchase"]] + buy_sess.size)
        pur_t = np.empty(ns, dtype=np.int64)
        pur_t[ev_sess[pur_sl]] = ev_t[pur_sl]
        kept_add = n_add[add_sess] > 0
        kept_add &= ~(removal[add_sess] & (add_j == n_add[add_sess] - 1))
        buy_line = buy[add_sess] & kept_add
        # online order lines: the adds of buy sessions minus the removed one
        ol_sess = add_sess[buy_line]
        ol_prod = add_prod[buy_line]
        ol_qty = add_qty[buy_line]
        ol_j = add_j[buy_line]

        # ---------------------------------------------------------------- store visits (loyalty holders)
        settled = w.signup_day < d
        wf_st = self.wf_store[weekday]
        n_v = rng.poisson(sc["store_visits_per_day"][eff] * w.act * wf_st * (active & settled & w.has_loyalty))
        vp, _ = _within(n_v)
        nv = vp.size
        vpe = eff[vp]
        store = np.where(rng.random(nv) < 0.85, w.home_store[vp],
                         1 + np.floor(rng.random(nv) * w.extras["n_stores"]).astype(np.int64))
        span = self.store_close - self.store_open - 0.5
        visit_t = day0 + ((self.store_open + rng.random(nv) * span) * HOUR_US).astype(np.int64)
        dwell = np.round(np.clip(p.dwell_median[vpe] * np.exp(rng.normal(0, 1, nv) * p.dwell_sigma[vpe]), 1, 300), 1)
        v_buy = rng.random(nv) < sc["store_purchase_prob"][vpe]
        # store guest orders: people without a loyalty card buying at the till (e-receipt email only)
        n_g = rng.poisson(sc["store_guest_orders_per_day"][eff] * w.act * wf_st * (active & settled & ~w.has_loyalty))
        gp, _ = _within(n_g)
        ng = gp.size
        g_t = day0 + ((self.store_open + rng.random(ng) * span) * HOUR_US).astype(np.int64)

        # ---------------------------------------------------------------- all orders of the day
        vb = np.flatnonzero(v_buy)
        o_person = np.concatenate([sp[buy_sess], vp[vb], gp])
        no = o_person.size
        o_pe = eff[o_person]
        o_t = np.concatenate([pur_t[buy_sess], visit_t[vb] + (dwell[vb] * 60 * SECOND).astype(np.int64), g_t])
        o_channel = np.concatenate([platform[buy_sess], np.full(vb.size + ng, 2, dtype=np.int8)])
        o_rec = np.concatenate([np.where(guest[buy_sess], -1, login_rec[buy_sess]), vp[vb], np.full(ng, -1)])
        o_email = np.concatenate([guest[buy_sess] | (rng.random(buy_sess.size) < 0.5),
                                  rng.random(vb.size) < 0.3, np.ones(ng, dtype=bool)])
        status = draw_by(p.status_cdf, o_pe, rng.random(no))
        status = np.where((o_channel == 2) & (status == 1), 0, status)  # no cancelled till orders
        # lines: online from the carts, store ones drawn now
        sess_to_order = np.full(ns, -1, dtype=np.int64)
        sess_to_order[buy_sess] = np.arange(buy_sess.size)
        st_n = 1 + rng.poisson(np.maximum(sc["lines_per_order"][o_pe[buy_sess.size:]] - 1, 0))
        st_owner, st_j, st_prod, st_qty = self._lines(rng, o_person[buy_sess.size:], o_pe[buy_sess.size:], st_n)
        l_order = np.concatenate([sess_to_order[ol_sess], buy_sess.size + st_owner])
        l_j = np.concatenate([ol_j, st_j])
        l_prod = np.concatenate([ol_prod, st_prod])
        l_qty = np.concatenate([ol_qty, st_qty])
        l_disc = self._discounts(rng, o_pe[l_order])
        l_price = cat.price[l_prod]
        l_disc, amount = _amounts(l_order, l_qty, l_price, l_disc, no)
        gross = np.bincount(l_order, weights=l_qty * l_price, minlength=no)
        # order ids in time order
        o_rank = np.argsort(o_t, kind="stable")
        o_pos = np.empty(no, dtype=np.int64)
        o_pos[o_rank] = np.arange(no)
        o_num = self.ctr.order + o_pos
        self.ctr.order += no
        order_ids = S.prefixed_ids("O", o_num, 10)   # indexed by order (not yet time-sorted)

        # ---------------------------------------------------------------- events -> final order and table
        t_rank = np.argsort(ev_t, kind="stable")
        E = ne
        fe_sess = ev_sess[t_rank]
        fe_type = ev_type[t_rank]
        fe_prod = product[t_rank]
        fe_person = ev_person[t_rank]
        fe_dev = dev[fe_sess]
        has_prod = fe_prod >= 0
        prod_idx = np.maximum(fe_prod, 0)
        has_cat = has_prod.copy()
        fe_cat = np.where(has_prod, cat.category[prod_idx], 0)
        pv_page = (fe_type == T["page_view"]) & (rng.random(E) < 0.3)
        fe_cat = np.where(pv_page, draw_by(p.category_cdf, ev_pe[t_rank], rng.random(E)), fe_cat)
        has_cat |= pv_page
        srch = fe_type == T["search"]
        fe_cat = np.where(srch, draw_by(p.category_cdf, ev_pe[t_rank], rng.random(E)), fe_cat)
        has_cat |= srch
        static = np.floor(rng.random(E) * len(STATIC_PAGES)).astype(np.int64)
        fixed_url = {T["search"]: "/search", T["login"]: "/login", T["checkout_started"]: "/checkout",
                     T["purchase"]: "/checkout/confirmation"}
        url_static = S.take(pa.array(list(STATIC_PAGES)), static)
        url = pc.if_else(pa.array(has_prod), S.take(cat.urls, prod_idx), url_static)
        url = pc.if_else(pa.array(pv_page), S.take(self.cat_pages, fe_cat), url)
        for t, path in fixed_url.items():
            url = pc.if_else(pa.array(fe_type == t), pa.scalar(path), url)

        # properties JSON, built per type and put back in event order
        parts, positions = [], []
        final_pos = np.empty(ne, dtype=np.int64)
        final_pos[t_rank] = np.arange(ne)

        def block(t):
            sl = slice(block_off[t], block_off[t] + int(counts[:, t].sum()))
            return sl, final_pos[sl]

        sl, pos = block(T["page_view"])
        parts.append(S.take(self.referrer_json, np.floor(rng.random(pos.size) * len(REFERRERS)).astype(np.int64)))
        positions.append(pos)
        sl, pos = block(T["login"])
        parts.append(S.take(self.login_json, draw(np.array([0.7, 0.9, 1.0]), rng.random(pos.size))))
        positions.append(pos)
        sl, pos = block(T["product_view"])
        parts.append(_json_parts('{"price": ', S.num_str(cat.price[product[sl]], 2), "}"))
        positions.append(pos)
        sl, pos = block(T["search"])
        sc_cat = fe_cat[pos]
        term = self.term_lo[sc_cat] + np.floor(rng.random(pos.size) * self.term_n[sc_cat]).astype(np.int64)
        parts.append(_json_parts('{"search_term": "', S.take(self.terms, term), '", "results": ',
                                 S.num_str(rng.poisson(35, pos.size)), "}"))
        positions.append(pos)
        sl, pos = block(T["scroll_depth"])
        sp_pct = np.clip(np.round(rng.normal(sc["scroll_percent"][ev_pe[sl]], 20)), 5, 100).astype(np.int64)
        parts.append(_json_parts('{"scroll_percent": ', S.num_str(sp_pct), "}"))
        positions.append(pos)
        sl, pos = block(T["video_play"])
        vd_pct = np.clip(np.round(rng.normal(sc["video_percent"][ev_pe[sl]], 20)), 1, 100).astype(np.int64)
        vid = S.from_matrix(S.digits(np.floor(rng.random(pos.size) * 500).astype(np.int64), 4))
        parts.append(_json_parts('{"video_id": "VID-', vid, '", "video_percent": ', S.num_str(vd_pct), "}"))
        positions.append(pos)
        sl, pos = block(T["add_to_cart"])
        parts.append(_json_parts('{"quantity": ', S.num_str(add_qty), ', "price": ', S.num_str(cat.price[add_prod], 2),
                                 "}"))
        positions.append(pos)
        sl, pos = block(T["remove_from_cart"])
        rm_q = add_qty[np.flatnonzero(removal[add_sess] & (add_j == n_add[add_sess] - 1))]
        parts.append(_json_parts('{"quantity": ', S.num_str(rm_q), "}"))
        positions.append(pos)
        sl, pos = block(T["checkout_started"])
        co_sess = ev_sess[sl]
        cart_val = np.bincount(add_sess, weights=add_qty * cat.price[add_prod], minlength=ns)
        cart_items = np.bincount(add_sess, weights=add_qty, minlength=ns)
        # in buy sessions the checkout shows the final cart (without the removed line)
        bo = sess_to_order[co_sess]
        isb = bo >= 0
        bsafe = np.maximum(bo, 0)
        o_items = np.bincount(l_order, weights=l_qty, minlength=no) if no else np.zeros(0)
        co_val = np.where(isb, gross[bsafe] if no else 0, cart_val[co_sess])
        co_items = np.where(isb, o_items[bsafe] if no else 0, cart_items[co_sess]).astype(np.int64)
        parts.append(_json_parts('{"cart_value": ', S.num_str(co_val, 2), ', "items": ', S.num_str(co_items), "}"))
        positions.append(pos)
        sl, pos = block(T["purchase"])
        po = sess_to_order[ev_sess[sl]]
        parts.append(_json_parts('{"order_id": "', S.take(order_ids, po), '", "revenue": ', S.num_str(amount[po], 2),
                                 "}"))
        positions.append(pos)
        allpos = np.concatenate(positions)
        inv = np.empty(ne, dtype=np.int64)
        inv[allpos] = np.arange(ne)
        props = pa.concat_arrays([a.cast(pa.string()) for a in parts]).take(pa.array(inv)) if ne else \
            pa.array([], pa.string())

        ev_cid_valid = has_cid[t_rank]
        events = to_table("events", {
            "event_id": S.prefixed_ids("E", self.ctr.event + np.arange(ne), 12),
            "occurred_at": S.timestamps(ev_t[t_rank]),
            "anonymous_id": S.take(w.anon_ids, fe_dev),
            "customer_id": S.take(w.customer_ids, login_rec[fe_sess], valid=ev_cid_valid),
            "session_id": S.take(session_ids(sess_no), fe_sess, valid=sid_valid[fe_sess]),
            "event_type": S.take(self.type_names, fe_type),
            "taxonomy_version": np.ones(ne, dtype=np.int32),
            "device_type": S.take(self.device_names, w.dev_type[fe_dev]),
            "os": S.take(self.os_names, w.dev_os[fe_dev]),
            "country": S.take(self.country_arr, w.country[fe_person]),
            "region": S.take(self.region_arr, w.region[fe_person]),
            "page_url": url,
            "product_id": S.take(cat.product_ids, prod_idx, valid=has_prod),
            "category": S.take(self.cat_names, fe_cat, valid=has_cat),
            "properties": props,
        })
        self.ctr.event += ne

        # ---------------------------------------------------------------- orders / order_items tables
        oo = o_rank
        rec_safe = np.maximum(o_rec, 0)
        orders = to_table("orders", {
            "order_id": order_ids.take(pa.array(oo)),
            "customer_id": S.take(w.customer_ids, rec_safe[oo], valid=o_rec[oo] >= 0),
            "email": S.take(w.emails_typed, o_person[oo], valid=o_email[oo]),
            "ordered_at": S.timestamps(o_t[oo]),
            "channel": S.take(self.channel_arr, o_channel[oo]),
            "status": S.take(self.status_arr, status[oo]),
            "amount": amount[oo],
            "currency": pa.array(np.full(no, "EUR", dtype=object), pa.string()),
        })
        li = np.lexsort((l_j, o_pos[l_order]))
        line_no = np.empty(l_order.size, dtype=np.int64)
        lo_sorted = l_order[li]
        _, first_line = np.unique(o_pos[lo_sorted], return_index=True)
        grp = np.cumsum(np.r_[True, lo_sorted[1:] != lo_sorted[:-1]]) - 1 if li.size else np.zeros(0, np.int64)
        line_no = (np.arange(li.size) - first_line[grp] + 1) if li.size else line_no
        items = to_table("order_items", {
            "order_id": S.take(order_ids, lo_sorted),
            "line_no": line_no.astype(np.int32),
            "sku": S.take(cat.skus, l_prod[li]),
            "category": S.take(self.cat_names, cat.category[l_prod[li]]),
            "quantity": l_qty[li].astype(np.int32),
            "unit_price": l_price[li],
            "discount": l_disc[li],
        })

        # ---------------------------------------------------------------- store visits table
        v_rank = np.argsort(visit_t, kind="stable")
        v_order = np.full(nv, -1, dtype=np.int64)
        v_order[vb] = buy_sess.size + np.arange(vb.size)
        v_amount = np.where(v_buy, amount[np.maximum(v_order, 0)] if no else 0.0, 0.0)
        visits = to_table("store_visits", {
            "visit_id": S.prefixed_ids("V", self.ctr.visit + np.arange(nv), 10),
            "loyalty_id": S.take(w.loyalty_ids, vp[v_rank]),
            "store_id": S.take(w.store_ids, store[v_rank]),
            "visited_at": S.timestamps(visit_t[v_rank]),
            "dwell_minutes": dwell[v_rank],
            "purchase_amount": v_amount[v_rank],
        })
        self.ctr.visit += nv

        # ---------------------------------------------------------------- survey responses
        resp = np.flatnonzero((w.survey_day == d) & active)
        nr = resp.size
        r_pe = eff[resp]
        r_hour = draw_by(p.hour_cdf, r_pe, rng.random(nr))
        r_t = day0 + r_hour * HOUR_US + (rng.random(nr) * HOUR_US).astype(np.int64)
        r_t = np.where(w.signup_us[resp] >= day0, np.maximum(r_t, w.signup_us[resp] + 60 * SECOND), r_t)
        r_t = np.minimum(r_t, day1 - 1)
        email_only = rng.random(nr) < float(self.idn["survey_email_only_share"])
        both = rng.random(nr) < 0.2  # some responses with a customer id also carry the email
        nq = len(QUESTIONS)
        likert = np.clip(np.round(p.survey_mean[r_pe] + w.survey_offset[resp] + rng.normal(0, 0.45, (nr, 5))), 1, 5)
        chan = draw_by(p.channel_pref_cdf, r_pe, rng.random(nr))
        answered = rng.random((nr, nq)) >= float(self.idn["survey_skip_question_prob"])
        answered[~answered.any(axis=1), 0] = True
        ri, qi = np.nonzero(answered)
        ans_code = np.where(qi < 5, likert[ri, np.minimum(qi, 4)].astype(np.int64) - 1, 5 + chan[ri])
        answers = pa.array(["1", "2", "3", "4", "5"] + list(CHANNELS))
        survey = to_table("survey_responses", {
            "response_id": S.prefixed_ids("R", self.ctr.response + ri, 10),
            "customer_id": S.take(w.customer_ids, resp[ri], valid=~email_only[ri]),
            "email": S.take(w.emails_typed, resp[ri], valid=email_only[ri] | both[ri]),
            "answered_at": S.timestamps(r_t[ri]),
            "question_id": S.take(self.question_arr, qi),
            "answer": S.take(answers, ans_code),
        })
        self.ctr.response += nr

        # ---------------------------------------------------------------- CRM rows (new records, updates)
        new = np.flatnonzero(self.rec_cday == d)
        upd = np.flatnonzero(self.rec_uday == d)
        recs = np.concatenate([new, upd])
        is_upd = np.concatenate([np.zeros(new.size, bool), np.ones(upd.size, bool)])
        rp = w.rec_person[recs]
        upd_at = np.where(is_upd, w.rec_upd_us[recs], w.rec_updated_us[recs])
        ordr = np.lexsort((recs, upd_at))
        recs, is_upd, rp, upd_at = recs[ordr], is_upd[ordr], rp[ordr], upd_at[ordr]
        opt = np.where(is_upd, ~w.rec_opt_in[recs], w.rec_opt_in[recs])
        primary = ~w.rec_secondary[recs]
        crm = to_table("crm_customers", {
            "customer_id": S.take(w.customer_ids, recs),
            "email": S.take(w.emails_typed, recs),
            "phone": w.rec_phone.take(pa.array(recs)),
            "first_name": S.take(self.first_cap, w.extras["first_idx"][rp]),
            "last_name": S.take(self.last_cap, w.extras["last_idx"][rp]),
            "birth_date": pa.array(w.birth_days[rp].astype(np.int32), pa.date32()),
            "gender": S.take(self.gender_arr, w.gender[rp]),
            "country": S.take(self.country_arr, w.country[rp]),
            "region": S.take(self.region_arr, w.region[rp]),
            "city": S.take(self.city_arr, w.city[rp]),
            "signup_at": S.timestamps(w.rec_created_us[recs]),
            "loyalty_id": S.take(w.loyalty_ids, rp, valid=primary & w.has_loyalty[rp]),
            "marketing_opt_in": opt,
            "updated_at": S.timestamps(upd_at),
        })

        # ---------------------------------------------------------------- truth accumulators
        add_last = np.full(ns, np.iinfo(np.int64).min, dtype=np.int64)
        if add_sess.size:
            np.maximum.at(add_last, add_sess, ev_t[add_sl])
        cs_ = np.flatnonzero(n_add > 0)
        if cs_.size:
            acc.carts.append(np.rec.fromarrays(
                [sp[cs_], add_last[cs_], sess_no[cs_], sid_valid[cs_], dev[cs_], n_add[cs_],
                 np.round(cart_val[cs_], 2)],
                names="person,t,session_no,sid_valid,dev,n_add,cart_value"))
        if pv_prod.size:
            acc.views.append(np.rec.fromarrays([sp[pv_sess].astype(np.int32), pv_prod.astype(np.int32),
                                                ev_t[pv_sl]], names="person,product,t"))
        if l_order.size:
            acc.bought.append(np.rec.fromarrays([o_person[l_order].astype(np.int32), l_prod.astype(np.int32),
                                                 o_t[l_order]], names="person,product,t"))
        if no:
            acc.orders.append(np.rec.fromarrays([o_person.astype(np.int32), o_t], names="person,t"))
            np.add.at(acc.n_orders, o_person, 1)
        la = acc.last_activity
        if ns:
            np.maximum.at(la, sp, sess_end)
        if no:
            np.maximum.at(la, o_person, o_t)
        if nv:
            np.maximum.at(la, vp, visit_t)
        if nr:
            np.maximum.at(la, resp, r_t)

        return {"crm_customers": crm, "orders": orders, "order_items": items, "events": events,
                "store_visits": visits, "survey_responses": survey}
