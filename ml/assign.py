"""Assignment: score every person with the day's model into `ml_stage.customer_assignments`.

The model is the champion unless the daily run names another version (ml.model_choice: a new version awaiting
the segments gate before it becomes champion, or the version live on an older date being rerun). It is resolved
once to a version number and downloaded; features are streamed from DuckDB in chunks of
`ml.assign_chunk_size` rows (only one chunk is in memory) and each chunk's predictions are inserted into a staging
table through a second cursor. The staging table then replaces the lens's rows of `ml_stage.customer_assignments`
(column `segmentation`: one row per person and lens) in one transaction, so a rerun rewrites them (idempotent),
the other lenses' rows stay, and readers never see a half-written table.

`segment_id` is the cluster of the nearest centroid and `distance_to_centroid` the Euclidean distance to it in the
model's preprocessed (imputed, log1p'd, standardised) space; the model's centre i is segment id i, so ids stay
stable across refits (see ml.matching).

It also replaces the lens's rows of `ml_stage.segment_profiles`: one row per segment of the model (segment_id, segment_name, size and
share over everyone assigned, `top_features` as JSON [{feature, z}] = the segment's strongest standardised
differences from the population, model_version, as_of_date). Publishing them (and the assignments) to the marts
is seg.transform.segments's job, after the `segments` gate.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml import features, tracking
from seg.core.config import Settings
from seg.core.warehouse import connect

log = logging.getLogger(__name__)

SCHEMA = "ml_stage"
TABLE = "customer_assignments"
TARGET = f"{SCHEMA}.{TABLE}"
STAGING = f"{SCHEMA}.{TABLE}__staging"

PROFILES_TABLE = "segment_profiles"
PROFILES_STAGE = f"{SCHEMA}.{PROFILES_TABLE}"
PROFILE_COLUMNS = "segmentation, segment_id, segment_name, size, share, top_features, model_version, as_of_date"
PROFILES_DDL = (
    "segmentation varchar, segment_id integer, segment_name varchar, size bigint, share double, "
    "top_features varchar, model_version varchar, as_of_date date"
)

COLUMNS_DDL = (
    "segmentation varchar, person_id varchar, customer_id varchar, segment_id integer, segment_name varchar, "
    "as_of_date date, model_version varchar, distance_to_centroid double"
)


def score_chunk(pipeline: Any, frame: pd.DataFrame, model_features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(segment_id, distance_to_centroid) for each row: nearest centroid of the pipeline's clusterer."""
    distances = np.asarray(pipeline.transform(frame[model_features]))
    labels = distances.argmin(axis=1)
    return labels.astype(np.int32), distances[np.arange(len(labels)), labels].astype(np.float64)


def run(
    settings: Settings, as_of_date: date, *, model_version: str | None = None, table: str | None = None,
    online: bool = False,
) -> dict[str, Any]:
    """Assign every row of the feature table (`table`, default the lens's mart in `marts`) to a segment of the
    lens (settings.lens) with model version `model_version` (default: the lens's champion).

    `online`: the model's centres first take the day's online step (ml.online: the lens's centres follow its
    data between refits) and the day is assigned with the moved centres.

    Returns {segmentation, as_of_date, model_version, rows, counts {segment_id (str): rows},
    segment_names {segment_id: name}, online (the step's summary or None), seconds}. Raises if there is no
    champion yet or the table lacks a column the model uses.
    """
    t0 = time.perf_counter()
    table = table or features.lens_table(settings)
    lens = settings.lens
    if model_version is not None:
        model = tracking.load_version_number(settings, model_version)
    else:
        model = tracking.load_champion(settings)
    if model is None:
        raise RuntimeError(
            f"no '{tracking.CHAMPION}' alias on model {settings.ml.registered_model_name}: run ml.train first"
        )
    names = {int(seg): info["name"] for seg, info in model.segment_names.items()}
    step = None
    pipeline = model.pipeline
    if online:
        from ml import online as online_update

        step = online_update.update(settings, as_of_date, model, table)
        pipeline = online_update.with_centres(model, step.centres)
    chunk_size = int(settings.ml.assign_chunk_size)
    written = 0
    with connect(settings) as con:
        present = set(features.table_columns(con, table))
        missing = [f for f in model.features if f not in present]
        if missing:
            raise LookupError(
                f"{table} lacks columns model v{model.version} uses: {missing} "
                "(a feature without a source must stay as an all-NULL column)"
            )
        con.execute(f"create schema if not exists {SCHEMA}")
        con.execute(f"create or replace table {STAGING} ({COLUMNS_DDL})")
        lookup = np.array([names.get(i, "") for i in range(max(names, default=0) + 1)], dtype=object)
        writer = con.cursor()
        try:
            with threadpool_limits(limits=settings.ml.threads):
                for frame in features.iter_chunks(con, model.features, chunk_size, present, table):
                    labels, distances = score_chunk(pipeline, frame, model.features)
                    out = pd.DataFrame(
                        {
                            "person_id": frame["person_id"].astype("string"),
                            "customer_id": frame["customer_id"].astype("string"),
                            "segment_id": labels,
                            "segment_name": pd.Series(lookup[labels], dtype="string"),
                            "distance_to_centroid": distances,
                        }
                    )
                    writer.register("assign_chunk", out)
                    writer.execute(
                        f"insert into {STAGING} select ?, person_id, customer_id, segment_id, segment_name, "
                        "cast(? as date), ?, distance_to_centroid from assign_chunk",
                        [lens, as_of_date, model.version],
                    )
                    writer.unregister("assign_chunk")
                    written += len(out)
        finally:
            writer.close()
        counts = con.execute(f"select segment_id, count(*) from {STAGING} group by 1 order by 1").fetchall()
        profiles = profile_rows(model, dict(counts), as_of_date, int(settings.ml.profile_top_features), lens)
        con.execute("begin transaction")
        try:
            _replace_lens(con, TARGET, COLUMNS_DDL, lens, f"select * from {STAGING}")
            con.execute(f"drop table {STAGING}")
            con.register("profile_rows", profiles)
            _replace_lens(con, PROFILES_STAGE, PROFILES_DDL, lens, f"select {PROFILE_COLUMNS} from profile_rows")
            con.unregister("profile_rows")
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        (total,) = con.execute(f"select count(*) from {TARGET} where segmentation = ?", [lens]).fetchone()
    if total != written:
        raise RuntimeError(f"{TARGET} holds {total} rows but {written} were scored")
    seconds = time.perf_counter() - t0
    log.info("assigned %d people (%s) with model v%s for %s in %.1fs", total, lens, model.version, as_of_date,
             seconds)
    return {
        "segmentation": lens,
        "as_of_date": as_of_date.isoformat(),
        "model_version": model.version,
        "rows": total,
        "counts": {str(int(s)): int(c) for s, c in counts},
        "segment_names": {str(s): n for s, n in sorted(names.items())},
        "online": step.summary() if step else None,
        "seconds": round(seconds, 3),
    }


def top_features(segment_profile: dict[str, float], n: int) -> list[dict[str, float]]:
    """The n features with the largest |standardised difference| (ties in feature order)."""
    items = sorted(segment_profile.items(), key=lambda kv: -abs(kv[1]))
    return [{"feature": f, "z": round(float(z), 4)} for f, z in items[:n]]


def _replace_lens(con, relation: str, ddl: str, lens: str, rows_sql: str) -> None:
    """Replace lens `lens`'s rows of `relation` with `rows_sql` (same columns); the other lenses' rows stay. A
    stage table of an older layout (no `segmentation` column) is rebuilt: it holds only the last run's rows."""
    schema, table = relation.split(".")
    columns = [r[0] for r in con.execute("select column_name from information_schema.columns where "
                                         "table_schema = ? and table_name = ? order by ordinal_position",
                                         [schema, table]).fetchall()]
    if columns and "segmentation" not in columns:
        con.execute(f"drop table {relation}")
    con.execute(f"create table if not exists {relation} ({ddl})")
    con.execute(f"delete from {relation} where segmentation = ?", [lens])
    con.execute(f"insert into {relation} by name {rows_sql}")


def profile_rows(
    model: tracking.LoadedModel, counts: dict[int, int], as_of_date: date, n: int, lens: str
) -> pd.DataFrame:
    """One row per segment of the model: sizes from `counts` (segment_id -> rows assigned), names and top
    standardised differences from the model (reference.json `profile`, segment_names.json)."""
    seg_profiles = model.reference.get("profile", {}).get("segments", {})
    total = sum(counts.values()) or 1
    rows = []
    for seg, info in sorted(model.segment_names.items(), key=lambda kv: int(kv[0])):
        size = int(counts.get(int(seg), 0))
        rows.append(
            {
                "segmentation": lens,
                "segment_id": int(seg),
                "segment_name": info["name"],
                "size": size,
                "share": size / total,
                "top_features": json.dumps(top_features(seg_profiles.get(str(seg), {}), n)),
                "model_version": str(model.version),
                "as_of_date": as_of_date,
            }
        )
    return pd.DataFrame(rows, columns=[c.strip() for c in PROFILE_COLUMNS.split(",")])
