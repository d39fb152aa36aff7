"""Segment-spec events (JSONL) through examples/segment/mapping.yml, end to end: taxonomy mapping, quarantine of
custom events, and identity stitching of a device's anonymous events to the person who later identified on it."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from .conftest import EXAMPLES, FIXTURES, assert_every_customer_has_one_segment, import_and_run, landing, rejected_lines

pytestmark = pytest.mark.e2e
DAY = dt.date(2024, 3, 25)  # the day after the last event
EXPORT = FIXTURES / "segment_events.jsonl"
MAPPING = EXAMPLES / "segment" / "mapping.yml"
SPEC_NAMES = {"Product Viewed", "Product Added", "Product Removed", "Checkout Started", "Order Completed",
              "Products Searched", "Video Playback Started"}


def calls() -> tuple[list[dict], list[int]]:
    """The calls of the export, and the line numbers of the lines that are no JSON object."""
    good, bad = [], []
    for n, line in enumerate(EXPORT.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            good.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(n)
    return good, bad


def is_timestamp(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return import_and_run(tmp_path_factory.mktemp("segment") / "data", DAY, (EXPORT, MAPPING))


def test_every_call_is_landed_or_quarantined_with_its_reason(run):
    good, bad = calls()
    rejected = rejected_lines(run.settings, DAY)
    assert [n for n, _, _ in rejected] == bad and len(bad) == 1 and rejected[0][2].startswith("not valid JSON")
    unmapped = Counter(c.get("event") if c["type"] == "track" else c["type"] for c in good
                       if (c["type"] == "track" and c["event"] not in SPEC_NAMES)
                       or c["type"] not in ("track", "page", "screen", "identify"))
    assert unmapped == {"Coupon Applied": unmapped["Coupon Applied"], "group": 1} and unmapped["Coupon Applied"] > 0
    bad_time = sum(1 for c in good if not is_timestamp(c["timestamp"]))
    totals = landing(run.settings)
    assert set(totals) == {"events"}
    assert totals["events"]["rows_in"] == len(good) == totals["events"]["landed"] + totals["events"]["quarantined"]
    assert totals["events"]["reasons"] == {"event_type: value not allowed": sum(unmapped.values()),
                                           "occurred_at: not a timestamp": bad_time}
    landed = dict(run.query("select event_type, count(*) from staging.stg_lake__events group by 1"))
    assert landed["login"] == sum(1 for c in good if c["type"] == "identify")
    assert landed["page_view"] == sum(1 for c in good if c["type"] in ("page", "screen"))
    assert landed["purchase"] == sum(1 for c in good if c.get("event") == "Order Completed")


def test_timestamps_with_an_offset_are_stored_in_utc(run):
    good, _ = calls()
    offset = next(c for c in good if c["timestamp"].endswith("+01:00"))
    expected = dt.datetime.fromisoformat(offset["timestamp"]).astimezone(dt.UTC).replace(tzinfo=None)
    (occurred_at,), = run.query("select occurred_at from staging.stg_lake__events where event_id = ?", [offset["messageId"]])
    assert occurred_at == expected


def test_a_device_browsing_before_identify_belongs_to_the_customer(run):
    good, _ = calls()
    identified = {(c["anonymousId"], c["userId"]) for c in good if c["type"] == "identify"}
    person = {(t, v): p for t, v, p in run.query(
        "select identifier_type, identifier_value, person_id from intermediate.int_identities_resolved")}
    for anonymous_id, user_id in identified:
        assert person[("anonymous_id", anonymous_id)] == person[("customer_id", user_id)], (anonymous_id, user_id)
    # the events that device sent before the identify call (no userId yet) are in the person's sessions
    before = [c for c in good if c.get("anonymousId") in dict(identified) and "userId" not in c and is_timestamp(c["timestamp"])]
    assert before
    anonymous_id, user_id = next(iter(identified))
    rows = run.query("""
        select count(*) from marts.sessions as s
        inner join marts.customers as c using (person_id)
        where c.customer_id = ?""", [user_id])
    assert rows[0][0] >= 1
    # server-side calls (userId only) get the customer's pseudo-device and the customer's person
    server = next(c for c in good if "anonymousId" not in c and c["type"] == "track")
    assert person[("anonymous_id", f"user:{server['userId']}")] == person[("customer_id", server["userId"])]


def test_customers_are_the_identified_users_and_all_have_a_segment(run):
    good, _ = calls()
    users = {c["userId"] for c in good if "userId" in c and c["type"] != "group"}
    assert assert_every_customer_has_one_segment(run) == len(users)
    assert {c for (c,) in run.query("select customer_id from marts.customers")} == users
