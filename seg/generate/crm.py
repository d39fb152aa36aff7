"""CRM rows of the day: records created today and records updated today (the update flips the marketing opt-in),
in update-time order; the crm_customers table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.context import Lookups
from seg.generate.tables import to_table
from seg.generate.world import DAY_US, GENDERS, World

GENDER_NAMES = pa.array(list(GENDERS))


def record_days(w: World) -> tuple[np.ndarray, np.ndarray]:
    """Per CRM record: the day index it is delivered as new (records from before the window: day 0) and the day
    of its update (-1: none)."""
    rc = np.floor_divide(w.rec_created_us - w.start_us, DAY_US)
    return np.maximum(rc, 0), np.where(w.rec_upd, np.floor_divide(w.rec_upd_us - w.start_us, DAY_US), -1)


def crm_table(w: World, lk: Lookups, d: int, created_day: np.ndarray, updated_day: np.ndarray) -> pa.Table:
    new = np.flatnonzero(created_day == d)
    upd = np.flatnonzero(updated_day == d)
    recs = np.concatenate([new, upd])
    is_upd = np.concatenate([np.zeros(new.size, bool), np.ones(upd.size, bool)])
    rp = w.rec_person[recs]
    upd_at = np.where(is_upd, w.rec_upd_us[recs], w.rec_updated_us[recs])
    ordr = np.lexsort((recs, upd_at))
    recs, is_upd, rp, upd_at = recs[ordr], is_upd[ordr], rp[ordr], upd_at[ordr]
    opt = np.where(is_upd, ~w.rec_opt_in[recs], w.rec_opt_in[recs])
    primary = ~w.rec_secondary[recs]
    return to_table("crm_customers", {
        "customer_id": S.take(w.customer_ids, recs),
        "email": S.take(w.emails_typed, recs),
        "phone": w.rec_phone.take(pa.array(recs)),
        "first_name": S.take(lk.first_names, w.extras["first_idx"][rp]),
        "last_name": S.take(lk.last_names, w.extras["last_idx"][rp]),
        "birth_date": pa.array(w.birth_days[rp].astype(np.int32), pa.date32()),
        "gender": S.take(GENDER_NAMES, w.gender[rp]),
        "country": S.take(lk.countries, w.country[rp]),
        "region": S.take(lk.regions, w.region[rp]),
        "city": S.take(lk.cities, w.city[rp]),
        "signup_at": S.timestamps(w.rec_created_us[recs]),
        "loyalty_id": S.take(w.loyalty_ids, rp, valid=primary & w.has_loyalty[rp]),
        "marketing_opt_in": opt,
        "updated_at": S.timestamps(upd_at),
    })
