"""All orders of the day and their lines: web/app orders (one per buy session, its lines from the cart), store
orders of loyalty visits with a purchase and store guest orders (lines drawn here); exact amounts; the orders
and order_items tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.context import SECOND, Counters, Day, Lookups, within
from seg.generate.params import CHANNELS, STATUSES, draw_by
from seg.generate.sessions import SessionEvents, Sessions, T
from seg.generate.tables import to_table
from seg.generate.visits import StoreDay
from seg.generate.world import World

CHANNEL_NAMES = pa.array(list(CHANNELS))
STATUS_NAMES = pa.array(list(STATUSES))


@dataclass
class Orders:
    """Indexed by order: web/app orders first (in buy-session order), then store visits with a purchase (in visit
    order), then store guest orders. Lines (l_*) point at their order."""

    person: np.ndarray
    t: np.ndarray              # ordered at (us)
    channel: np.ndarray        # CHANNELS code
    rec: np.ndarray            # CRM record (-1: guest)
    email: np.ndarray          # the order carries the email
    status: np.ndarray         # STATUSES code
    n_online: int              # number of web/app orders (they come first)
    sess_to_order: np.ndarray  # per session: its order (-1: none)
    l_order: np.ndarray
    l_j: np.ndarray            # line position before numbering
    l_prod: np.ndarray
    l_qty: np.ndarray
    l_price: np.ndarray
    l_disc: np.ndarray
    amount: np.ndarray         # order total
    gross: np.ndarray          # order total before discounts
    rank: np.ndarray           # orders in time order
    pos: np.ndarray            # per order: its position in time order
    ids: pa.Array              # order_id per order (not time-sorted)

    @property
    def n(self) -> int:
        return int(self.person.size)

    def visit_amount(self, v: StoreDay) -> np.ndarray:
        """Per store visit: the amount of its order (0 without a purchase)."""
        v_order = np.full(v.n, -1, dtype=np.int64)
        vb = np.flatnonzero(v.buy)
        v_order[vb] = self.n_online + np.arange(vb.size)
        return np.where(v.buy, self.amount[np.maximum(v_order, 0)] if self.n else 0.0, 0.0)


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


def _store_lines(rng, w: World, person, pe, n_lines):
    """Order lines for orders not built from a cart (store orders): product, quantity, discount."""
    sc = w.params.scalar
    owner, j = within(n_lines)
    lp = pe[owner]
    prod = w.catalogue.pick(rng, w.params.category_cdf, lp, sc["price_level"][lp] * w.basket[person[owner]],
                            sc["price_noise"][lp])
    qty = 1 + np.minimum(rng.poisson(sc["extra_quantity_mean"][lp]), 9)
    return owner, j, prod, qty


def _discounts(rng, w: World, pe):
    p = w.params
    has = rng.random(pe.size) < p.scalar["discount_line_prob"][pe]
    d = np.round(p.discount_lo[pe] + rng.random(pe.size) * (p.discount_hi[pe] - p.discount_lo[pe]), 2)
    return np.where(has, d, 0.0)


def _online_lines(s: Sessions, ev: SessionEvents):
    """Online order lines: the adds of buy sessions minus the removed one -> (session, position, product, qty)."""
    add_sess, add_j, n_add = ev.add_sess, ev.add_j, s.n_add
    kept_add = n_add[add_sess] > 0
    kept_add &= ~(s.removal[add_sess] & (add_j == n_add[add_sess] - 1))
    buy_line = s.buy[add_sess] & kept_add
    return add_sess[buy_line], add_j[buy_line], ev.add_prod[buy_line], ev.add_qty[buy_line]


def draw_orders(day: Day, w: World, s: Sessions, ev: SessionEvents, store: StoreDay, ctr: Counters) -> Orders:
    rng, p, sc, eff = day.rng, w.params, w.params.scalar, day.eff
    cat = w.catalogue
    buy_sess = np.flatnonzero(s.buy)
    pur_sl = ev.slices[T["purchase"]]
    pur_t = np.empty(s.n, dtype=np.int64)
    pur_t[ev.sess[pur_sl]] = ev.t[pur_sl]
    ol_sess, ol_j, ol_prod, ol_qty = _online_lines(s, ev)
    # heads
    vb = np.flatnonzero(store.buy)
    vp, gp = store.person, store.guest_person
    ng = gp.size
    o_person = np.concatenate([s.person[buy_sess], vp[vb], gp])
    no = o_person.size
    o_pe = eff[o_person]
    o_t = np.concatenate([pur_t[buy_sess], store.t[vb] + (store.dwell[vb] * 60 * SECOND).astype(np.int64),
                          store.guest_t])
    o_channel = np.concatenate([s.platform[buy_sess], np.full(vb.size + ng, 2, dtype=np.int8)])
    o_rec = np.concatenate([np.where(s.guest[buy_sess], -1, s.login_rec[buy_sess]), vp[vb], np.full(ng, -1)])
    o_email = np.concatenate([s.guest[buy_sess] | (rng.random(buy_sess.size) < 0.5),
                              rng.random(vb.size) < 0.3, np.ones(ng, dtype=bool)])
    status = draw_by(p.status_cdf, o_pe, rng.random(no))
    status = np.where((o_channel == 2) & (status == 1), 0, status)  # no cancelled till orders
    # lines: online from the carts, store ones drawn now
    sess_to_order = np.full(s.n, -1, dtype=np.int64)
    sess_to_order[buy_sess] = np.arange(buy_sess.size)
    st_n = 1 + rng.poisson(np.maximum(sc["lines_per_order"][o_pe[buy_sess.size:]] - 1, 0))
    st_owner, st_j, st_prod, st_qty = _store_lines(rng, w, o_person[buy_sess.size:], o_pe[buy_sess.size:], st_n)
    l_order = np.concatenate([sess_to_order[ol_sess], buy_sess.size + st_owner])
    l_j = np.concatenate([ol_j, st_j])
    l_prod = np.concatenate([ol_prod, st_prod])
    l_qty = np.concatenate([ol_qty, st_qty])
    l_disc = _discounts(rng, w, o_pe[l_order])
    l_price = cat.price[l_prod]
    l_disc, amount = _amounts(l_order, l_qty, l_price, l_disc, no)
    gross = np.bincount(l_order, weights=l_qty * l_price, minlength=no)
    # order ids in time order
    o_rank = np.argsort(o_t, kind="stable")
    o_pos = np.empty(no, dtype=np.int64)
    o_pos[o_rank] = np.arange(no)
    o_num = ctr.order + o_pos
    ctr.order += no
    return Orders(person=o_person, t=o_t, channel=o_channel, rec=o_rec, email=o_email, status=status,
                  n_online=int(buy_sess.size), sess_to_order=sess_to_order, l_order=l_order, l_j=l_j, l_prod=l_prod,
                  l_qty=l_qty, l_price=l_price, l_disc=l_disc, amount=amount, gross=gross, rank=o_rank, pos=o_pos,
                  ids=S.prefixed_ids("O", o_num, 10))


def orders_table(w: World, o: Orders) -> pa.Table:
    oo = o.rank
    rec_safe = np.maximum(o.rec, 0)
    return to_table("orders", {
        "order_id": o.ids.take(pa.array(oo)),
        "customer_id": S.take(w.customer_ids, rec_safe[oo], valid=o.rec[oo] >= 0),
        "email": S.take(w.emails_typed, o.person[oo], valid=o.email[oo]),
        "ordered_at": S.timestamps(o.t[oo]),
        "channel": S.take(CHANNEL_NAMES, o.channel[oo]),
        "status": S.take(STATUS_NAMES, o.status[oo]),
        "amount": o.amount[oo],
        "currency": pa.array(np.full(o.n, "EUR", dtype=object), pa.string()),
    })


def order_items_table(w: World, lk: Lookups, o: Orders) -> pa.Table:
    """Lines in order time order, numbered 1.. within their order."""
    cat, l_order = w.catalogue, o.l_order
    li = np.lexsort((o.l_j, o.pos[l_order]))
    line_no = np.empty(l_order.size, dtype=np.int64)
    lo_sorted = l_order[li]
    _, first_line = np.unique(o.pos[lo_sorted], return_index=True)
    grp = np.cumsum(np.r_[True, lo_sorted[1:] != lo_sorted[:-1]]) - 1 if li.size else np.zeros(0, np.int64)
    line_no = (np.arange(li.size) - first_line[grp] + 1) if li.size else line_no
    return to_table("order_items", {
        "order_id": S.take(o.ids, lo_sorted),
        "line_no": line_no.astype(np.int32),
        "sku": S.take(cat.skus, o.l_prod[li]),
        "category": S.take(lk.categories, cat.category[o.l_prod[li]]),
        "quantity": o.l_qty[li].astype(np.int32),
        "unit_price": o.l_price[li],
        "discount": o.l_disc[li],
    })
