"""Ground truth the pipeline never reads: personas, identities, triggers (computed exactly from the
generated behaviour, before faults)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seg.generate import strings as S
from seg.generate.orders import Orders
from seg.generate.sessions import SessionEvents, Sessions, T, session_ids
from seg.generate.survey import SurveyDay
from seg.generate.visits import StoreDay
from seg.generate.world import DAY_US, HOUR_US, World

TRIGGERS = ("cart_abandonment", "repeated_product_view", "lapsing")


@dataclass
class TruthAcc:
    """What the truth computation needs, accumulated day by day (compact numpy chunks)."""

    carts: list = field(default_factory=list)        # per session with add_to_cart
    views: list = field(default_factory=list)        # (person, product, t) per product_view
    bought: list = field(default_factory=list)       # (person, product, t) per order line
    orders: list = field(default_factory=list)       # (person, t) per order
    last_activity: np.ndarray | None = None
    n_orders: np.ndarray | None = None

    @classmethod
    def for_people(cls, n: int) -> TruthAcc:
        return cls(last_activity=np.full(n, np.iinfo(np.int64).min, dtype=np.int64),
                   n_orders=np.zeros(n, dtype=np.int32))

    def add_day(self, s: Sessions, ev: SessionEvents, o: Orders, store: StoreDay, survey: SurveyDay) -> None:
        """Carts, product views, bought lines, orders and last activity of one simulated day."""
        sp, ns, no = s.person, s.n, o.n
        add_sess, pv_prod = ev.add_sess, ev.pv_prod
        add_last = np.full(ns, np.iinfo(np.int64).min, dtype=np.int64)
        if add_sess.size:
            np.maximum.at(add_last, add_sess, ev.t[ev.slices[T["add_to_cart"]]])
        cs_ = np.flatnonzero(s.n_add > 0)
        if cs_.size:
            self.carts.append(np.rec.fromarrays(
                [sp[cs_], add_last[cs_], s.number[cs_], s.sid_valid[cs_], s.dev[cs_], s.n_add[cs_],
                 np.round(ev.cart_value[cs_], 2)],
                names="person,t,session_no,sid_valid,dev,n_add,cart_value"))
        if pv_prod.size:
            self.views.append(np.rec.fromarrays([sp[ev.pv_sess].astype(np.int32), pv_prod.astype(np.int32),
                                                 ev.t[ev.slices[T["product_view"]]]], names="person,product,t"))
        if o.l_order.size:
            self.bought.append(np.rec.fromarrays([o.person[o.l_order].astype(np.int32), o.l_prod.astype(np.int32),
                                                  o.t[o.l_order]], names="person,product,t"))
        if no:
            self.orders.append(np.rec.fromarrays([o.person.astype(np.int32), o.t], names="person,t"))
            np.add.at(self.n_orders, o.person, 1)
        la = self.last_activity
        if ns:
            np.maximum.at(la, sp, ev.sess_end)
        if no:
            np.maximum.at(la, o.person, o.t)
        if store.n:
            np.maximum.at(la, store.person, store.t)
        if survey.person.size:
            np.maximum.at(la, survey.person, survey.t)


def personas_table(w: World) -> pa.Table:
    names = pa.array(list(w.params.names))
    switched = w.persona_after >= 0
    drift_days = (w.start_us // DAY_US) + np.where(switched, w.switch_day, 0)
    return pa.table({
        "person_id": pa.array(np.arange(w.n, dtype=np.int64)),
        "customer_id": w.customer_ids.slice(0, w.n),
        "persona": S.take(names, w.persona.astype(np.int64)),
        "persona_after_drift": S.take(names, np.maximum(w.persona_after, 0).astype(np.int64), valid=switched),
        "drift_date": pa.array(drift_days.astype(np.int32), pa.date32(), mask=~switched),
    })


def identities_table(w: World) -> pa.Table:
    n = w.n
    loyal = np.flatnonzero(w.has_loyalty)
    pd_person = np.repeat(np.arange(n), np.diff(w.pd_ptr))
    person = np.concatenate([w.rec_person, np.arange(n), pd_person, loyal]).astype(np.int64)
    kinds = ["customer_id", "email", "anonymous_id", "loyalty_id"]
    kind = np.concatenate([np.full(w.rec_person.size, 0), np.full(n, 1), np.full(pd_person.size, 2),
                           np.full(loyal.size, 3)])
    values = pa.concat_arrays([
        w.customer_ids, w.emails_norm.cast(pa.string()), S.take(w.anon_ids, w.pd_dev), S.take(w.loyalty_ids, loyal),
    ])
    order = np.lexsort((np.arange(person.size), kind, person))
    return pa.table({
        "person_id": pa.array(person[order]),
        "id_type": S.take(pa.array(kinds), kind[order]),
        "id_value": values.take(pa.array(order)),
    })


def _next_at_or_after(q_group, q_key, q_t, o_group, o_key, o_t):
    """For each query (group, key, t): time of the first record with the same (group, key) at time >= t
    (int64 min sentinel when there is none)."""
    nq = q_t.size
    if nq == 0:
        return np.zeros(0, dtype=np.int64)
    # only records of groups that are queried matter
    keep = np.isin(o_group, np.unique(q_group))
    o_group, o_key, o_t = o_group[keep], o_key[keep], o_t[keep]
    g = np.concatenate([q_group, o_group]).astype(np.int32)
    k = np.concatenate([q_key, o_key]).astype(np.int32)
    t = np.concatenate([q_t, o_t]).astype(np.int64)
    is_rec = np.concatenate([np.zeros(nq, bool), np.ones(o_t.size, bool)])
    # at equal times the record sorts after the query, so it counts as "at or after"
    order = np.lexsort((is_rec, t, k, g))
    g, k, t, is_rec = g[order], k[order], t[order], is_rec[order]
    big = g.size
    idx = np.where(is_rec, np.arange(big), big)
    nxt = np.minimum.accumulate(idx[::-1])[::-1]
    ok = nxt < big
    nxt_safe = np.minimum(nxt, big - 1)
    ok &= (g[nxt_safe] == g) & (k[nxt_safe] == k)
    res_sorted = np.where(ok, t[nxt_safe], np.iinfo(np.int64).min)
    res = np.empty(big, dtype=np.int64)
    res[order] = res_sorted
    return res[:nq]


@dataclass(frozen=True)
class _Fired:
    """Rows of one trigger: person, time it fires, and the evidence JSON per row."""

    person: np.ndarray
    trigger: int                      # index into TRIGGERS
    at: np.ndarray
    evidence: pa.Array


def _cart_abandonments(w: World, acc: TruthAcc, cfg: dict) -> _Fired | None:
    """A session with add_to_cart whose person places no order (any channel, any status) at or after the
    session's last add_to_cart within the next N hours; only when that deadline is inside the window."""
    if not acc.carts:
        return None
    carts = np.concatenate(acc.carts)
    orders = np.concatenate(acc.orders) if acc.orders else None
    horizon = int(cfg["cart_abandonment_hours"]) * HOUR_US
    o_p = orders["person"] if orders is not None else np.zeros(0, np.int32)
    o_t = orders["t"] if orders is not None else np.zeros(0, np.int64)
    nxt = _next_at_or_after(carts["person"], np.zeros(carts.size, np.int32), carts["t"], o_p,
                            np.zeros(o_p.size, np.int32), o_t)
    bought = (nxt != np.iinfo(np.int64).min) & (nxt - carts["t"] <= horizon)
    c = carts[~bought & (carts["t"] + horizon <= w.end_us)]
    sid = S.take(session_ids(c["session_no"].astype(np.int64)), np.arange(c.size), valid=c["sid_valid"])
    sid_json = pc.if_else(pc.is_null(sid), pa.scalar("null"), S.join('"', sid, '"'))
    ev = S.join('{"session_id": ', sid_json, ', "anonymous_id": "', S.take(w.anon_ids, c["dev"]),
                '", "add_to_cart_events": ', S.num_str(c["n_add"]), ', "cart_value": ',
                S.num_str(c["cart_value"], 2), ', "last_add_to_cart_at": "', S.iso(c["t"]),
                '", "no_order_until": "', S.iso(c["t"] + horizon), '"}')
    return _Fired(person=c["person"].astype(np.int64), trigger=0, at=c["t"].astype(np.int64), evidence=ev)


def _first_view_bursts(p_: np.ndarray, pr: np.ndarray, t: np.ndarray, k: int, span: int) -> np.ndarray:
    """Over views sorted by (person, product, t): the positions where the last k views of that person and product
    lie within `span` and the view before did not already satisfy that (so a burst fires once)."""
    m = p_.size
    cond = np.zeros(m, dtype=bool)
    if m >= k:
        same = (p_[k - 1:] == p_[: m - k + 1]) & (pr[k - 1:] == pr[: m - k + 1])
        cond[k - 1:] = same & (t[k - 1:] - t[: m - k + 1] <= span)
    prev_same = np.zeros(m, dtype=bool)
    prev_same[1:] = (p_[1:] == p_[:-1]) & (pr[1:] == pr[:-1])
    prev_cond = np.zeros(m, dtype=bool)
    prev_cond[1:] = cond[:-1]
    return cond & ~(prev_same & prev_cond)


def _repeated_product_views(w: World, acc: TruthAcc, cfg: dict) -> _Fired | None:
    """At a product_view where the person's views of that product within the last N hours (this one included, at
    most N hours apart) reach `count` for the first time (the previous view of the same product did not satisfy
    it), and the person orders that product neither between the first of those views and N hours after this
    one."""
    if not acc.views:
        return None
    v = np.concatenate(acc.views)
    acc.views.clear()  # the views are the largest chunks: free them while the rest is computed
    k = int(cfg["repeated_view_count"])
    span = int(cfg["repeated_view_hours"]) * HOUR_US
    nobuy = int(cfg["repeated_view_no_buy_hours"]) * HOUR_US
    o = np.lexsort((v["t"], v["product"], v["person"]))
    p_, pr, t = v["person"][o], v["product"][o], v["t"][o]
    del v, o
    fire = _first_view_bursts(p_, pr, t, k, span) & (t + nobuy <= w.end_us)
    fi = np.flatnonzero(fire)
    first_t = t[fi - (k - 1)]
    b = np.concatenate(acc.bought) if acc.bought else None
    if b is not None and fi.size:
        nxt = _next_at_or_after(p_[fi], pr[fi], first_t, b["person"], b["product"], b["t"])
        bought = (nxt != np.iinfo(np.int64).min) & (nxt <= t[fi] + nobuy)
    else:
        bought = np.zeros(fi.size, dtype=bool)
    fi, first_t = fi[~bought], first_t[~bought]
    ev = S.join('{"product_id": "', S.take(w.catalogue.product_ids, pr[fi].astype(np.int64)), '", "views": ',
                S.num_str(np.full(fi.size, k)), ', "first_view_at": "', S.iso(first_t), '", "no_order_until": "',
                S.iso(t[fi] + nobuy), '"}')
    return _Fired(person=p_[fi].astype(np.int64), trigger=1, at=t[fi], evidence=ev)


def _lapsings(w: World, acc: TruthAcc, cfg: dict) -> _Fired:
    """At least `lapsing_min_orders` orders in the window, then no activity at all (event, order, store visit,
    survey answer) for `lapsing_days` up to the end of the window; fires lapsing_days after the last activity."""
    gap = int(cfg["lapsing_days"]) * DAY_US
    la = acc.last_activity
    lap = (acc.n_orders >= int(cfg["lapsing_min_orders"])) & (la + gap <= w.end_us) & (la > np.iinfo(np.int64).min)
    lp = np.flatnonzero(lap)
    ev = S.join('{"last_activity_at": "', S.iso(la[lp]), '", "orders_in_window": ', S.num_str(acc.n_orders[lp]),
                ', "inactive_days": ', S.num_str(np.full(lp.size, int(cfg["lapsing_days"]))), "}")
    return _Fired(person=lp.astype(np.int64), trigger=2, at=la[lp] + gap, evidence=ev)


def triggers_table(w: World, acc: TruthAcc) -> pa.Table:
    """Every trigger that fires in the window, computed exactly from what was generated, ordered by time."""
    cfg = w.params.raw["triggers"]
    fired = [f for f in (_cart_abandonments(w, acc, cfg), _repeated_product_views(w, acc, cfg),
                         _lapsings(w, acc, cfg)) if f is not None]
    person = np.concatenate([f.person for f in fired])
    trig = np.concatenate([np.full(f.person.size, f.trigger) for f in fired])
    at = np.concatenate([f.at for f in fired])
    evidence = pa.concat_arrays([f.evidence.cast(pa.string()) for f in fired])
    order = np.lexsort((trig, person, at))
    return pa.table({
        "person_id": pa.array(person[order]),
        "customer_id": S.take(w.customer_ids, person[order]),
        "trigger": S.take(pa.array(list(TRIGGERS)), trig[order]),
        "at": S.timestamps(at[order]),
        "evidence": evidence.take(pa.array(order)),
    })
