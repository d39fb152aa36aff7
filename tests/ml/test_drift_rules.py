"""PSI and the drift decision rules (ml.drift.rules), on hand-computed values."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pytest

from ml.drift.reference import bin_labels
from ml.drift.rules import DRIFT, NONE, RETRAIN, STABLE, WARN, WATCH, decide, rescale_factor, status
from ml.drift.stats import psi

from .conftest import default_settings

CFG = default_settings(
    {"drift": {"psi_watch": 0.1, "psi_act": 0.25, "dataset_drift_share": 0.3, "flow_retrain_signals": []}}
).drift


def test_psi_of_identical_distributions_is_zero():
    assert psi([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]) == 0.0


@pytest.mark.parametrize(
    ("ref", "cur", "expected"),
    [
        # 0.25*ln(0.25/0.5)*(-1) + 0.25*ln(0.75/0.5) = 0.25*0.693147 + 0.25*0.405465
        ([0.5, 0.5], [0.25, 0.75], 0.274653),
        # 0.3*ln4 + 0.1*ln1.5 + 0.1*ln1.5 + 0.3*ln4 = 0.415888 + 0.040547 + 0.040547 + 0.415888
        ([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], 0.912870),
        # empty reference bin floored at eps=1e-4: -0.1*ln(0.8) + (0.1-0.0001)*ln(0.1/0.0001) = 0.022314 + 0.690085
        ([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], 0.712399),
    ],
)
def test_psi_matches_hand_computed_values(ref, cur, expected):
    assert psi(ref, cur, eps=1e-4) == pytest.approx(expected, abs=1e-6)


def test_psi_is_symmetric_in_its_arguments_and_finite_with_empty_bins():
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(psi([0.25, 0.75], [0.5, 0.5]))
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0], eps=1e-4))


def test_psi_rejects_vectors_over_different_bins():
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_status_thresholds_are_inclusive_at_watch_and_act():
    assert status(0.099, 0.1, 0.25) == STABLE
    assert status(0.1, 0.1, 0.25) == WATCH
    assert status(0.25, 0.1, 0.25) == DRIFT


def test_decision_is_none_when_everything_is_stable():
    decision, reasons = decide({"a": 0.01, "b": 0.02}, 0.0, CFG)
    assert decision == NONE
    assert reasons


def test_decision_warns_when_a_minority_of_features_drifts():
    decision, reasons = decide({f"f{i}": 0.0 for i in range(9)} | {"monetary": 0.9}, 0.01, CFG)
    assert decision == WARN
    assert any("monetary" in r for r in reasons)


def test_decision_retrains_when_drifted_share_reaches_the_dataset_limit():
    decision, reasons = decide({"a": 0.5, "b": 0.0, "c": 0.0}, 0.0, CFG)  # 1/3 >= 0.3
    assert decision == RETRAIN
    assert any("a (0.500)" in r for r in reasons)


def test_decision_retrains_when_the_segment_mix_moves():
    decision, reasons = decide({"a": 0.0, "b": 0.0}, 0.3, CFG)
    assert decision == RETRAIN
    assert any("segment mix" in r for r in reasons)


def test_watch_level_feature_only_warns():
    assert decide({"a": 0.15, "b": 0.0}, None, CFG)[0] == WARN


def test_bin_labels_cover_every_bin_and_null():
    assert bin_labels([1.0, 2.0]) == ["<= 1", "(1, 2]", "> 2", "NULL"]


def test_a_psi_below_the_sampling_noise_floor_is_stable():
    assert status(0.3, 0.1, 0.25, critical=0.4) == STABLE
    assert status(0.3, 0.1, 0.25, critical=0.2) == DRIFT
    decision, reasons = decide({"a": 0.5, "b": 0.0}, 0.0, CFG, critical={"a": 0.6, "b": 0.6})
    assert decision == NONE
    assert any("sampling noise" in r and "a (0.500 < 0.600)" in r for r in reasons)


def test_segment_mix_within_noise_does_not_retrain():
    assert decide({"a": 0.0}, 0.3, CFG, mix_critical=0.35)[0] == NONE


def test_a_confidence_drop_retrains_and_a_smaller_one_warns():
    cfg = replace(CFG, distance_ratio_watch=1.15, distance_ratio_act=1.5)
    decision, reasons = decide({"a": 0.0}, 0.0, cfg, distance_ratio=1.6)
    assert decision == RETRAIN and any("confidence dropped" in r for r in reasons)
    assert decide({"a": 0.0}, 0.0, cfg, distance_ratio=1.2)[0] == WARN
    assert decide({"a": 0.0}, 0.0, cfg, distance_ratio=1.05)[0] == NONE


def test_many_segment_switches_warn():
    decision, reasons = decide({"a": 0.0}, 0.0, replace(CFG, switch_share_watch=0.2), switch_share=0.3)
    assert decision == WARN and any("switched segment" in r for r in reasons)


def test_lifetime_features_are_compared_over_the_reference_window():
    assert rescale_factor(40, 50) == pytest.approx(0.8)
    assert rescale_factor(None, 50) == 1.0
    assert rescale_factor(40, None) == 1.0


FLOW = {"flow": "orders.channel", "status": DRIFT, "orders": 900, "psi": 0.2, "p_value": 1e-12, "note": "weekday 3"}


def test_a_behaviour_change_retrains_once_then_only_warns_while_it_is_remembered():
    cfg = replace(CFG, flow_retrain_signals=("orders.channel",))
    decision, reasons = decide({"a": 0.0}, 0.0, cfg, flows=[FLOW])
    assert decision == RETRAIN and reasons[0].startswith("behaviour changed: today's orders.channel")
    decision, reasons = decide({"a": 0.0}, 0.0, cfg, flows=[FLOW], flow_acted_on=dt.date(2026, 3, 2))
    assert decision == WARN
    assert reasons[0].startswith("behaviour changed (already acted on: retrain decided on 2026-03-02)")


def test_a_remembered_behaviour_change_does_not_hold_back_feature_drift():
    cfg = replace(CFG, flow_retrain_signals=("orders.channel",))
    decision, _ = decide({"a": 0.5, "b": 0.0}, 0.0, cfg, flows=[FLOW], flow_acted_on=dt.date(2026, 3, 2))
    assert decision == RETRAIN
