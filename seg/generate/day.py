"""One simulated day: sessions and events, web/app orders, store visits and orders, survey answers, CRM rows.

Everything is vectorised over the day's sessions / events / orders; the only Python loops run over event
types, questions or sources. Planted behaviour (cart abandonment, repeated product views, lapsing) is driven
by persona parameters; the exact truth is computed afterwards from what was generated (truth.py).

The day is a fixed list of steps (DaySimulator.simulate), each in its own module: sessions.py (sessions, their
events' products and times), visits.py (store visits, till guests), orders.py (all orders, lines, amounts),
events.py (the events table), survey.py, crm.py; truth.py accumulates what the truth needs. All steps draw from
one random stream per day, so their order is part of the output: reordering them changes every generated file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from seg.generate.context import Counters, Day, Lookups
from seg.generate.crm import crm_table, record_days
from seg.generate.events import events_table
from seg.generate.orders import draw_orders, order_items_table, orders_table
from seg.generate.sessions import draw_session_events, draw_sessions
from seg.generate.survey import draw_survey
from seg.generate.truth import TruthAcc
from seg.generate.visits import draw_store_day, visits_table
from seg.generate.world import World


class DaySimulator:
    def __init__(self, world: World, seed: int):
        self.w = world
        self.seed = seed
        self.ctr = Counters()
        self.acc = TruthAcc.for_people(world.n)
        raw = world.params.raw
        self.wf_online = np.array(raw["weekday_factor"]["online"], dtype=np.float64)
        self.wf_store = np.array(raw["weekday_factor"]["store"], dtype=np.float64)
        self.store_open = float(raw["store_hours"]["open"])
        self.store_close = float(raw["store_hours"]["close"])
        self.lk = Lookups.of(world)
        self.crm_created_day, self.crm_updated_day = record_days(world)

    def rng(self, d: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 1, d])))

    def simulate(self, d: int) -> dict[str, pa.Table]:
        """Day d -> the six contract tables. The steps run in this order (it fixes the random draws)."""
        w, lk, ctr = self.w, self.lk, self.ctr
        day = Day.of(w, d, self.rng(d))
        sessions = draw_sessions(day, w, ctr, self.wf_online[day.weekday])
        events = draw_session_events(day, w, sessions)
        store = draw_store_day(day, w, self.wf_store[day.weekday], self.store_open, self.store_close)
        orders = draw_orders(day, w, sessions, events, store, ctr)
        events_t = events_table(day, w, lk, sessions, events, orders, ctr)
        orders_t = orders_table(w, orders)
        items_t = order_items_table(w, lk, orders)
        visits_t = visits_table(w, store, orders.visit_amount(store), ctr)
        survey = draw_survey(day, w, ctr)
        crm_t = crm_table(w, lk, d, self.crm_created_day, self.crm_updated_day)
        self.acc.add_day(sessions, events, orders, store, survey)
        return {"crm_customers": crm_t, "orders": orders_t, "order_items": items_t, "events": events_t,
                "store_visits": visits_t, "survey_responses": survey.table}
