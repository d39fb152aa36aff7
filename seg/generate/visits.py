"""The store day: visits of loyalty-card holders (some with a purchase) and guest orders at the till by people
without a card; the store_visits table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.context import Counters, Day, within
from seg.generate.tables import to_table
from seg.generate.world import HOUR_US, World


@dataclass
class StoreDay:
    person: np.ndarray        # per visit: the visiting loyalty holder
    store: np.ndarray         # per visit: store number
    t: np.ndarray             # per visit: arrival time (us)
    dwell: np.ndarray         # per visit: minutes in the store
    buy: np.ndarray           # per visit: ends with a purchase
    guest_person: np.ndarray  # per store guest order: the buyer
    guest_t: np.ndarray       # per store guest order: time (us)

    @property
    def n(self) -> int:
        return int(self.person.size)


def draw_store_day(day: Day, w: World, weekday_factor: float, store_open: float, store_close: float) -> StoreDay:
    rng, p, sc, eff = day.rng, w.params, w.params.scalar, day.eff
    settled = w.signup_day < day.d
    n_v = rng.poisson(sc["store_visits_per_day"][eff] * w.act * weekday_factor * (day.active & settled & w.has_loyalty))
    vp, _ = within(n_v)
    nv = vp.size
    vpe = eff[vp]
    store = np.where(rng.random(nv) < 0.85, w.home_store[vp],
                     1 + np.floor(rng.random(nv) * w.extras["n_stores"]).astype(np.int64))
    span = store_close - store_open - 0.5
    visit_t = day.day0 + ((store_open + rng.random(nv) * span) * HOUR_US).astype(np.int64)
    dwell = np.round(np.clip(p.dwell_median[vpe] * np.exp(rng.normal(0, 1, nv) * p.dwell_sigma[vpe]), 1, 300), 1)
    v_buy = rng.random(nv) < sc["store_purchase_prob"][vpe]
    # store guest orders: people without a loyalty card buying at the till (e-receipt email only)
    n_g = rng.poisson(sc["store_guest_orders_per_day"][eff] * w.act * weekday_factor
                      * (day.active & settled & ~w.has_loyalty))
    gp, _ = within(n_g)
    g_t = day.day0 + ((store_open + rng.random(gp.size) * span) * HOUR_US).astype(np.int64)
    return StoreDay(person=vp, store=store, t=visit_t, dwell=dwell, buy=v_buy, guest_person=gp, guest_t=g_t)


def visits_table(w: World, v: StoreDay, visit_amount: np.ndarray, ctr: Counters) -> pa.Table:
    """store_visits in time order; `visit_amount` per visit (0 without a purchase)."""
    nv = v.n
    v_rank = np.argsort(v.t, kind="stable")
    table = to_table("store_visits", {
        "visit_id": S.prefixed_ids("V", ctr.visit + np.arange(nv), 10),
        "loyalty_id": S.take(w.loyalty_ids, v.person[v_rank]),
        "store_id": S.take(w.store_ids, v.store[v_rank]),
        "visited_at": S.timestamps(v.t[v_rank]),
        "dwell_minutes": v.dwell[v_rank],
        "purchase_amount": visit_amount[v_rank],
    })
    ctr.visit += nv
    return table
