"""Online updates between refits: the champion's centroids follow the day's data (issue #15, the behaviour lens).

On a day the lens does not train, `update(settings, as_of_date, model)` moves each segment's centre a step towards
the mean of the rows the champion assigns to it today, in the model's preprocessed space:

    c_i(D) = c_i(D-1) + learning_rate * (mean of today's rows nearest c_i(D-1) - c_i(D-1))

(one mini-batch k-means step with a fixed rate, as `MiniBatchKMeans.partial_fit` does with its per-centre counts;
the served model of every family is a centroid model, ml.candidates.centroid_model, so the same step serves all).
A segment with fewer than `min_rows` rows today keeps its centre. Ids and names do not change: centre i stays
segment i. The step is bounded by the drift policy: when a centre would move more than `max_move` (Euclidean, in
standard deviations of the training data), no centre moves and the day's row says why; the next drift report of
the lens reads it and decides `retrain` (ml.drift.monitor).

State is one table, written here only (seg/core/catalog.py):

    ml_stage.online_centroids  one row per lens, as-of date and segment: the centre served that day (`centre`,
                               double[]), the rows it had, how far it moved, whether the day's step was applied

The centres of date D are derived from the last row before D of the same model version (or the model's own), so a
rerun of D recomputes the same centres and replaces D's rows; a new version starts from its own centres.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml import features, tracking
from seg.core.config import Settings
from seg.core.warehouse import connect, table_exists

log = logging.getLogger(__name__)

TABLE = "ml_stage.online_centroids"
COLUMNS_DDL = ("segmentation varchar, as_of_date date, model_version varchar, segment_id integer, centre double[], "
               "rows bigint, move double, applied boolean, reason varchar")


@dataclass(frozen=True)
class OnlineUpdate:
    """The day's centres (segment id -> centre) and what the step did."""

    as_of_date: date
    model_version: str
    centres: dict[int, np.ndarray]
    applied: bool
    reason: str
    max_move: float
    moves: dict[int, float]
    rows: dict[int, int]

    def summary(self) -> dict[str, Any]:
        return {"as_of_date": self.as_of_date.isoformat(), "model_version": self.model_version,
                "applied": self.applied, "reason": self.reason, "max_move": round(self.max_move, 4),
                "moves": {str(s): round(m, 4) for s, m in sorted(self.moves.items())},
                "rows": {str(s): n for s, n in sorted(self.rows.items())}}


def model_centres(model: tracking.LoadedModel) -> dict[int, np.ndarray]:
    """The model's own centres by segment id (placeholders of vanished ids left out)."""
    centers = np.asarray(model.pipeline[-1].cluster_centers_, dtype=np.float64)
    return {int(s): centers[int(s)].copy() for s in model.segment_names}


def _last_day_before(settings: Settings, as_of_date: date, columns: str, version: str | None = None) -> list[tuple]:
    """`columns` of the lens's rows on its last recorded day before `as_of_date` (of model `version` if given)."""
    scope = "segmentation = ?" + (" and model_version = ?" if version is not None else "")
    params = [settings.lens] + ([version] if version is not None else [])
    with connect(settings, read_only=True) as con:
        if not table_exists(con, "ml_stage", "online_centroids"):
            return []
        return con.execute(f"select {columns} from {TABLE} where {scope} and as_of_date = (select max(as_of_date) "
                           f"from {TABLE} where {scope} and as_of_date < ?)", [*params, *params, as_of_date]).fetchall()


def served_centres(settings: Settings, as_of_date: date, model: tracking.LoadedModel) -> dict[int, np.ndarray]:
    """The centres the lens served last before `as_of_date` with this model version (else the model's own)."""
    centres = model_centres(model)
    for seg, centre in _last_day_before(settings, as_of_date, "segment_id, centre", str(model.version)):
        if int(seg) in centres:
            centres[int(seg)] = np.asarray(centre, dtype=np.float64)
    return centres


def with_centres(model: tracking.LoadedModel, centres: dict[int, np.ndarray]) -> Any:
    """The model's pipeline serving `centres` (a copy: the loaded model stays as registered)."""
    import copy

    pipeline = copy.deepcopy(model.pipeline)
    centers = np.asarray(pipeline[-1].cluster_centers_, dtype=np.float64).copy()
    for seg, centre in centres.items():
        centers[seg] = centre
    pipeline[-1].cluster_centers_ = centers
    return pipeline


def _day_means(settings: Settings, model: tracking.LoadedModel, pipeline: Any, table: str) -> tuple[dict, dict]:
    """Per segment (nearest centre of `pipeline`): the sum of today's preprocessed rows and their count, streamed in
    chunks (only one chunk in memory)."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    preprocess, cluster = pipeline[:-1], pipeline[-1]
    with connect(settings, read_only=True) as con, threadpool_limits(limits=settings.ml.threads):
        present = set(features.table_columns(con, table))
        for frame in features.iter_chunks(con, model.features, int(settings.ml.assign_chunk_size), present, table):
            x = np.asarray(preprocess.transform(frame[model.features]), dtype=np.float64)
            labels = np.asarray(cluster.transform(x)).argmin(axis=1)
            for seg in np.unique(labels):
                part = x[labels == seg]
                sums[int(seg)] = sums.get(int(seg), 0.0) + part.sum(axis=0)
                counts[int(seg)] = counts.get(int(seg), 0) + len(part)
    return sums, counts


def update(settings: Settings, as_of_date: date, model: tracking.LoadedModel, table: str | None = None) -> OnlineUpdate:
    """The day's online step for the lens's model (see the module docstring); records and returns the centres."""
    cfg = settings.ml.online_update
    table = table or features.lens_table(settings)
    before = served_centres(settings, as_of_date, model)
    sums, counts = _day_means(settings, model, with_centres(model, before), table)
    after, moves = {}, {}
    for seg, centre in before.items():
        n = counts.get(seg, 0)
        if n < int(cfg.min_rows):
            after[seg], moves[seg] = centre, 0.0
            continue
        step = float(cfg.learning_rate) * (sums[seg] / n - centre)
        after[seg], moves[seg] = centre + step, float(np.linalg.norm(step))
    largest = max(moves.values(), default=0.0)
    if largest > float(cfg.max_move):
        seg = max(moves, key=moves.get)
        result = OnlineUpdate(as_of_date, str(model.version), before, False,
                              f"{REFUSED}: segment {seg}'s centre would move {largest:.3f} > ml.online_update.max_move "
                              f"{float(cfg.max_move):g} (standard deviations)", largest, moves,
                              {s: counts.get(s, 0) for s in before})
    else:
        result = OnlineUpdate(as_of_date, str(model.version), after, True,
                              f"centres moved towards the day's data (largest move {largest:.3f})", largest, moves,
                              {s: counts.get(s, 0) for s in before})
    _record(settings, result)
    _log(settings, result)
    log.info("online update %s %s: %s", settings.lens, as_of_date, result.reason)
    return result


def _log(settings: Settings, result: OnlineUpdate) -> None:
    """The step's figures on the lens's MLflow drift run of the day (`drift-<date>`), beside what drift measured."""
    iso = result.as_of_date.isoformat()
    mlc = tracking.client(settings)
    experiment_id = tracking.experiment_id(settings, settings.drift.experiment_name)
    runs = mlc.search_runs([experiment_id], filter_string=f"tags.drift_date = '{iso}'", max_results=1)
    if not runs:
        return  # assign called without the day's drift report (tests, a hand-run step): the table has it all
    run_id = runs[0].info.run_id
    mlc.log_metric(run_id, "online.max_move", result.max_move)
    mlc.log_metric(run_id, "online.applied", float(result.applied))
    mlc.set_tag(run_id, "online_update", result.reason[:500])


# The reason of a refused step; the drift report of the lens's next day looks for it (a retrain instead).
REFUSED = "online update refused"


def _record(settings: Settings, result: OnlineUpdate) -> None:
    rows = pd.DataFrame([
        {"segmentation": settings.lens, "as_of_date": result.as_of_date, "model_version": result.model_version,
         "segment_id": seg, "centre": [float(v) for v in centre], "rows": result.rows.get(seg, 0),
         "move": result.moves.get(seg, 0.0), "applied": result.applied, "reason": result.reason}
        for seg, centre in sorted(result.centres.items())])
    with connect(settings) as con:
        con.execute("create schema if not exists ml_stage")
        con.execute(f"create table if not exists {TABLE} ({COLUMNS_DDL})")
        con.execute("begin transaction")
        try:
            con.execute(f"delete from {TABLE} where segmentation = ? and as_of_date = ?",
                        [settings.lens, result.as_of_date])
            con.register("online_rows", rows)
            con.execute(f"insert into {TABLE} by name select * from online_rows")
            con.unregister("online_rows")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise


def refused_before(settings: Settings, as_of_date: date) -> str | None:
    """The reason of the lens's last online step before `as_of_date` when it was refused (None otherwise): the
    drift report turns it into a retrain."""
    rows = _last_day_before(settings, as_of_date, "applied, reason")
    refused = [reason for applied, reason in rows if not applied]
    return str(refused[0]) if refused else None
