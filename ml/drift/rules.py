"""The drift decision rules: pure functions from the day's statistics and the `drift:` thresholds to a status or a
decision (no I/O; `ml.drift.monitor` feeds them, tests/ml/test_drift_rules.py pins them).

Status per feature (`status`): `drift` when PSI >= `psi_act`, `watch` when PSI >= `psi_watch`, but only if the PSI
is also above what sampling noise reaches with probability `psi_alpha` (`ml.drift.stats.psi_critical`): small days
and small cells cannot raise an alarm. The channel mix of today's orders is categorical (`flow_status`): two-sample
chi-square p < `flow_alpha` and PSI >= `flow_psi_min` is drift, p < `psi_alpha` with that PSI is watch.

Decision (`decide`):
- `retrain` when the share of drifted features >= `dataset_drift_share`, or the segment-mix PSI >= `psi_act`
  (above noise), or the mean distance to the nearest centroid grew by `distance_ratio_act` or more, or a flow
  listed in `flow_retrain_signals` (the channel mix: a change of behaviour) drifted;
- `warn` when any feature, flow or the segment mix is at watch or worse (a drifted amount distribution only
  warns: amounts x100 are a source problem that a retrain must not learn), the distance ratio >=
  `distance_ratio_watch`, or the switch share >= `switch_share_watch`;
- `none` otherwise; also when there is no champion yet ("no model yet") or fewer than `min_rows` rows today
  (both decided by the monitor before this rule is reached);
- a behaviour change (flow) is acted on once: for `flow_retrain_memory_days` after a day whose report decided
  `retrain` for it (monitoring.drift_decisions), the same signal only warns. Its reference is the weekday mix of the
  28 days before training, so after a lasting change it keeps firing until that window has moved past the change,
  and every day would otherwise ask for a new model. Feature, segment-mix and confidence drift, measured against the
  newly trained model, still retrain.

Lifetime features grow with the observation window on a perfectly stationary population (counts and sums over all
history, recency bounded by it). Features listed in `drift.cumulative_features` / `drift.age_features` are
therefore compared as rates: today's values are multiplied by `rescale_factor` = reference history_days / today's
history_days (a no-op once the history is long; it matters for young warehouses and generated data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from seg.core.config import DriftSettings

STABLE, WATCH, DRIFT = "stable", "watch", "drift"
NONE, WARN, RETRAIN = "none", "warn", "retrain"
# The reason text of a flow that caused a retrain; the monitor looks for it in monitoring.drift_decisions to know
# that a behaviour change was already acted on.
BEHAVIOUR_CHANGED = "behaviour changed:"


def status(value: float, watch: float, act: float, critical: float = 0.0) -> str:
    """stable / watch / drift for a PSI; a value below the sampling-noise `critical` PSI is always stable."""
    if value < critical:
        return STABLE
    if value >= act:
        return DRIFT
    if value >= watch:
        return WATCH
    return STABLE


def flow_status(p_value: float, value: float, flow_alpha: float, alpha: float, flow_psi: float) -> str:
    """stable / watch / drift of a categorical flow: significance (two-sample chi-square p) and size (PSI)."""
    if p_value < flow_alpha and value >= flow_psi:
        return DRIFT
    if p_value < alpha and value >= flow_psi:
        return WATCH
    return STABLE


def rescale_factor(ref_history: int | None, cur_history: int | None) -> float:
    """reference history_days / today's: the factor that turns today's lifetime totals into the reference window."""
    if not ref_history or not cur_history or cur_history <= 0:
        return 1.0
    return float(ref_history) / float(cur_history)


def decide(
    feature_psi: Mapping[str, float],
    segment_mix_psi: float | None,
    cfg: DriftSettings,
    *,
    critical: Mapping[str, float] | None = None,
    mix_critical: float = 0.0,
    distance_ratio: float | None = None,
    switch_share: float | None = None,
    flows: Sequence[Mapping[str, Any]] = (),
    flow_acted_on: date | None = None,
) -> tuple[str, list[str]]:
    """The decision rule of the module docstring: (decision, reasons).

    `critical` holds each feature's sampling-noise PSI (and `mix_critical` the segment mix's); a PSI below it counts
    as stable whatever the thresholds say. `flow_acted_on` is the last earlier day whose decision was a retrain for
    a behaviour change (within `flow_retrain_memory_days`): the flow signals then only warn.
    """
    watch, act, share_limit = float(cfg.psi_watch), float(cfg.psi_act), float(cfg.dataset_drift_share)
    critical = critical or {}
    st = {f: status(v, watch, act, critical.get(f, 0.0)) for f, v in feature_psi.items()}
    drifted = sorted((f for f, s in st.items() if s == DRIFT), key=lambda f: -feature_psi[f])
    watched = sorted((f for f, s in st.items() if s == WATCH), key=lambda f: -feature_psi[f])
    noisy = sorted(f for f, v in feature_psi.items() if v >= watch and st[f] == STABLE)
    share = len(drifted) / len(feature_psi) if feature_psi else 0.0
    reasons: list[str] = []
    retrain = warn = False
    if drifted:
        listed = ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in drifted)
        head = f"{len(drifted)}/{len(feature_psi)} features drifted (PSI >= {act}): {listed}; share {share:.2f}"
        if share >= share_limit:
            retrain = True
            reasons.append(f"{head} >= dataset_drift_share {share_limit}")
        else:
            warn = True
            reasons.append(f"{head} < dataset_drift_share {share_limit}")
    if watched:
        warn = True
        reasons.append(
            f"features to watch ({watch} <= PSI < {act}): " + ", ".join(f"{f} ({feature_psi[f]:.3f})" for f in watched)
        )
    if noisy:
        reasons.append(
            "within sampling noise (PSI >= watch but below the noise floor): "
            + ", ".join(f"{f} ({feature_psi[f]:.3f} < {critical[f]:.3f})" for f in noisy)
        )
    if segment_mix_psi is not None:
        mix_status = status(segment_mix_psi, watch, act, mix_critical)
        if mix_status == DRIFT:
            retrain = True
            reasons.append(f"segment mix moved: PSI {segment_mix_psi:.3f} >= {act}")
        elif mix_status == WATCH:
            warn = True
            reasons.append(f"segment mix to watch: PSI {segment_mix_psi:.3f} >= {watch}")
    if distance_ratio is not None:
        ratio_act, ratio_watch = float(cfg.distance_ratio_act), float(cfg.distance_ratio_watch)
        if distance_ratio >= ratio_act:
            retrain = True
            reasons.append(f"assignment confidence dropped: distance to nearest centroid x{distance_ratio:.2f} >= {ratio_act}")
        elif distance_ratio >= ratio_watch:
            warn = True
            reasons.append(f"assignment confidence to watch: distance to nearest centroid x{distance_ratio:.2f}")
    retrain_flows = set(cfg.flow_retrain_signals)
    for flow in flows:
        if flow.get("status") not in (WATCH, DRIFT):
            continue
        what = (
            f"today's {flow['flow']} ({flow['orders']} orders) vs {flow['note']}: PSI {flow['psi']:.3f}, "
            f"chi-square p {flow['p_value']:.2g}"
        )
        if flow["status"] == DRIFT and flow["flow"] in retrain_flows and flow_acted_on is not None:
            warn = True
            reasons.append(f"behaviour changed (already acted on: retrain decided on {flow_acted_on}): {what}")
        elif flow["status"] == DRIFT and flow["flow"] in retrain_flows:
            retrain = True
            reasons.append(f"{BEHAVIOUR_CHANGED} {what}")
        elif flow["status"] == DRIFT:
            warn = True
            reasons.append(f"drift in {what} (check the source before retraining)")
        else:
            warn = True
            reasons.append(f"to watch: {what}")
    if switch_share is not None and switch_share >= float(cfg.switch_share_watch):
        warn = True
        reasons.append(f"{switch_share:.1%} of the sample switched segment since the last published run")
    if retrain:
        return RETRAIN, reasons
    if warn:
        return WARN, reasons
    return NONE, reasons or [f"all {len(feature_psi)} features and the segment mix below PSI {watch}"]
