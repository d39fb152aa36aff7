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
   families of `ml.candidates` (MiniBatchKMeans and GaussianMixture per k, Ward on a sub-sample cut at every k,
   HDBSCAN with noise -> nearest cluster, the deterministic RFM-score baseline), scored by `ml.selection`.
3. Selection (`ml.selection.select`): eligible = every segment >= `ml.min_segment_share`; the plain baseline
   (MiniBatchKMeans, k by silhouette) sets a floor on k; above it, mean rank of silhouette, Davies-Bouldin and
   Calinski-Harabasz; the best whose bootstrap stability (ARI between refits) reaches `ml.selection.min_stability`.
4. Stable ids (`ml.matching`): the champion and the new model both label the fit sample; clusters are matched to
   the champion's segment ids by Hungarian assignment on the overlap; new and vanished segments are explicit. The
   transition matrix (each sampled customer's last assigned segment -> new segment) and the share of customers who
   switched segment are logged, with the two models' disagreement on the same rows. The served clusterer is a KMeans
   whose centre i is segment id i (`ml.candidates.centroid_model`), so `predict` returns the stable ids.
5. MLflow: one parent run `train-<as_of_date>` in `ml.experiment_name` (lineage tags: as_of_date, rows, feature
   list, snapshot dates, dbt invocation id when available; the fit sample as a logged dataset input), a nested run
   per candidate with its params and metrics, plots (elbow + silhouette by k, PCA scatter, profile heatmap), the
   transition matrix, and the fitted Pipeline(preprocess, cluster) logged with a signature, an input example and
   explicit pip pins, registered as `ml.registered_model_name`. The model directory carries
   `extra_files/reference.json` (drift reference, segment mix, the segment profiles and population statistics
   used by `ml.explain`) and `extra_files/segment_names.json`.
6. Promotion (`ml.promotion`): the first version is always `champion` (its weaknesses tagged); a later one only
   when it is stable and its silhouette is not worse than the champion's on today's fit sample beyond
   `ml.promotion_silhouette_tolerance`, else `challenger`.

`run` is that list of steps, each a function below with its inputs and outputs: `_read_sample` (1),
`_preprocess`, `_fit_and_select` (2, 3), `_segmentation` (4), `_log_*` / `_write_artifacts` (5), `ml.promotion.promote` (6).
"""

from __future__ import annotations

import calendar
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import numpy as np
import pandas as pd
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from ml import candidates, features, matching, naming, plots, promotion, selection, tracking
from ml.candidates import Candidate
from ml.drift.reference import build_reference
from seg.core.config import MlSettings, Settings
from seg.core.warehouse import column_exists, connect

log = logging.getLogger(__name__)

SIGNATURE_ROWS = 1000
INPUT_EXAMPLE_ROWS = 5


class UnsegmentableData(RuntimeError):
    """The feature table cannot be segmented at all; the message says what to change."""


def is_training_day(settings: Settings, as_of_date: date) -> tuple[bool, str]:
    """Whether the lens's schedule trains on `as_of_date`: its weekday is in `ml.train_weekdays` (0 = Monday) or
    its day of the month in `ml.train_monthdays` (a day past the month's end means the month's last day)."""
    cfg = settings.ml
    weekdays = [int(d) for d in cfg.train_weekdays]
    monthdays = [int(d) for d in cfg.train_monthdays]
    last = calendar.monthrange(as_of_date.year, as_of_date.month)[1]
    day = as_of_date.strftime("%A")
    schedule = f"ml.train_weekdays={weekdays}, ml.train_monthdays={monthdays}"
    if as_of_date.weekday() in weekdays:
        return True, f"{as_of_date.isoformat()} is a {day}, a training day ({schedule})"
    if as_of_date.day in {min(d, last) for d in monthdays}:
        return True, f"{as_of_date.isoformat()} is day {as_of_date.day} of its month, a training day ({schedule})"
    return False, f"{as_of_date.isoformat()} ({day}) is not a training day ({schedule})"


def should_train(settings: Settings, as_of_date: date, *, force: bool = False) -> tuple[bool, str]:
    """Whether to train for `as_of_date`, and why: forced (argument or `ml.force_train`), no champion yet, or the
    date is a training day of the lens's schedule (`is_training_day`)."""
    cfg = settings.ml
    if force or cfg.force_train:
        return True, "forced"
    champion = tracking.champion_version(settings)
    if champion is None:
        return True, "no champion model yet"
    scheduled, reason = is_training_day(settings, as_of_date)
    if scheduled:
        return True, reason
    return False, f"champion v{champion.version} exists and {reason}"


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


def _no_feature_message(dropped: dict[str, str], table: str) -> str:
    reasons = "; ".join(f"{f}: {why}" for f, why in dropped.items())
    return (
        f"no feature of {table} can separate customers ({reasons}): load a source that fills "
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


def _previous_segments(con, frame, lens: str) -> np.ndarray | None:
    """Each sampled person's last assigned segment id of lens `lens` (-1 if none): the published
    marts.customer_segments, else ml_stage.customer_assignments; None when neither exists."""
    for schema, table in (("marts", "customer_segments"), ("ml_stage", "customer_assignments")):
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        ).fetchall()[0][0]
        if not exists:
            continue
        if not column_exists(con, schema, table, "segmentation"):  # written before lenses: it holds the first lens's segments, and none of another's
            continue
        cur = con.cursor()
        try:
            cur.register("sample_ids", frame[["person_id"]].astype({"person_id": "string"}))
            prev = cur.execute(
                f"select s.person_id, coalesce(a.segment_id, -1) as segment_id from sample_ids s "
                f"left join {schema}.{table} a on a.person_id = s.person_id and a.segmentation = ?", [lens]
            ).df()
        finally:
            cur.close()
        by_person = dict(zip(prev["person_id"], prev["segment_id"], strict=True))
        return np.array([by_person.get(str(p), -1) for p in frame["person_id"]], dtype=np.int64)
    return None


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Wall seconds of the block as timings[key] (none on an exception: the run fails anyway)."""
    start = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - start


@dataclass
class _Sample:
    """What training read from the warehouse (step 1): the fit sample and the features kept."""

    total_rows: int
    frame: pd.DataFrame  # person_id, the used features and the champion's (to label the sample with it)
    used: list[str]
    dropped: dict[str, str]  # feature -> why it is not used
    log_features: list[str]
    reference: dict[str, Any]  # the drift reference; the segments are added once the model is chosen
    snapshot_min: str | None
    snapshot_max: str | None
    previous_segments: np.ndarray | None  # each sampled person's last assigned segment id (-1: none)

    @property
    def x_frame(self) -> pd.DataFrame:
        return self.frame[self.used]


@dataclass
class _Segmentation:
    """The chosen candidate with stable segment ids (step 4): the served pipeline and its segments of the sample."""

    pipeline: Pipeline
    labels: np.ndarray  # segment id of each fit-sample row
    seg_ids: list[int]
    shares: dict[int, float]
    values: pd.DataFrame  # the fit sample on the profile scale
    profile: pd.DataFrame  # standardised mean per segment and feature
    segments: dict  # segment_names.json: {id: {name, ...}}
    names: dict[int, str]
    matched: matching.Matching | None  # None without a champion to match
    champion_today: float | None  # the champion's silhouette on today's fit sample


def _read_sample(settings: Settings, champion: tracking.LoadedModel | None) -> _Sample:
    """Step 1 on a read-only connection: features kept, fit sample, drift reference, previous segments."""
    cfg = settings.ml
    k_min = int(cfg.k_min)
    prep = cfg.preprocessing
    table = features.lens_table(settings)
    with connect(settings, read_only=True) as con:
        total_rows = features.row_count(con, table)
        min_rows = k_min * int(cfg.min_rows_per_segment)
        if total_rows < min_rows:
            raise UnsegmentableData(
                f"{table} holds {total_rows} customers: at least {min_rows} (ml.k_min {k_min} x "
                f"ml.min_rows_per_segment {cfg.min_rows_per_segment}) are needed to form segments; "
                "load more customers' history, or lower ml.k_min"
            )
        resolved = features.resolve_features(con, features.configured_features(settings), table)
        if not resolved.used:
            raise UnsegmentableData(_no_feature_message(resolved.dropped, table))
        read = list(resolved.used) + [f for f in (champion.features if champion else []) if f not in resolved.used]
        frame = features.sample_frame(con, read, int(cfg.fit_sample_size), int(cfg.random_state), table)
        dropped = dict(resolved.dropped)
        dropped.update(
            features.screen_features(
                frame,
                resolved.used,
                float(prep.min_non_null_share),
                float(prep.max_mode_share),
            )
        )
        used = [f for f in resolved.used if f not in dropped]
        if not used:
            raise UnsegmentableData(_no_feature_message(dropped, table))
        reference = build_reference(con, used, int(settings.drift.psi_bins),
                                    flow_window_days=int(settings.drift.flow_window_days), table=table)
        snapshot_min, snapshot_max = features.snapshot_dates(con, table)
        previous_segments = _previous_segments(con, frame, settings.lens)
    return _Sample(
        total_rows=total_rows,
        frame=frame,
        used=used,
        dropped=dropped,
        log_features=[f for f in cfg.log_features if f in used],
        reference=reference,
        snapshot_min=snapshot_min,
        snapshot_max=snapshot_max,
        previous_segments=previous_segments,
    )


def _preprocess(cfg: MlSettings, sample: _Sample) -> tuple[ColumnTransformer, np.ndarray]:
    """The fitted preprocessing and the preprocessed fit sample; raises UnsegmentableData when fewer than k_min
    customers can be told apart."""
    k_min = int(cfg.k_min)
    preprocess = features.build_preprocessor(sample.used, sample.log_features, cfg.preprocessing.clip_z)
    xt = np.ascontiguousarray(preprocess.fit_transform(sample.x_frame), dtype=np.float64)
    distinct = np.unique(xt, axis=0).shape[0]
    if distinct < k_min:
        raise UnsegmentableData(
            f"the {len(sample.frame)} sampled customers have only {distinct} distinct feature vector(s) over "
            f"{sample.used}: {k_min} segments (ml.k_min) cannot be told apart; check that the lens's "
            "feature mart is built from the customers' real history (every customer looks the same), or add features to ml.features"
        )
    return preprocess, xt


def _run_tags(
    settings: Settings, iso: str, sample: _Sample, previous: ModelVersion | None, lineage: dict[str, str] | None
) -> dict[str, str]:
    """The parent run's lineage tags."""
    tags = {
        "run_type": "train",
        "as_of_date": iso,
        "rows": str(sample.total_rows),
        "sample_rows": str(len(sample.frame)),
        "features": ",".join(sample.used),
        "dropped_features": json.dumps(sample.dropped, sort_keys=True),
        "segmentation": settings.lens,
        "data.table": features.lens_table(settings),
        "data.warehouse": str(settings.paths.warehouse),
        "data.as_of_date_min": str(sample.snapshot_min),
        "data.as_of_date_max": str(sample.snapshot_max),
    }
    invocation = _dbt_invocation_id(settings)
    if invocation:
        tags["dbt.invocation_id"] = invocation
    if previous is not None:
        tags["previous_champion_version"] = str(previous.version)
    tags.update({k: str(v) for k, v in (lineage or {}).items()})
    return tags


def _log_inputs(settings: Settings, iso: str, sample: _Sample) -> None:
    """The parent run's params, input size metrics and the fit sample as its training dataset."""
    cfg = settings.ml
    mlflow.log_params(
        {
            "k_min": cfg.k_min,
            "k_max": cfg.k_max,
            "fit_sample_size": cfg.fit_sample_size,
            "silhouette_sample_size": cfg.silhouette_sample_size,
            "min_segment_share": cfg.min_segment_share,
            "random_state": int(cfg.random_state),
            "families": ",".join(f for f in candidates.FAMILIES if cfg.candidates[f].get("enabled", True)),
            "stability_bootstraps": cfg.selection.stability_bootstraps,
            "min_stability": cfg.selection.min_stability,
            "n_features": len(sample.used),
            "log_features": ",".join(sample.log_features),
            "psi_bins": settings.drift.psi_bins,
            "clip_z": cfg.preprocessing.clip_z,
        }
    )
    mlflow.log_metrics({"input_rows": float(sample.total_rows), "fit_sample_rows": float(len(sample.frame))})
    table = features.lens_table(settings)
    source = CodeDatasetSource({"table": table, "warehouse": str(settings.paths.warehouse), "as_of_date": iso})
    dataset = mlflow.data.from_pandas(sample.x_frame, source=source, name=f"{table}@{iso}")
    mlflow.log_input(dataset, context="training", tags={"as_of_date": iso, "rows": str(sample.total_rows)})


def _fit_and_select(
    cfg: MlSettings, xt: np.ndarray, ks: list[int], preprocess: ColumnTransformer, timings: dict[str, float]
) -> tuple[list[Candidate], Candidate, str]:
    """Steps 2 and 3: every candidate fitted and scored, the chosen one and why."""
    with threadpool_limits(limits=cfg.threads):
        with _timed(timings, "fit_candidates_seconds"):
            fitted = candidates.fit_candidates(xt, ks, cfg, features.value_columns(preprocess))
            selection.score_candidates(fitted, xt, cfg)
        with _timed(timings, "selection_seconds"):
            chosen, reason = selection.select(fitted, cfg, lambda c: selection.stability(c, xt, cfg))
    return fitted, chosen, reason


def _log_candidates(experiment_id: str, iso: str, seed: int, fitted: list[Candidate], chosen: Candidate) -> None:
    """A nested run per candidate; the chosen family's metrics by k on the parent run (step = k)."""
    for c in fitted:
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=c.name,
            nested=True,
            tags={"as_of_date": iso, "k": str(c.k), "family": c.family, "chosen": str(c is chosen)},
        ):
            mlflow.log_params({"family": c.family, "k": c.k, "random_state": seed, **c.params})
            mlflow.log_metrics({m: v for m, v in c.metrics.items() if np.isfinite(v)})
    for c in fitted:
        if c.family == chosen.family:
            mlflow.log_metrics({f"{m}_by_k": v for m, v in c.metrics.items() if np.isfinite(v)}, step=c.k)


def _segmentation(
    cfg: MlSettings,
    champion: tracking.LoadedModel | None,
    sample: _Sample,
    preprocess: ColumnTransformer,
    xt: np.ndarray,
    chosen: Candidate,
) -> _Segmentation:
    """Step 4: the champion's ids kept where its segments live on, the served pipeline, the segments' names."""
    old_labels = _champion_labels(champion, sample.frame)
    champion_today = None
    if old_labels is not None:
        _, dense = np.unique(old_labels, return_inverse=True)
        champion_today = selection.score(xt, dense, int(dense.max()) + 1, cfg)["silhouette"]
        mlflow.log_metric("champion_silhouette_today", champion_today)
    if old_labels is None:
        ids = matching.ids_by_size(chosen.labels, chosen.k)
        matched = None
    else:
        matched = matching.match(old_labels, chosen.labels, chosen.k, float(cfg.matching.min_overlap))
        ids = matched.ids
    centers_by_id = {ids[c]: chosen.centers[c] for c in range(chosen.k)}
    pipeline = Pipeline([("preprocess", preprocess), ("cluster", candidates.centroid_model(centers_by_id, xt.shape[1]))])
    labels = np.array([ids[int(c)] for c in chosen.labels], dtype=np.int64)
    seg_ids = sorted(centers_by_id)
    counts = {seg: int((labels == seg).sum()) for seg in seg_ids}
    shares = {seg: counts[seg] / len(labels) for seg in seg_ids}
    values = features.profile_space(sample.frame, sample.used, sample.log_features)
    profile = naming.standardized_profile(values, labels)
    segments = naming.name_segments(profile, int(cfg.naming_top_n), float(cfg.naming_min_abs_z), shares)
    names = {seg: info["name"] for seg, info in segments.items()}
    return _Segmentation(pipeline, labels, seg_ids, shares, values, profile, segments, names, matched, champion_today)


def _model_reference(sample: _Sample, chosen: Candidate, seg: _Segmentation, iso: str) -> dict[str, Any]:
    """reference.json: the drift reference plus the segment mix of the fit sample (drift) and the segment profiles
    with the population statistics (`ml.explain`)."""
    sample.reference.update(
        {
            "as_of_date": iso,
            "k": chosen.k,
            "family": chosen.family,
            "segment_ids": seg.seg_ids,
            "log_features": sample.log_features,
            "segment_proportions": {str(s): share for s, share in seg.shares.items()},
            "segment_proportions_source": f"fit sample ({len(sample.frame)} rows)",
            "profile": {
                "population": _profile_stats(seg.values, sample.used),
                "segments": {str(s): {f: float(seg.profile.loc[s, f]) for f in sample.used} for s in seg.profile.index},
            },
        }
    )
    return sample.reference


def _log_choice(chosen: Candidate, selection_reason: str) -> dict[str, float]:
    """The chosen candidate's finite metrics and its k, family and selection reason on the parent run."""
    chosen_metrics = {m: v for m, v in chosen.metrics.items() if np.isfinite(v)}
    mlflow.log_metrics(chosen_metrics)
    mlflow.set_tags({"k": str(chosen.k), "family": chosen.family, "selection_reason": selection_reason})
    return chosen_metrics


def _log_matching(
    matched: matching.Matching | None, previous_segments: np.ndarray | None, labels: np.ndarray
) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """(transition matrix, matching summary) against the champion, logged as metrics and tags; (None, None)
    without a champion."""
    if matched is None:
        return None, None
    moved = None
    if previous_segments is not None and (previous_segments >= 0).any():
        known = previous_segments >= 0
        moved = matching.transitions(previous_segments[known], labels[known])
    # switched_share: against the last published assignment when there is one, else the champion model's
    transitions = moved[0] if moved is not None else matched.transitions
    summary = {
        "matched": {str(k): v for k, v in matched.matched.items()},
        "new_segments": matched.new_segments,
        "vanished_segments": matched.vanished_segments,
        "switched_share": moved[1] if moved is not None else matched.switched_share,
        "switched_share_basis": "previous assignment" if moved is not None else "champion model",
        "model_disagreement_share": matched.switched_share,
    }
    mlflow.log_metrics(
        {
            "switched_share": summary["switched_share"],
            "model_disagreement_share": matched.switched_share,
            "n_new_segments": float(len(matched.new_segments)),
            "n_vanished_segments": float(len(matched.vanished_segments)),
        }
    )
    mlflow.set_tags(
        {
            "matching.matched": json.dumps(summary["matched"]),
            "matching.new_segments": json.dumps(matched.new_segments),
            "matching.vanished_segments": json.dumps(matched.vanished_segments),
        }
    )
    return transitions, summary


def _write_artifacts(
    out: Path,
    cfg: MlSettings,
    fitted: list[Candidate],
    chosen: Candidate,
    selection_reason: str,
    xt: np.ndarray,
    seg: _Segmentation,
    reference: dict[str, Any],
    transitions: pd.DataFrame | None,
    matching_summary: dict[str, Any] | None,
    previous: ModelVersion | None,
) -> list[str]:
    """Plots and segmentation files of the parent run under `out`; returns the model's extra files
    (reference.json, segment_names.json)."""
    (out / "plots").mkdir()
    (out / "segmentation").mkdir()
    by_k = {c.k: c.metrics for c in fitted if c.family == chosen.family}
    plots.save_png(plots.model_selection(by_k, chosen.k), out / "plots" / "model_selection.png")
    plots.save_png(
        plots.pca_scatter(xt, seg.labels, seg.names, int(cfg.plot_sample_size), int(cfg.random_state)),
        out / "plots" / "pca_segments.png",
    )
    plots.save_png(plots.profile_heatmap(seg.profile, seg.names), out / "plots" / "segment_profiles.png")
    segment_file = _json_dump(seg.segments, out / "segmentation" / tracking.SEGMENT_NAMES_FILE)
    reference_file = _json_dump(reference, out / "segmentation" / tracking.REFERENCE_FILE)
    _json_dump(
        [{"candidate": c.name, "family": c.family, "k": c.k, **c.metrics} for c in fitted]
        + [{"selected": chosen.name, "reason": selection_reason}],
        out / "segmentation" / "candidates.json",
    )
    seg.profile.round(4).to_csv(out / "segmentation" / "segment_profiles.csv", index_label="segment_id")
    if matching_summary is not None:
        transitions.to_csv(out / "segmentation" / "transition_matrix.csv")
        seg.matched.transitions.to_csv(out / "segmentation" / "model_agreement_matrix.csv")
        _json_dump(
            {"previous_champion_version": str(previous.version) if previous else None, **matching_summary},
            out / "segmentation" / "matching.json",
        )
    return [str(reference_file), str(segment_file)]


def _log_model(cfg: MlSettings, pipeline: Pipeline, x_frame: pd.DataFrame, extra_files: list[str]):
    """Log the pipeline (skops, signature, input example, pinned requirements) and register it; the ModelInfo."""
    head = x_frame.head(SIGNATURE_ROWS)
    signature = infer_signature(head, pipeline.predict(head))
    with tracking.quiet_airflow_deprecations():
        return mlflow.sklearn.log_model(
            pipeline,
            name=tracking.MODEL_NAME_IN_RUN,
            signature=signature,
            input_example=x_frame.head(INPUT_EXAMPLE_ROWS),
            pip_requirements=tracking.pip_requirements(),
            registered_model_name=cfg.registered_model_name,
            serialization_format="skops",
            skops_trusted_types=list(features.SKOPS_TRUSTED_TYPES),
            extra_files=extra_files,
        )


def run(
    settings: Settings, as_of_date: date, *, lineage: dict[str, str] | None = None, defer_champion: bool = False
) -> dict[str, Any]:
    """Train, log, register and (maybe) promote a segmentation model for `as_of_date`.

    `lineage` adds tags to the parent run (e.g. {"airflow.run_id": ...}). `defer_champion`: a version to promote
    does not take the `champion` alias yet (the daily run moves it after the segments gate, ml.promotion). Returns a JSON-serialisable dict:
    {run_id, model_version, k, family, metrics, promoted, promotion_reason, weaknesses [sentence, ...],
    selection_reason,
    segment_names {id: name}, matching {matched, new_segments, vanished_segments, switched_share} | None,
    features, dropped_features {feature: reason}, rows, sample_rows, as_of_date, timings {step: seconds}}.
    """
    cfg = settings.ml
    iso = as_of_date.isoformat()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    tracking.client(settings)
    champion = tracking.load_champion(settings)
    previous = None if champion is None else tracking.champion_version(settings)
    timings["load_champion_seconds"] = time.perf_counter() - t0

    with _timed(timings, "read_seconds"):
        sample = _read_sample(settings, champion)
    with _timed(timings, "preprocess_seconds"):
        preprocess, xt = _preprocess(cfg, sample)
        ks = candidates.candidate_ks(cfg, len(sample.frame))
        experiment_id = tracking.experiment_id(settings)

    tags = _run_tags(settings, iso, sample, previous, lineage)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{iso}", tags=tags) as parent:
        _log_inputs(settings, iso, sample)
        fitted, chosen, selection_reason = _fit_and_select(cfg, xt, ks, preprocess, timings)
        with _timed(timings, "child_runs_seconds"):
            _log_candidates(experiment_id, iso, int(cfg.random_state), fitted, chosen)
        seg = _segmentation(cfg, champion, sample, preprocess, xt, chosen)
        reference = _model_reference(sample, chosen, seg, iso)
        chosen_metrics = _log_choice(chosen, selection_reason)
        transitions, matching_summary = _log_matching(seg.matched, sample.previous_segments, seg.labels)
        with tempfile.TemporaryDirectory(prefix="seg-train-") as tmp:
            with _timed(timings, "artifacts_seconds"):
                extra_files = _write_artifacts(
                    Path(tmp), cfg, fitted, chosen, selection_reason, xt, seg, reference, transitions,
                    matching_summary, previous,
                )
                mlflow.log_artifacts(tmp, artifact_path=None)
            with _timed(timings, "log_model_seconds"):
                info = _log_model(cfg, seg.pipeline, sample.x_frame, extra_files)
        with _timed(timings, "register_seconds"):
            version = str(info.registered_model_version)
            promoted, promotion_reason, weak = promotion.promote(
                settings, iso, version, chosen, sample.used, previous, seg.champion_today, defer=defer_champion
            )
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
        "segment_names": seg.names,
        "matching": None
        if matching_summary is None
        else {
            **matching_summary,
            "transitions": {
                str(r): {str(c): int(v) for c, v in row.items()} for r, row in transitions.iterrows()
            },
        },
        "features": sample.used,
        "dropped_features": sample.dropped,
        "rows": sample.total_rows,
        "sample_rows": len(sample.frame),
        "as_of_date": iso,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
