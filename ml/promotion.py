"""Promotion: which alias a newly registered version takes, `champion` or `challenger`, and why.

The new version of a training takes the `champion` alias when there is no champion (whatever its quality: a
deployment always gets segments; where it misses a bar, `ml.selection.weaknesses`, is tagged on the run and the
version as `promotion_weaknesses` and returned as `weaknesses`), or when its silhouette is not worse than the
champion's by more than `ml.promotion_silhouette_tolerance` AND its stability reaches
`ml.selection.min_stability`; otherwise it takes `challenger` and the reason is tagged on the run and version.
Both silhouettes are measured on today's fit sample in today's preprocessed space (the champion's segments of
today's customers): the champion's own training silhouette describes data that may have drifted since, and a
drift retrain compared against it could never win. Without a usable champion labelling (other features), the
champion's recorded silhouette is the yardstick.

The rule is `promotion_decision` (pure); `promote` applies it to a training's version (ml/train.py, step 6).
The daily run defers the `champion` alias (`promote(..., defer=True)`): the version is tagged
`promotion: champion (pending the segments gate)`, assigned, gated, and only then `make_champion` moves the alias,
so a failed segments gate leaves the previous champion in place. `challenger` is set at once (nothing serves it).
"""

from __future__ import annotations

import mlflow
from mlflow.entities.model_registry import ModelVersion

from ml import selection, tracking
from ml.candidates import Candidate
from seg.core.config import Settings

PENDING = f"{tracking.CHAMPION} (pending the segments gate)"  # the `promotion` tag of a deferred promotion


def _move_champion(settings: Settings, version: str) -> None:
    """Point `champion` at `version`; the version it leaves is re-tagged `promotion: superseded by v<N>`, so no
    version but the champion says `champion` (the alias and the tags tell one story in the MLflow UI)."""
    mlc = tracking.client(settings)
    name = settings.ml.registered_model_name
    previous = tracking.champion_version(settings)
    mlc.set_registered_model_alias(name, tracking.CHAMPION, version)
    if previous is not None and str(previous.version) != str(version):
        superseded = f"superseded by v{version}"
        mlc.set_model_version_tag(name, str(previous.version), "promotion", superseded)
        if previous.run_id:
            mlc.set_tag(previous.run_id, "promotion", superseded)


def make_champion(settings: Settings, version: str) -> None:
    """Move `champion` to `version` (a deferred promotion whose segments passed their gate) and tag it."""
    mlc = tracking.client(settings)
    name = settings.ml.registered_model_name
    _move_champion(settings, version)
    mlc.set_model_version_tag(name, version, "promotion", tracking.CHAMPION)
    run_id = mlc.get_model_version(name, version).run_id
    if run_id:
        mlc.set_tag(run_id, "promotion", tracking.CHAMPION)


def recorded_silhouette(settings: Settings, version: ModelVersion) -> float | None:
    """The silhouette recorded at a version's training: its `silhouette` tag, else its run's metric."""
    if "silhouette" in (version.tags or {}):
        return float(version.tags["silhouette"])
    if version.run_id:
        value = tracking.client(settings).get_run(version.run_id).data.metrics.get("silhouette")
        return None if value is None else float(value)
    return None


def promotion_decision(
    new_silhouette: float,
    champion: ModelVersion | None,
    champion_silhouette: float | None,
    tolerance: float,
    stability: float | None = None,
    min_stability: float | None = None,
    basis: str = "recorded",
) -> tuple[bool, str]:
    """(promote?, reason) for the rule of the module docstring: the first model is always promoted (a deployment
    always gets segments; its weaknesses are recorded apart); later ones must be stable AND not worse beyond
    tolerance."""
    if champion is None:
        return True, "no champion yet"
    if stability is not None and min_stability is not None and not stability >= min_stability:
        return False, f"stability {stability:.3f} is below ml.selection.min_stability {min_stability}"
    if champion_silhouette is None:
        return True, f"champion v{champion.version} has no recorded silhouette"
    if new_silhouette >= champion_silhouette - tolerance:
        return True, (
            f"silhouette {new_silhouette:.4f} is within {tolerance} of (or better than) champion "
            f"v{champion.version}'s {champion_silhouette:.4f} ({basis})"
        )
    return False, (
        f"silhouette {new_silhouette:.4f} is worse than champion v{champion.version}'s "
        f"{champion_silhouette:.4f} ({basis}) by more than {tolerance}"
    )


def promote(
    settings: Settings,
    iso: str,
    version: str,
    chosen: Candidate,
    used: list[str],
    previous: ModelVersion | None,
    champion_today: float | None,
    defer: bool = False,
) -> tuple[bool, str, list[str]]:
    """Step 6: champion or challenger alias for the new version, its tags on the version and the parent run;
    returns (promoted, promotion_reason, weaknesses). defer: a version to promote is only tagged
    (PENDING); `make_champion` moves the alias once its segments passed their gate."""
    cfg = settings.ml
    name = cfg.registered_model_name
    mlc = tracking.client(settings)
    if champion_today is not None:
        champion_sil, basis = champion_today, "on today's fit sample"
    else:
        champion_sil = None if previous is None else recorded_silhouette(settings, previous)
        basis = "recorded at its training"
    promoted, promotion_reason = promotion_decision(
        chosen.metrics["silhouette"],
        previous,
        champion_sil,
        float(cfg.promotion_silhouette_tolerance),
        chosen.metrics.get("stability"),
        float(cfg.selection.min_stability),
        basis,
    )
    weak = selection.weaknesses(chosen.metrics, cfg)
    weak_text = "; ".join(weak) or "none"
    if promoted and previous is None and weak:
        promotion_reason = f"{promotion_reason}: promoted despite its weaknesses ({weak_text})"
    alias = tracking.CHAMPION if promoted else tracking.CHALLENGER
    if promoted and defer:
        alias = PENDING
    elif promoted:
        _move_champion(settings, version)
    else:
        mlc.set_registered_model_alias(name, alias, version)
    version_tags = {
        "as_of_date": iso,
        "k": str(chosen.k),
        "family": chosen.family,
        "silhouette": repr(chosen.metrics["silhouette"]),
        "stability": repr(chosen.metrics.get("stability")),
        "features": ",".join(used),
        "promotion": alias,
        "promotion_reason": promotion_reason,
        "promotion_weaknesses": weak_text,
    }
    for key, value in version_tags.items():
        mlc.set_model_version_tag(name, version, key, value)
    mlflow.set_tags(
        {
            "model_version": version,
            "promotion": alias,
            "promotion_reason": promotion_reason,
            "promotion_weaknesses": weak_text,
            "promoted": str(promoted),
        }
    )
    mlflow.log_metric("n_weaknesses", float(len(weak)))
    return promoted, promotion_reason, weak
