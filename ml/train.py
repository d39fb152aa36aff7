"""Training: fit candidate clusterers, select one, give its segments stable ids, log to MLflow, register, promote.

`run(settings, as_of_date)`:

1. Reads `marts.customer_features` read-only. Configured features (`ml.features` + `ml.lifecycle_features`) that
   are missing or entirely NULL are dropped (and recorded); up to `ml.fit_sample_size` rows are sampled in DuckDB
   by a seeded hash of person_id (deterministic, stable from day to day). Features that cannot separate customers
   in the fit sample (almost no value, constant or nearly so: `ml.preprocessing`) are dropped and recorded too.
   Data that cannot be segmented at all raises `UnsegmentableData` (a RuntimeError) saying what to change: fewer
   customers than `ml.k_min` x `ml.min_rows_per_segment`, no usable feature, fewer than k_min distinct customers.
2. Fits the preprocessing (`ml.features.build_preprocessor`: clip+log1p for `ml.log_features`, standard scaling
   winsorised at +-`ml.preprocessing.clip_z`, median imputation with missing indicators) once, then the candidate
   families of `ml.evaluate` (MiniBatchKMeans and GaussianMixture per k, Ward on a sub-sample cut at every k,
   HDBSCAN with noise -> nearest cluster, the deterministic RFM-score baseline).
3. Selection (`ml.evaluate.select`): eligible = every segment >= `ml.min_segment_share`; mean rank of silhouette,
   Davies-Bouldin and Calinski-Harabasz; the best whose bootstrap stability (ARI between refits) reaches
   `ml.selection.min_stability`.
4. Stable ids (`ml.matching`): the champion and the new model both label the fit sample; clusters are matched to
   the champion's segment ids by Hungarian assignment on the overlap; new and vanished segments are explicit. The
   transition matrix (each sampled customer's last assigned segment -> new segment) and the share of customers who
   switched segment are logged, with the two models' disagreement on the same rows. The served clusterer is a KMeans
   whose centre i is segment id i (`ml.evaluate.centroid_model`), so `predict` returns the stable ids.
5. MLflow: one parent run `train-<as_of_date>` in `ml.experiment_name` (lineage tags: as_of_date, rows, feature
   list, snapshot dates, dbt invocation id when available; the fit sample as a logged dataset input), a nested run
   per candidate with its params and metrics, plots (elbow + silhouette by k, PCA scatter, profile heatmap), the
   transition matrix, and the fitted Pipeline(preprocess, cluster) logged with a signature, an input example and
   explicit pip pins, registered as `ml.registered_model_name`. The model directory carries
   `extra_files/reference.json` (drift reference, segment mix, the segment profiles and population statistics
   used by `ml.explain`) and `extra_files/segment_names.json`.
6. Promotion: the new version takes the `champion` alias when there is no champion (whatever its quality: a
   deployment always gets segments; where it misses a bar, `ml.evaluate.weaknesses`, is tagged on the run and the
   version as `promotion_weaknesses` and returned as `weaknesses`), or when its silhouette is not worse than the
   champion's by more than `ml.promotion_silhouette_tolerance` AND its stability reaches
   `ml.selection.min_stability`; otherwise it takes `challenger` and the reason is tagged on the run and version.
   Both silhouettes are measured on today's fit sample in today's preprocessed space (the champion's segments of
   today's customers): the champion's own training silhouette describes data that may have drifted since, and a
   drift retrain compared against it could never win. Without a usable champion labelling (other features), the
   champion's recorded silhouette is the yardstick.
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
import mlflow.data
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ml import drift, evaluate, features, matching, naming, plots, tracking
from seg.config import Settings
from seg.warehouse import connect

log = logging.getLogger(__name__)

SIGNATURE_ROWS = 1000
INPUT_EXAMPLE_ROWS = 5


class UnsegmentableData(RuntimeError):
    """The feature table cannot be segmented at all; the message says what to change."""


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
    new_silhouette: float,
    champion: ModelVersion | None,
    champion_silhouette: float | None,
    tolerance: float,
    stability: float | None = None,
    min_stability: float | None = None,
    basis: str = "recorded",
) -> tuple[bool, str]:
    """(promote?, reason) for the rule in the module docstring: the first model is always promoted (a deployment
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


def _no_feature_message(dropped: dict[str, str]) -> str:
    reasons = "; ".join(f"{f}: {why}" for f, why in dropped.items())
    return (
        f"no feature of {features.FEATURE_TABLE} can separate customers ({reasons}): load a source that fills "
        "them (orders at least), or list other columns under ml.features"
    )


def _json_dump(obj: Any, path: Path) -> Path:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))
    return path


def _profile_stats(values, features_used: list[str]) -> dict[str, dict[str, float]]:
    """Population mean and std per feature on the profile scale (what `ml.explain` standardises customers with)."""
    out = {}
    for f in features_used:
        col = values[f].to_numpy(dtype="float64")
        finite = col[np.isfinite(col)]
        mean = float(finite.mean()) if finite.size else 0.0
        std = float(finite.std()) if finite.size else 0.0
        out[f] = {"mean": mean, "std": std if std > 0 else 1.0}
    return out


def _champion_labels(champion: tracking.LoadedModel | None, frame) -> np.ndarray | None:
    """The champion's segment ids for the fit sample (None without a usable champion)."""
    if champion is None:
        return None
    if any(f not in frame.columns for f in champion.features):
        return None
    return np.asarray(champion.pipeline.predict(frame[champion.features])).astype(np.int64)


def _previous_segments(con, frame) -> np.ndarray | None:
    """Each sampled person's last assigned segment id (-1 if none): the published marts.customer_segments, else
    ml_stage.customer_assignments; None when neither exists."""
    for schema, table in (("marts", "customer_segments"), ("ml_stage", "customer_assignments")):
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        ).fetchall()[0][0]
        if not exists:
            continue
        cur = con.cursor()
        try:
            cur.register("sample_ids", frame[["person_id"]].astype({"person_id": "string"}))
            prev = cur.execute(
                f"select s.person_id, coalesce(a.segment_id, -1) as segment_id from sample_ids s "
                f"left join {schema}.{table} a on a.person_id = s.person_id"
            ).df()
        finally:
            cur.close()
        by_person = dict(zip(prev["person_id"], prev["segment_id"], strict=True))
        return np.array([by_person.get(str(p), -1) for p in frame["person_id"]], dtype=np.int64)
    return None


def run(settings: Settings, as_of_date: date, *, lineage: dict[str, str] | None = None) -> dict[str, Any]:
    """Train, log, register and (maybe) promote a segmentation model for `as_of_date`.

    `lineage` adds tags to the parent run (e.g. {"airflow.run_id": ...}). Returns a JSON-serialisable dict:
    {run_id, model_version, k, family, metrics, promoted, promotion_reason, weaknesses [sentence, ...],
    selection_reason,
    segment_names {id: name}, matching {matched, new_segments, vanished_segments, switched_share} | None,
    features, dropped_features {feature: reason}, rows, sample_rows, as_of_date, timings {step: seconds}}.
    """
    cfg = settings["ml"]
    seed = int(cfg["random_state"])
    iso = as_of_date.isoformat()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    k_min = int(cfg["k_min"])
    prep = cfg.get("preprocessing", {})
    tracking.client(settings)
    champion = tracking.load_champion(settings)
    previous = None if champion is None else tracking.champion_version(settings)
    timings["load_champion_seconds"] = time.perf_counter() - t0

    t = time.perf_counter()
    with connect(settings, read_only=True) as con:
        total_rows = features.row_count(con)
        min_rows = k_min * int(cfg.get("min_rows_per_segment", 1))
        if total_rows < min_rows:
            raise UnsegmentableData(
                f"{features.FEATURE_TABLE} holds {total_rows} customers: at least {min_rows} (ml.k_min {k_min} x "
                f"ml.min_rows_per_segment {cfg.get('min_rows_per_segment', 1)}) are needed to form segments; "
                "load more customers' history, or lower ml.k_min"
            )
        selection = features.resolve_features(con, features.configured_features(settings))
        if not selection.used:
            raise UnsegmentableData(_no_feature_message(selection.dropped))
        read = list(selection.used) + [f for f in (champion.features if champion else []) if f not in selection.used]
        frame = features.sample_frame(con, read, int(cfg["fit_sample_size"]), seed)
        dropped = dict(selection.dropped)
        dropped.update(
            features.screen_features(
                frame,
                selection.used,
                float(prep.get("min_non_null_share", 0.0)),
                float(prep.get("max_mode_share", 1.0)),
            )
        )
        used = [f for f in selection.used if f not in dropped]
        if not used:
            raise UnsegmentableData(_no_feature_message(dropped))
        reference = drift.build_reference(con, used, int(settings["drift"]["psi_bins"]))
        snapshot_min, snapshot_max = features.snapshot_dates(con)
        previous_segments = _previous_segments(con, frame)
    timings["read_seconds"] = time.perf_counter() - t
    log_features = [f for f in cfg.get("log_features", []) if f in used]
    x_frame = frame[used]

    t = time.perf_counter()
    preprocess = features.build_preprocessor(used, log_features, prep.get("clip_z"))
    xt = np.ascontiguousarray(preprocess.fit_transform(x_frame), dtype=np.float64)
    distinct = np.unique(xt, axis=0).shape[0]
    if distinct < k_min:
        raise UnsegmentableData(
            f"the {len(frame)} sampled customers have only {distinct} distinct feature vector(s) over {used}: "
            f"{k_min} segments (ml.k_min) cannot be told apart; check that {features.FEATURE_TABLE} is built from "
            "the customers' real history (every customer looks the same), or add features to ml.features"
        )
    ks = evaluate.candidate_ks(cfg, len(frame))
    experiment_id = tracking.experiment_id(settings)
    timings["preprocess_seconds"] = time.perf_counter() - t

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
    if previous is not None:
        tags["previous_champion_version"] = str(previous.version)
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
                "families": ",".join(f for f in evaluate.FAMILIES if cfg["candidates"][f].get("enabled", True)),
                "stability_bootstraps": cfg["selection"]["stability_bootstraps"],
                "min_stability": cfg["selection"]["min_stability"],
                "n_features": len(used),
                "log_features": ",".join(log_features),
                "psi_bins": settings["drift"]["psi_bins"],
                "clip_z": prep.get("clip_z"),
            }
        )
        mlflow.log_metrics({"input_rows": float(total_rows), "fit_sample_rows": float(len(frame))})
        source = CodeDatasetSource(
            {"table": features.FEATURE_TABLE, "warehouse": str(settings.paths.warehouse), "as_of_date": iso}
        )
        dataset = mlflow.data.from_pandas(x_frame, source=source, name=f"{features.FEATURE_TABLE}@{iso}")
        mlflow.log_input(dataset, context="training", tags={"as_of_date": iso, "rows": str(total_rows)})

        with threadpool_limits(limits=cfg.get("threads")):
            t = time.perf_counter()
            candidates = evaluate.fit_candidates(xt, ks, cfg, features.value_columns(preprocess))
            timings["fit_candidates_seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            chosen, selection_reason = evaluate.select(candidates, cfg, lambda c: evaluate.stability(c, xt, cfg))
            timings["selection_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        for c in candidates:
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=c.name,
                nested=True,
                tags={"as_of_date": iso, "k": str(c.k), "family": c.family, "chosen": str(c is chosen)},
            ):
                mlflow.log_params({"family": c.family, "k": c.k, "random_state": seed, **c.params})
                mlflow.log_metrics({m: v for m, v in c.metrics.items() if np.isfinite(v)})
        for c in candidates:
            if c.family == chosen.family:
                mlflow.log_metrics({f"{m}_by_k": v for m, v in c.metrics.items() if np.isfinite(v)}, step=c.k)
        timings["child_runs_seconds"] = time.perf_counter() - t

        # Stable segment ids.
        old_labels = _champion_labels(champion, frame)
        champion_today = None
        if old_labels is not None:
            _, dense = np.unique(old_labels, return_inverse=True)
            champion_today = evaluate.score(xt, dense, int(dense.max()) + 1, cfg)["silhouette"]
            mlflow.log_metric("champion_silhouette_today", champion_today)
        if old_labels is None:
            ids = matching.ids_by_size(chosen.labels, chosen.k)
            matched = None
        else:
            matched = matching.match(old_labels, chosen.labels, chosen.k, float(cfg["matching"]["min_overlap"]))
            ids = matched.ids
        centers_by_id = {ids[c]: chosen.centers[c] for c in range(chosen.k)}
        pipeline = Pipeline(
            [("preprocess", preprocess), ("cluster", evaluate.centroid_model(centers_by_id, xt.shape[1]))]
        )
        labels = np.array([ids[int(c)] for c in chosen.labels], dtype=np.int64)
        seg_ids = sorted(centers_by_id)
        counts = {seg: int((labels == seg).sum()) for seg in seg_ids}
        shares = {seg: counts[seg] / len(labels) for seg in seg_ids}
        values = features.profile_space(frame, used, log_features)
        profile = naming.standardized_profile(values, labels)
        segments = naming.name_segments(profile, int(cfg["naming_top_n"]), float(cfg["naming_min_abs_z"]), shares)
        names = {seg: info["name"] for seg, info in segments.items()}
        reference.update(
            {
                "as_of_date": iso,
                "k": chosen.k,
                "family": chosen.family,
                "segment_ids": seg_ids,
                "log_features": log_features,
                "segment_proportions": {str(seg): share for seg, share in shares.items()},
                "segment_proportions_source": f"fit sample ({len(frame)} rows)",
                "profile": {
                    "population": _profile_stats(values, used),
                    "segments": {str(seg): {f: float(profile.loc[seg, f]) for f in used} for seg in profile.index},
                },
            }
        )
        chosen_metrics = {m: v for m, v in chosen.metrics.items() if np.isfinite(v)}
        mlflow.log_metrics(chosen_metrics)
        mlflow.set_tags({"k": str(chosen.k), "family": chosen.family, "selection_reason": selection_reason})
        moved = None
        if matched is not None and previous_segments is not None and (previous_segments >= 0).any():
            known = previous_segments >= 0
            moved = matching.transitions(previous_segments[known], labels[known])
        matching_summary = None
        if matched is not None:
            # switched_share: against the last published assignment when there is one, else the champion model's
            transitions = moved[0] if moved is not None else matched.transitions
            matching_summary = {
                "matched": {str(k): v for k, v in matched.matched.items()},
                "new_segments": matched.new_segments,
                "vanished_segments": matched.vanished_segments,
                "switched_share": moved[1] if moved is not None else matched.switched_share,
                "switched_share_basis": "previous assignment" if moved is not None else "champion model",
                "model_disagreement_share": matched.switched_share,
            }
            mlflow.log_metrics(
                {
                    "switched_share": matching_summary["switched_share"],
                    "model_disagreement_share": matched.switched_share,
                    "n_new_segments": float(len(matched.new_segments)),
                    "n_vanished_segments": float(len(matched.vanished_segments)),
                }
            )
            mlflow.set_tags(
                {
                    "matching.matched": json.dumps(matching_summary["matched"]),
                    "matching.new_segments": json.dumps(matched.new_segments),
                    "matching.vanished_segments": json.dumps(matched.vanished_segments),
                }
            )

        t = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="seg-train-") as tmp:
            out = Path(tmp)
            (out / "plots").mkdir()
            (out / "segmentation").mkdir()
            by_k = {c.k: c.metrics for c in candidates if c.family == chosen.family}
            plots.save_png(plots.model_selection(by_k, chosen.k), out / "plots" / "model_selection.png")
            plots.save_png(
                plots.pca_scatter(xt, labels, names, int(cfg["plot_sample_size"]), seed),
                out / "plots" / "pca_segments.png",
            )
            plots.save_png(plots.profile_heatmap(profile, names), out / "plots" / "segment_profiles.png")
            segment_file = _json_dump(segments, out / "segmentation" / tracking.SEGMENT_NAMES_FILE)
            reference_file = _json_dump(reference, out / "segmentation" / tracking.REFERENCE_FILE)
            _json_dump(
                [{"candidate": c.name, "family": c.family, "k": c.k, **c.metrics} for c in candidates]
                + [{"selected": chosen.name, "reason": selection_reason}],
                out / "segmentation" / "candidates.json",
            )
            profile.round(4).to_csv(out / "segmentation" / "segment_profiles.csv", index_label="segment_id")
            if matching_summary is not None:
                transitions.to_csv(out / "segmentation" / "transition_matrix.csv")
                matched.transitions.to_csv(out / "segmentation" / "model_agreement_matrix.csv")
                _json_dump(
                    {"previous_champion_version": str(previous.version) if previous else None, **matching_summary},
                    out / "segmentation" / "matching.json",
                )
            mlflow.log_artifacts(str(out), artifact_path=None)
            timings["artifacts_seconds"] = time.perf_counter() - t

            t = time.perf_counter()
            head = x_frame.head(SIGNATURE_ROWS)
            signature = infer_signature(head, pipeline.predict(head))
            with tracking.quiet_airflow_deprecations():
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
        if champion_today is not None:
            champion_sil, basis = champion_today, "on today's fit sample"
        else:
            champion_sil = None if previous is None else _champion_silhouette(settings, previous)
            basis = "recorded at its training"
        promoted, promotion_reason = promotion_decision(
            chosen.metrics["silhouette"],
            previous,
            champion_sil,
            float(cfg["promotion_silhouette_tolerance"]),
            chosen.metrics.get("stability"),
            float(cfg["selection"]["min_stability"]),
            basis,
        )
        weak = evaluate.weaknesses(chosen.metrics, cfg)
        weak_text = "; ".join(weak) or "none"
        if promoted and previous is None and weak:
            promotion_reason = f"{promotion_reason}: promoted despite its weaknesses ({weak_text})"
        alias = tracking.CHAMPION if promoted else tracking.CHALLENGER
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
        timings["register_seconds"] = time.perf_counter() - t
        timings["total_seconds"] = time.perf_counter() - t0
        mlflow.log_metrics({f"timing_{k}": v for k, v in timings.items()})
        run_id = parent.info.run_id

    log.info("trained v%s (%s) for %s: %s; %s", version, chosen.name, iso, selection_reason, promotion_reason)
    for w in weak:
        log.warning("v%s (%s) is weak: %s", version, chosen.name, w)
    return {
        "run_id": run_id,
        "model_version": version,
        "k": chosen.k,
        "family": chosen.family,
        "metrics": chosen_metrics,
        "promoted": promoted,
        "promotion_reason": promotion_reason,
        "weaknesses": weak,
        "selection_reason": selection_reason,
        "segment_names": names,
        "matching": None
        if matching_summary is None
        else {
            **matching_summary,
            "transitions": {
                str(r): {str(c): int(v) for c, v in row.items()} for r, row in transitions.iterrows()
            },
        },
        "features": used,
        "dropped_features": dropped,
        "rows": total_rows,
        "sample_rows": len(frame),
        "as_of_date": iso,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
