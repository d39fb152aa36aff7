"""Training: choose k, fit the segmentation pipeline, log everything to MLflow, register and maybe promote.

`run(settings, as_of_date)`:

1. Reads `marts.customer_features` read-only. Configured features (`ml.features`) that are missing or entirely
   NULL are dropped (and recorded); up to `ml.fit_sample_size` rows are sampled in DuckDB by a seeded hash of
   person_id (deterministic, stable from day to day).
2. Fits the preprocessing (`ml.features.build_preprocessor`: clip+log1p for `ml.log_features`, median imputation
   with missing indicators, standard scaling) once, then one MiniBatchKMeans per k in k_min..k_max.
3. Selection rule: the best silhouette among candidates whose smallest segment holds at least
   `ml.min_segment_share` of the fit sample; ties go to the smaller k; if no candidate qualifies, the best
   silhouette overall (the run is tagged with the reason either way).
4. MLflow: one parent run `train-<as_of_date>` in `ml.experiment_name` (lineage tags: as_of_date, rows, feature
   list, snapshot dates, dbt invocation id when available), a nested run per k with its params and metrics, plots
   (model selection, PCA scatter, profile heatmap), and the fitted Pipeline(preprocess, cluster) logged with a
   signature, an input example and explicit pip pins, registered as `ml.registered_model_name`. The model
   directory carries `extra_files/reference.json` (drift reference: quantile bin edges and proportions per feature
   over the whole table, training segment mix) and `extra_files/segment_names.json`.
5. Promotion: the new version takes the `champion` alias when there is no champion or its silhouette is not worse
   than the champion's by more than `ml.promotion_silhouette_tolerance`; otherwise it takes `challenger` and the
   reason is tagged on the run and the version.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from ml import drift, evaluate, features, naming, plots, tracking
from seg.config import Settings
from seg.warehouse import connect

log = logging.getLogger(__name__)

SIGNATURE_ROWS = 1000
INPUT_EXAMPLE_ROWS = 5


def should_train(settings: Settings, as_of_date: date, *, force: bool = False) -> tuple[bool, str]:
    """Whether to train for `as_of_date`, and why: forced (argument or `ml.force_train`), no champion yet, or the
    date's weekday is in `ml.train_weekdays` (0 = Monday)."""
    cfg = settings["ml"]
    if force or bool(cfg.get("force_train", False)):
        return True, "forced"
    champion = tracking.champion_version(settings)
    if champion is None:
        return True, "no champion model yet"
    weekdays = [int(d) for d in cfg.get("train_weekdays", [])]
    day = as_of_date.strftime("%A")
    if as_of_date.weekday() in weekdays:
        return True, f"{as_of_date.isoformat()} is a {day}, a training day (ml.train_weekdays={weekdays})"
    return False, f"champion v{champion.version} exists and {day} is not a training day (ml.train_weekdays={weekdays})"


def _dbt_invocation_id(settings: Settings) -> str | None:
    """The invocation id of the last dbt run that wrote the marts, if its run_results.json is present."""
    path = settings.paths.dbt_target / "run_results.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("metadata", {}).get("invocation_id")
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("could not read dbt invocation id from %s: %s", path, exc)
        return None


def _champion_silhouette(settings: Settings, version: ModelVersion) -> float | None:
    if "silhouette" in (version.tags or {}):
        return float(version.tags["silhouette"])
    if version.run_id:
        value = tracking.client(settings).get_run(version.run_id).data.metrics.get("silhouette")
        return None if value is None else float(value)
    return None


def promotion_decision(
    new_silhouette: float, champion: ModelVersion | None, champion_silhouette: float | None, tolerance: float
) -> tuple[bool, str]:
    """(promote?, reason) for the rule in the module docstring."""
    if champion is None:
        return True, "no champion yet"
    if champion_silhouette is None:
        return True, f"champion v{champion.version} has no recorded silhouette"
    if new_silhouette >= champion_silhouette - tolerance:
        return True, (
            f"silhouette {new_silhouette:.4f} is within {tolerance} of (or better than) champion "
            f"v{champion.version}'s {champion_silhouette:.4f}"
        )
    return False, (
        f"silhouette {new_silhouette:.4f} is worse than champion v{champion.version}'s "
        f"{champion_silhouette:.4f} by more than {tolerance}"
    )


def _json_dump(obj: Any, path: Path) -> Path:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))
    return path


def run(settings: Settings, as_of_date: date, *, lineage: dict[str, str] | None = None) -> dict[str, Any]:
    """Train, log, register and (maybe) promote a segmentation model for `as_of_date`.

    `lineage` adds tags to the parent run (e.g. {"airflow.run_id": ...}). Returns a JSON-serialisable dict:
    {run_id, model_version, k, metrics, promoted, promotion_reason, selection_reason, segment_names {id: name},
    features, dropped_features {feature: reason}, rows, sample_rows, as_of_date, timings {step: seconds}}.
    """
    cfg = settings["ml"]
    seed = int(cfg["random_state"])
    iso = as_of_date.isoformat()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    with connect(settings, read_only=True) as con:
        selection = features.resolve_features(con, cfg["features"])
        if not selection.used:
            raise ValueError(f"no usable feature in {features.FEATURE_TABLE}: {selection.dropped}")
        total_rows = features.row_count(con)
        frame = features.sample_frame(con, selection.used, int(cfg["fit_sample_size"]), seed)
        dropped = dict(selection.dropped)
        for f in selection.used:
            if frame[f].isna().all():
                dropped[f] = "no value in the fit sample"
        used = [f for f in selection.used if f not in dropped]
        if not used:
            raise ValueError(f"no usable feature in the fit sample: {dropped}")
        reference = drift.build_reference(con, used, int(settings["drift"]["psi_bins"]))
        snapshot_min, snapshot_max = features.snapshot_dates(con)
    timings["read_seconds"] = time.perf_counter() - t0
    log_features = [f for f in cfg.get("log_features", []) if f in used]
    x_frame = frame[used]

    t = time.perf_counter()
    preprocess = features.build_preprocessor(used, log_features)
    xt = preprocess.fit_transform(x_frame)
    ks = evaluate.candidate_ks(cfg, len(frame))

    tracking.client(settings)
    experiment_id = tracking.experiment_id(settings)
    previous = tracking.champion_version(settings)
    timings["mlflow_setup_seconds"] = time.perf_counter() - t

    tags = {
        "run_type": "train",
        "as_of_date": iso,
        "rows": str(total_rows),
        "sample_rows": str(len(frame)),
        "features": ",".join(used),
        "dropped_features": json.dumps(dropped, sort_keys=True),
        "data.table": features.FEATURE_TABLE,
        "data.warehouse": str(settings.paths.warehouse),
        "data.as_of_date_min": str(snapshot_min),
        "data.as_of_date_max": str(snapshot_max),
    }
    invocation = _dbt_invocation_id(settings)
    if invocation:
        tags["dbt.invocation_id"] = invocation
    tags.update({k: str(v) for k, v in (lineage or {}).items()})

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{iso}", tags=tags) as parent:
        mlflow.log_params(
            {
                "k_min": cfg["k_min"],
                "k_max": cfg["k_max"],
                "fit_sample_size": cfg["fit_sample_size"],
                "silhouette_sample_size": cfg["silhouette_sample_size"],
                "min_segment_share": cfg["min_segment_share"],
                "random_state": seed,
                "batch_size": cfg["batch_size"],
                "n_init": cfg["n_init"],
                "max_iter": cfg["max_iter"],
                "n_features": len(used),
                "log_features": ",".join(log_features),
                "psi_bins": settings["drift"]["psi_bins"],
            }
        )
        t = time.perf_counter()
        candidates: list[evaluate.Candidate] = []
        for k in ks:
            candidate = evaluate.fit_candidate(xt, k, cfg)
            candidates.append(candidate)
            with mlflow.start_run(
                experiment_id=experiment_id, run_name=f"k={k}", nested=True, tags={"as_of_date": iso, "k": str(k)}
            ):
                mlflow.log_params(
                    {"k": k, "random_state": seed, "batch_size": cfg["batch_size"], "n_init": cfg["n_init"]}
                )
                mlflow.log_metrics(candidate.metrics)
            mlflow.log_metrics({f"{name}_by_k": value for name, value in candidate.metrics.items()}, step=k)
        timings["fit_candidates_seconds"] = time.perf_counter() - t

        chosen, selection_reason = evaluate.select(candidates, float(cfg["min_segment_share"]))
        pipeline = Pipeline([("preprocess", preprocess), ("cluster", chosen.model)])
        labels = chosen.labels
        shares = {seg: float(count) / len(labels) for seg, count in enumerate(np.bincount(labels, minlength=chosen.k))}
        profile = naming.standardized_profile(features.profile_space(frame, used, log_features), labels)
        segments = naming.name_segments(profile, int(cfg["naming_top_n"]), float(cfg["naming_min_abs_z"]), shares)
        names = {seg: info["name"] for seg, info in segments.items()}
        reference.update(
            {
                "as_of_date": iso,
                "k": chosen.k,
                "log_features": log_features,
                "segment_proportions": {str(seg): share for seg, share in shares.items()},
                "segment_proportions_source": f"fit sample ({len(frame)} rows)",
            }
        )
        mlflow.log_metrics(chosen.metrics)
        mlflow.set_tags({"k": str(chosen.k), "selection_reason": selection_reason})

        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="seg-train-") as tmp:
            out = Path(tmp)
            (out / "plots").mkdir()
            (out / "segmentation").mkdir()
            plots.save_png(
                plots.model_selection({c.k: c.metrics for c in candidates}, chosen.k),
                out / "plots" / "model_selection.png",
            )
            plots.save_png(
                plots.pca_scatter(xt, labels, names, int(cfg["plot_sample_size"]), seed),
                out / "plots" / "pca_segments.png",
            )
            plots.save_png(plots.profile_heatmap(profile, names), out / "plots" / "segment_profiles.png")
            segment_file = _json_dump(segments, out / "segmentation" / tracking.SEGMENT_NAMES_FILE)
            reference_file = _json_dump(reference, out / "segmentation" / tracking.REFERENCE_FILE)
            _json_dump(
                [{"k": c.k, **c.metrics} for c in candidates] + [{"selected_k": chosen.k, "reason": selection_reason}],
                out / "segmentation" / "candidates.json",
            )
            profile.round(4).to_csv(out / "segmentation" / "segment_profiles.csv", index_label="segment_id")
            mlflow.log_artifacts(str(out), artifact_path=None)
            timings["artifacts_seconds"] = time.perf_counter() - t

            t = time.perf_counter()
            head = x_frame.head(SIGNATURE_ROWS)
            signature = infer_signature(head, pipeline.predict(head))
            info = mlflow.sklearn.log_model(
                pipeline,
                name=tracking.MODEL_NAME_IN_RUN,
                signature=signature,
                input_example=x_frame.head(INPUT_EXAMPLE_ROWS),
                pip_requirements=tracking.pip_requirements(),
                registered_model_name=cfg["registered_model_name"],
                serialization_format="skops",
                skops_trusted_types=list(features.SKOPS_TRUSTED_TYPES),
                extra_files=[str(reference_file), str(segment_file)],
            )
            timings["log_model_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        version = str(info.registered_model_version)
        name = cfg["registered_model_name"]
        mlc = tracking.client(settings)
        champion_sil = None if previous is None else _champion_silhouette(settings, previous)
        promoted, promotion_reason = promotion_decision(
            chosen.metrics["silhouette"], previous, champion_sil, float(cfg["promotion_silhouette_tolerance"])
        )
        alias = tracking.CHAMPION if promoted else tracking.CHALLENGER
        mlc.set_registered_model_alias(name, alias, version)
        version_tags = {
            "as_of_date": iso,
            "k": str(chosen.k),
            "silhouette": repr(chosen.metrics["silhouette"]),
            "features": ",".join(used),
            "promotion": alias,
            "promotion_reason": promotion_reason,
        }
        for key, value in version_tags.items():
            mlc.set_model_version_tag(name, version, key, value)
        mlflow.set_tags(
            {
                "model_version": version,
                "promotion": alias,
                "promotion_reason": promotion_reason,
                "promoted": str(promoted),
            }
        )
        timings["register_seconds"] = time.perf_counter() - t
        timings["total_seconds"] = time.perf_counter() - t0
        mlflow.log_metrics({f"timing_{k}": v for k, v in timings.items()})
        run_id = parent.info.run_id

    log.info("trained v%s (k=%d) for %s: %s; %s", version, chosen.k, iso, selection_reason, promotion_reason)
    return {
        "run_id": run_id,
        "model_version": version,
        "k": chosen.k,
        "metrics": chosen.metrics,
        "promoted": promoted,
        "promotion_reason": promotion_reason,
        "selection_reason": selection_reason,
        "segment_names": names,
        "features": used,
        "dropped_features": dropped,
        "rows": total_rows,
        "sample_rows": len(frame),
        "as_of_date": iso,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
