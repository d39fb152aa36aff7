"""Ground truth the pipeline never reads: personas, identities, triggers (computed exactly from the
generated behaviour, before faults)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.day import TruthAcc, session_ids
from seg.generate.world import DAY_US, HOUR_US, World

TRIGGERS = ("cart_abandonment", "repeated_product_view", "lapsing")


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


def _concat(chunks: list, dtype) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


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


def triggers_table(w: World, acc: TruthAcc) -> pa.Table:
    cfg = w.params.raw["triggers"]
    end = w.end_us
    rows_person, rows_trigger, rows_at, rows_evidence = [], [], [], []

    # --- cart abandonment: a session with add_to_cart whose person places no order (any channel, any status)
    # at or after the session's last add_to_cart within the next N hours; only when that deadline is inside
    # the window.
    carts = np.concatenate(acc.carts) if acc.carts else None
    orders = np.concatenate(acc.orders) if acc.orders else None
    if carts is not None:
        horizon = int(cfg["cart_abandonment_hours"]) * HOUR_US
        o_p = orders["person"] if orders is not None else np.zeros(0, np.int32)
        o_t = orders["t"] if orders is not None else np.zeros(0, np.int64)
        nxt = _next_at_or_after(carts["person"], np.zeros(carts.size, np.int32), carts["t"], o_p,
                                np.zeros(o_p.size, np.int32), o_t)
        bought = (nxt != np.iinfo(np.int64).min) & (nxt - carts["t"] <= horizon)
        hit = ~bought & (carts["t"] + horizon <= end)
        c = carts[hit]
        sid = S.take(session_ids(c["session_no"].astype(np.int64)), np.arange(c.size), valid=c["sid_valid"])
        sid_json = pa.compute.if_else(pa.compute.is_null(sid), pa.scalar("null"), S.join('"', sid, '"'))
        ev = S.join('{"session_id": ', sid_json, ', "anonymous_id": "', S.take(w.anon_ids, c["dev"]),
                    '", "add_to_cart_events": ', S.num_str(c["n_add"]), ', "cart_value": ',
                    S.num_str(c["cart_value"], 2), ', "last_add_to_cart_at": "', S.iso(c["t"]),
                    '", "no_order_until": "', S.iso(c["t"] + horizon), '"}')
        rows_person.append(c["person"].astype(np.int64))
        rows_trigger.append(np.full(c.size, 0))
        rows_at.append(c["t"].astype(np.int64))
        rows_evidence.append(ev)

    # --- repeated product view: at a product_view where the person's views of that product within the last
    # N hours (this one included, at most N hours apart) reach `count` for the first time (the previous view of
    # the same product did not satisfy it), and the person orders that product neither between the first of
    # those views and N hours after this one.
    if acc.views:
        v = np.concatenate(acc.views)
        acc.views.clear()
        k = int(cfg["repeated_view_count"])
        span = int(cfg["repeated_view_hours"]) * HOUR_US
        nobuy = int(cfg["repeated_view_no_buy_hours"]) * HOUR_US
        o = np.lexsort((v["t"], v["product"], v["person"]))
        p_, pr, t = v["person"][o], v["product"][o], v["t"][o]
        del v, o
        m = p_.size
        cond = np.zeros(m, dtype=bool)
        if m >= k:
            same = (p_[k - 1:] == p_[: m - k + 1]) & (pr[k - 1:] == pr[: m - k + 1])
            cond[k - 1:] = same & (t[k - 1:] - t[: m - k + 1] <= span)
        prev_same = np.zeros(m, dtype=bool)
        prev_same[1:] = (p_[1:] == p_[:-1]) & (pr[1:] == pr[:-1])
        prev_cond = np.zeros(m, dtype=bool)
        prev_cond[1:] = cond[:-1]
        fire = cond & ~(prev_same & prev_cond)
        fire &= t + nobuy <= end
        fi = np.flatnonzero(fire)
        first_t = t[fi - (k - 1)]
        b = np.concatenate(acc.bought) if acc.bought else None
        if b is not None and fi.size:
            nxt = _next_at_or_after(p_[fi], pr[fi], first_t, b["person"], b["product"], b["t"])
            bought = (nxt != np.iinfo(np.int64).min) & (nxt <= t[fi] + nobuy)
        else:
            bought = np.zeros(fi.size, dtype=bool)
        fi, first_t = fi[~bought], first_t[~bought]
        ev = S.join('{"product_id": "', S.take(w.catalogue.product_ids, pr[fi].astype(np.int64)), '", "views": ', S.num_str(
            np.full(fi.size, k)), ', "first_view_at": "', S.iso(first_t), '", "no_order_until": "',
            S.iso(t[fi] + nobuy), '"}')
        rows_person.append(p_[fi].astype(np.int64))
        rows_trigger.append(np.full(fi.size, 1))
        rows_at.append(t[fi])
        rows_evidence.append(ev)

    # --- lapsing: at least `lapsing_min_orders` orders in the window, then no activity at all (event, order,
    # store visit, survey answer) for `lapsing_days` up to the end of the window; fires lapsing_days after the
    # last activity.
    gap = int(cfg["lapsing_days"]) * DAY_US
    la = acc.last_activity
    lap = (acc.n_orders >= int(cfg["lapsing_min_orders"])) & (la + gap <= end) & (la > np.iinfo(np.int64).min)
    lp = np.flatnonzero(lap)
    ev = S.join('{"last_activity_at": "', S.iso(la[lp]), '", "orders_in_window": ', S.num_str(acc.n_orders[lp]),
                ', "inactive_days": ', S.num_str(np.full(lp.size, int(cfg["lapsing_days"]))), "}")
    rows_person.append(lp.astype(np.int64))
    rows_trigger.append(np.full(lp.size, 2))
    rows_at.append(la[lp] + gap)
    rows_evidence.append(ev)

    person = np.concatenate(rows_person)
    trig = np.concatenate(rows_trigger)
    at = np.concatenate(rows_at)
    evidence = pa.concat_arrays([e.cast(pa.string()) for e in rows_evidence])
    order = np.lexsort((trig, person, at))
    return pa.table({
        "person_id": pa.array(person[order]),
        "customer_id": S.take(w.customer_ids, person[order]),
        "trigger": S.take(pa.array(list(TRIGGERS)), trig[order]),
        "at": S.timestamps(at[order]),
        "evidence": evidence.take(pa.array(order)),
    })

