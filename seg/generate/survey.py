"""Survey answers: people whose survey day it is answer (some questions skipped) with Likert scores around their
persona's means and a preferred channel; the survey_responses table (one row per answered question)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seg.generate import strings as S
from seg.generate.context import SECOND, Counters, Day
from seg.generate.params import CHANNELS, QUESTIONS, draw_by
from seg.generate.tables import to_table
from seg.generate.world import HOUR_US, World

QUESTION_NAMES = pa.array(list(QUESTIONS))
ANSWERS = pa.array(["1", "2", "3", "4", "5"] + list(CHANNELS))


@dataclass
class SurveyDay:
    person: np.ndarray      # per response: the respondent
    t: np.ndarray           # per response: answered at (us)
    table: pa.Table         # survey_responses


def draw_survey(day: Day, w: World, ctr: Counters) -> SurveyDay:
    rng, p = day.rng, w.params
    idn = p.raw["identity"]
    day0, day1 = day.day0, day.day1
    resp = np.flatnonzero((w.survey_day == day.d) & day.active)
    nr = resp.size
    r_pe = day.eff[resp]
    r_hour = draw_by(p.hour_cdf, r_pe, rng.random(nr))
    r_t = day0 + r_hour * HOUR_US + (rng.random(nr) * HOUR_US).astype(np.int64)
    r_t = np.where(w.signup_us[resp] >= day0, np.maximum(r_t, w.signup_us[resp] + 60 * SECOND), r_t)
    r_t = np.minimum(r_t, day1 - 1)
    email_only = rng.random(nr) < float(idn["survey_email_only_share"])
    both = rng.random(nr) < 0.2  # some responses with a customer id also carry the email
    nq = len(QUESTIONS)
    likert = np.clip(np.round(p.survey_mean[r_pe] + w.survey_offset[resp] + rng.normal(0, 0.45, (nr, 5))), 1, 5)
    chan = draw_by(p.channel_pref_cdf, r_pe, rng.random(nr))
    answered = rng.random((nr, nq)) >= float(idn["survey_skip_question_prob"])
    answered[~answered.any(axis=1), 0] = True
    ri, qi = np.nonzero(answered)
    ans_code = np.where(qi < 5, likert[ri, np.minimum(qi, 4)].astype(np.int64) - 1, 5 + chan[ri])
    table = to_table("survey_responses", {
        "response_id": S.prefixed_ids("R", ctr.response + ri, 10),
        "customer_id": S.take(w.customer_ids, resp[ri], valid=~email_only[ri]),
        "email": S.take(w.emails_typed, resp[ri], valid=email_only[ri] | both[ri]),
        "answered_at": S.timestamps(r_t[ri]),
        "question_id": S.take(QUESTION_NAMES, qi),
        "answer": S.take(ANSWERS, ans_code),
    })
    ctr.response += nr
    return SurveyDay(person=resp, t=r_t, table=table)
