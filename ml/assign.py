"""Assignment: score every person with the champion into `ml_stage.customer_assignments`.

The champion is resolved once to a version number and downloaded; features are streamed from DuckDB in chunks of
`ml.assign_chunk_size` rows (only one chunk is in memory) and each chunk's predictions are inserted into a staging
table through a second cursor. The staging table then replaces `ml_stage.customer_assignments` in one
transaction, so a rerun rewrites the table (idempotent) and readers never see a half-written one.

`segment_id` is the cluster of the nearest centroid and `distance_to_centroid` the Euclidean distance to it in the
model's preprocessed (imputed, log1p'd, standardised) space. Publishing to marts happens elsewhere.
"""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ml import features, tracking
from seg.config import Settings
from seg.warehouse import connect

log = logging.getLogger(__name__)

SCHEMA = "ml_stage"
TABLE = "customer_assignments"
TARGET = f"{SCHEMA}.{TABLE}"
STAGING = f"{SCHEMA}.{TABLE}__staging"

COLUMNS_DDL = (
    "person_id varchar, customer_id varchar, segment_id integer, segment_name varchar, "
    "as_of_date date, model_version varchar, distance_to_centroid double"
)


def score_chunk(pipeline: Any, frame: pd.DataFrame, model_features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(segment_id, distance_to_centroid) for each row: nearest centroid of the pipeline's clusterer."""
    distances = np.asarray(pipeline.transform(frame[model_features]))
    labels = distances.argmin(axis=1)
    return labels.astype(np.int32), distances[np.arange(len(labels)), labels].astype(np.float64)


def run(settings: Settings, as_of_date: date) -> dict[str, Any]:
    """Assign every row of marts.customer_features to a segment with the champion model.

    Returns {as_of_date, model_version, rows, counts {segment_id (str): rows}, segment_names {segment_id: name},
    seconds}. Raises if there is no champion yet or the table lacks a column the model uses.
    """
    t0 = time.perf_counter()
    model = tracking.load_champion(settings)
    if model is None:
        raise RuntimeError(
            f"no '{tracking.CHAMPION}' alias on model {settings['ml']['registered_model_name']}: run ml.train first"
        )
    names = {int(seg): info["name"] for seg, info in model.segment_names.items()}
    chunk_size = int(settings["ml"]["assign_chunk_size"])
    written = 0
    with connect(settings) as con:
        present = set(features.table_columns(con))
        missing = [f for f in model.features if f not in present]
        if missing:
            raise LookupError(
                f"{features.FEATURE_TABLE} lacks columns model v{model.version} uses: {missing} "
                "(a feature without a source must stay as an all-NULL column)"
            )
        con.execute(f"create schema if not exists {SCHEMA}")
        con.execute(f"create or replace table {STAGING} ({COLUMNS_DDL})")
        writer = con.cursor()
        try:
            for frame in features.iter_chunks(con, model.features, chunk_size, present):
                labels, distances = score_chunk(model.pipeline, frame, model.features)
                out = pd.DataFrame(
                    {
                        "person_id": frame["person_id"].astype("string"),
                        "customer_id": frame["customer_id"].astype("string"),
                        "segment_id": labels,
                        "segment_name": pd.Series([names.get(int(s), "") for s in labels], dtype="string"),
                        "distance_to_centroid": distances,
                    }
                )
                writer.register("assign_chunk", out)
                writer.execute(
                    f"insert into {STAGING} select person_id, customer_id, segment_id, segment_name, "
                    "cast(? as date), ?, distance_to_centroid from assign_chunk",
                    [as_of_date, model.version],
                )
                writer.unregister("assign_chunk")
                written += len(out)
        finally:
            writer.close()
        con.execute("begin transaction")
        try:
            con.execute(f"drop table if exists {TARGET}")
            con.execute(f"alter table {STAGING} rename to {TABLE}")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        counts = con.execute(f"select segment_id, count(*) from {TARGET} group by 1 order by 1").fetchall()
    total = sum(int(c) for _, c in counts)
    if total != written:
        raise RuntimeError(f"{TARGET} holds {total} rows but {written} were scored")
    seconds = time.perf_counter() - t0
    log.info("assigned %d people with model v%s for %s in %.1fs", total, model.version, as_of_date, seconds)
    return {
        "as_of_date": as_of_date.isoformat(),
        "model_version": model.version,
        "rows": total,
        "counts": {str(int(s)): int(c) for s, c in counts},
        "segment_names": {str(s): n for s, n in sorted(names.items())},
        "seconds": round(seconds, 3),
    }
