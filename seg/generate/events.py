"""The events table: the day's session events in time order, with page urls, categories and the per-type
properties JSON (prices, search terms, scroll / video percentages, cart values, order ids and revenues)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.generate import strings as S
from seg.generate.context import Counters, Day, Lookups
from seg.generate.orders import Orders
from seg.generate.params import DEVICE_TYPES, draw, draw_by
from seg.generate.sessions import EVENT_TYPES, SessionEvents, Sessions, T, session_ids
from seg.generate.tables import to_table
from seg.generate.world import OS_NAMES, World

REFERRERS = ("direct", "https://www.google.com/", "https://www.instagram.com/", "https://www.facebook.com/",
             "newsletter", "https://www.bing.com/", "/", "/sale")
LOGIN_METHODS = ("password", "sso", "magic_link")
STATIC_PAGES = ("/", "/sale", "/new", "/account", "/help", "/stores")
FIXED_URLS = {T["search"]: "/search", T["login"]: "/login", T["checkout_started"]: "/checkout",
              T["purchase"]: "/checkout/confirmation"}

REFERRER_JSON = pa.array([json.dumps({"referrer": r}) for r in REFERRERS])
LOGIN_JSON = pa.array([json.dumps({"method": m}) for m in LOGIN_METHODS])
STATIC_URLS = pa.array(list(STATIC_PAGES))
TYPE_NAMES = pa.array(list(EVENT_TYPES))
DEVICE_NAMES = pa.array(list(DEVICE_TYPES))
OS_ARRAY = pa.array(list(OS_NAMES))


def events_table(day: Day, w: World, lk: Lookups, s: Sessions, ev: SessionEvents, o: Orders,
                 ctr: Counters) -> pa.Table:
    """Sort the events by time, draw their page categories and urls, then their properties; build the table."""
    t_rank = np.argsort(ev.t, kind="stable")
    fe_cat, has_cat, prod_idx, has_prod, url = _pages(day.rng, w, lk, s, ev, t_rank)
    props = _properties(day.rng, w, lk, s, ev, o, fe_cat, t_rank)
    ne = ev.n
    fe_sess = ev.sess[t_rank]
    fe_person = s.person[ev.sess][t_rank]
    fe_dev = s.dev[fe_sess]
    table = to_table("events", {
        "event_id": S.prefixed_ids("E", ctr.event + np.arange(ne), 12),
        "occurred_at": S.timestamps(ev.t[t_rank]),
        "anonymous_id": S.take(w.anon_ids, fe_dev),
        "customer_id": S.take(w.customer_ids, s.login_rec[fe_sess], valid=ev.has_cid[t_rank]),
        "session_id": S.take(session_ids(s.number), fe_sess, valid=s.sid_valid[fe_sess]),
        "event_type": S.take(TYPE_NAMES, ev.type[t_rank]),
        "taxonomy_version": np.ones(ne, dtype=np.int32),
        "device_type": S.take(DEVICE_NAMES, w.dev_type[fe_dev]),
        "os": S.take(OS_ARRAY, w.dev_os[fe_dev]),
        "country": S.take(lk.countries, w.country[fe_person]),
        "region": S.take(lk.regions, w.region[fe_person]),
        "page_url": url,
        "product_id": S.take(w.catalogue.product_ids, prod_idx, valid=has_prod),
        "category": S.take(lk.categories, fe_cat, valid=has_cat),
        "properties": props,
    })
    ctr.event += ne
    return table


def _pages(rng, w: World, lk: Lookups, s: Sessions, ev: SessionEvents, t_rank):
    """In time order: category (and whether there is one), product index (and whether there is one), page url.
    Product events show their product's category and page; some page_views and every search a category."""
    p, cat = w.params, w.catalogue
    E = ev.n
    fe_type = ev.type[t_rank]
    fe_prod = ev.product[t_rank]
    fe_pe = s.persona[ev.sess][t_rank]
    has_prod = fe_prod >= 0
    prod_idx = np.maximum(fe_prod, 0)
    has_cat = has_prod.copy()
    fe_cat = np.where(has_prod, cat.category[prod_idx], 0)
    pv_page = (fe_type == T["page_view"]) & (rng.random(E) < 0.3)
    fe_cat = np.where(pv_page, draw_by(p.category_cdf, fe_pe, rng.random(E)), fe_cat)
    has_cat |= pv_page
    srch = fe_type == T["search"]
    fe_cat = np.where(srch, draw_by(p.category_cdf, fe_pe, rng.random(E)), fe_cat)
    has_cat |= srch
    static = np.floor(rng.random(E) * len(STATIC_PAGES)).astype(np.int64)
    url_static = S.take(STATIC_URLS, static)
    url = pc.if_else(pa.array(has_prod), S.take(cat.urls, prod_idx), url_static)
    url = pc.if_else(pa.array(pv_page), S.take(lk.category_pages, fe_cat), url)
    for t, path in FIXED_URLS.items():
        url = pc.if_else(pa.array(fe_type == t), pa.scalar(path), url)
    return fe_cat, has_cat, prod_idx, has_prod, url


def _properties(rng, w: World, lk: Lookups, s: Sessions, ev: SessionEvents, o: Orders, fe_cat, t_rank) -> pa.Array:
    """The properties JSON per event, built type by type (block order) and put back in time order."""
    sc, cat = w.params.scalar, w.catalogue
    ne = ev.n
    ev_pe = s.persona[ev.sess]
    parts, positions = [], []
    final_pos = np.empty(ne, dtype=np.int64)
    final_pos[t_rank] = np.arange(ne)

    def block(t):
        sl = ev.slices[t]
        return sl, final_pos[sl]

    sl, pos = block(T["page_view"])
    parts.append(S.take(REFERRER_JSON, np.floor(rng.random(pos.size) * len(REFERRERS)).astype(np.int64)))
    positions.append(pos)
    sl, pos = block(T["login"])
    parts.append(S.take(LOGIN_JSON, draw(np.array([0.7, 0.9, 1.0]), rng.random(pos.size))))
    positions.append(pos)
    sl, pos = block(T["product_view"])
    parts.append(S.join('{"price": ', S.num_str(cat.price[ev.product[sl]], 2), "}"))
    positions.append(pos)
    sl, pos = block(T["search"])
    sc_cat = fe_cat[pos]
    term = lk.term_lo[sc_cat] + np.floor(rng.random(pos.size) * lk.term_n[sc_cat]).astype(np.int64)
    parts.append(S.join('{"search_term": "', S.take(lk.terms, term), '", "results": ',
                        S.num_str(rng.poisson(35, pos.size)), "}"))
    positions.append(pos)
    sl, pos = block(T["scroll_depth"])
    sp_pct = np.clip(np.round(rng.normal(sc["scroll_percent"][ev_pe[sl]], 20)), 5, 100).astype(np.int64)
    parts.append(S.join('{"scroll_percent": ', S.num_str(sp_pct), "}"))
    positions.append(pos)
    sl, pos = block(T["video_play"])
    vd_pct = np.clip(np.round(rng.normal(sc["video_percent"][ev_pe[sl]], 20)), 1, 100).astype(np.int64)
    vid = S.from_matrix(S.digits(np.floor(rng.random(pos.size) * 500).astype(np.int64), 4))
    parts.append(S.join('{"video_id": "VID-', vid, '", "video_percent": ', S.num_str(vd_pct), "}"))
    positions.append(pos)
    sl, pos = block(T["add_to_cart"])
    parts.append(S.join('{"quantity": ', S.num_str(ev.add_qty), ', "price": ', S.num_str(cat.price[ev.add_prod], 2),
                        "}"))
    positions.append(pos)
    sl, pos = block(T["remove_from_cart"])
    add_sess, n_add = ev.add_sess, s.n_add
    rm_q = ev.add_qty[np.flatnonzero(s.removal[add_sess] & (ev.add_j == n_add[add_sess] - 1))]
    parts.append(S.join('{"quantity": ', S.num_str(rm_q), "}"))
    positions.append(pos)
    sl, pos = block(T["checkout_started"])
    parts.append(_checkout_json(ev, o, ev.sess[sl]))
    positions.append(pos)
    sl, pos = block(T["purchase"])
    po = o.sess_to_order[ev.sess[sl]]
    parts.append(S.join('{"order_id": "', S.take(o.ids, po), '", "revenue": ', S.num_str(o.amount[po], 2), "}"))
    positions.append(pos)
    allpos = np.concatenate(positions)
    inv = np.empty(ne, dtype=np.int64)
    inv[allpos] = np.arange(ne)
    return pa.concat_arrays([a.cast(pa.string()) for a in parts]).take(pa.array(inv)) if ne else \
        pa.array([], pa.string())


def _checkout_json(ev: SessionEvents, o: Orders, co_sess) -> pa.Array:
    """checkout_started: cart value and items; in buy sessions the final cart (without the removed line)."""
    no = o.n
    bo = o.sess_to_order[co_sess]
    isb = bo >= 0
    bsafe = np.maximum(bo, 0)
    o_items = np.bincount(o.l_order, weights=o.l_qty, minlength=no) if no else np.zeros(0)
    co_val = np.where(isb, o.gross[bsafe] if no else 0, ev.cart_value[co_sess])
    co_items = np.where(isb, o_items[bsafe] if no else 0, ev.cart_items[co_sess]).astype(np.int64)
    return S.join('{"cart_value": ', S.num_str(co_val, 2), ', "items": ', S.num_str(co_items), "}")
