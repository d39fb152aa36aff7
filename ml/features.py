"""Model inputs: reading a lens's feature mart from DuckDB and the unfitted preprocessing transformer.

Every reader takes the feature table as `table` (default `marts.customer_features`, the profile lens's; a lens
names its own mart, `lens_table`): a rerun of an older as-of date reads that date's audited build
(`marts_audit.<mart>`, seg.transform.wap.schema_of) since the published marts stay at the newer date.

All reads go through SQL so the table is never loaded whole: a deterministic hash sample for fitting, an Arrow
stream in fixed-size chunks for assignment, and quantile bins / bin counts computed inside DuckDB for drift.
Feature values are cast to DOUBLE in SQL (DECIMAL and nullable INTEGER columns would otherwise reach pandas as
objects / extension arrays); NULL becomes NaN and is imputed by the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from seg.core.config import Settings

SCHEMA = "marts"
TABLE = "customer_features"
FEATURE_TABLE = f"{SCHEMA}.{TABLE}"
ID_COLUMNS = ("person_id", "customer_id")

# Types the skops-serialised pipeline holds beyond skops' default allow-list: the clip function of the log
# features and the dtype SimpleImputer records at fit. MLflow re-loads the model with exactly this list when
# logging it, so anything else (an unexpected, unvetted type) fails training loudly.
SKOPS_TRUSTED_TYPES = ("numpy.clip", "numpy.dtype")


def quote(identifier: str) -> str:
    """A DuckDB-quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def feature_table(schema: str = SCHEMA, table: str = TABLE) -> str:
    """The feature table `table` in `schema` (`marts` or the audit schema)."""
    return f"{schema}.{table}"


def lens_table(settings: Settings, schema: str = SCHEMA) -> str:
    """The feature mart of the settings' lens (settings.feature_table) in `schema`."""
    return feature_table(schema, settings.feature_table)


def table_columns(con: duckdb.DuckDBPyConnection, table: str = FEATURE_TABLE) -> list[str]:
    """Columns of the feature table, in table order; raises if the table does not exist."""
    schema, name = table.split(".")
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    if not rows:
        raise LookupError(f"{table} does not exist in the warehouse: build the dbt marts first")
    return [r[0] for r in rows]


@dataclass(frozen=True)
class FeatureSelection:
    """Which configured features the model uses, and why the others were dropped."""

    used: list[str]
    dropped: dict[str, str] = field(default_factory=dict)


def resolve_features(
    con: duckdb.DuckDBPyConnection, configured: Sequence[str], table: str = FEATURE_TABLE
) -> FeatureSelection:
    """Keep the configured features that exist and hold at least one non-NULL value (config order).

    A deployment without some source delivers that column entirely NULL; such columns carry no information and
    would make the imputer fail, so they are dropped and reported.
    """
    present = set(table_columns(con, table))
    dropped: dict[str, str] = {f: "missing from table" for f in configured if f not in present}
    candidates = [f for f in configured if f in present]
    if candidates:
        counts = con.execute(
            "select " + ", ".join(f"count({quote(f)})" for f in candidates) + f" from {table}"
        ).fetchone()
        for name, count in zip(candidates, counts, strict=True):
            if count == 0:
                dropped[name] = "all NULL"
    used = [f for f in candidates if f not in dropped]
    return FeatureSelection(used=used, dropped=dropped)


def _select_list(features: Sequence[str], present: set[str]) -> str:
    """`cast(f as double) as f` per feature; a feature absent from the table reads as NULL."""
    parts = []
    for f in features:
        source = f"cast({quote(f)} as double)" if f in present else "cast(null as double)"
        parts.append(f"{source} as {quote(f)}")
    return ", ".join(parts)


def row_count(con: duckdb.DuckDBPyConnection, table: str = FEATURE_TABLE) -> int:
    return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def snapshot_dates(con: duckdb.DuckDBPyConnection, table: str = FEATURE_TABLE) -> tuple[str | None, str | None]:
    """(min, max) of the table's as_of_date as ISO strings, for lineage."""
    lo, hi = con.execute(f"select min(as_of_date), max(as_of_date) from {table}").fetchone()
    return (lo.isoformat() if lo is not None else None, hi.isoformat() if hi is not None else None)


def sample_frame(
    con: duckdb.DuckDBPyConnection, features: Sequence[str], size: int, seed: int, table: str = FEATURE_TABLE
) -> pd.DataFrame:
    """Up to `size` rows (ids + features) chosen by a seeded hash of person_id.

    Ordering by `hash(person_id, seed)` is deterministic whatever the thread count or physical row order, and
    a person stays in or out of the sample from one day to the next (the sample is stable as the table grows).
    """
    present = set(table_columns(con, table))
    ids = ", ".join(quote(c) for c in ID_COLUMNS)
    sql = (
        f"select {ids}, {_select_list(features, present)} from {table} "
        f"order by hash(person_id, {int(seed)}), person_id limit {int(size)}"
    )
    return con.sql(sql).df()


def iter_chunks(
    con: duckdb.DuckDBPyConnection,
    features: Sequence[str],
    chunk_size: int,
    present: set[str] | None = None,
    table: str = FEATURE_TABLE,
) -> Iterator[pd.DataFrame]:
    """Every row of the table (ids + features) as DataFrames of at most ~chunk_size rows, streamed from DuckDB.

    The connection must not run other statements while the iterator is consumed; write through `con.cursor()`.
    """
    present = set(table_columns(con, table)) if present is None else present
    ids = ", ".join(quote(c) for c in ID_COLUMNS)
    reader = con.sql(f"select {ids}, {_select_list(features, present)} from {table}").to_arrow_reader(
        int(chunk_size)
    )
    for batch in reader:
        if batch.num_rows:
            yield batch.to_pandas()


def quantile_edges(
    con: duckdb.DuckDBPyConnection, features: Sequence[str], bins: int, table: str = FEATURE_TABLE
) -> dict[str, list[float]]:
    """Interior quantile bin edges per feature (bins-1 cut points, duplicates removed), computed in DuckDB.

    Bins are right-closed: (-inf, e1], (e1, e2], ..., (e_last, +inf); NULLs get a bin of their own.
    """
    if bins < 2:
        raise ValueError("drift.psi_bins must be at least 2")
    probs = [i / bins for i in range(1, bins)]
    probs_sql = "[" + ", ".join(repr(p) for p in probs) + "]"
    row = con.execute(
        "select " + ", ".join(f"quantile_cont(cast({quote(f)} as double), {probs_sql})" for f in features) + f" from {table}"
    ).fetchone()
    edges: dict[str, list[float]] = {}
    for name, values in zip(features, row, strict=True):
        finite = sorted({float(v) for v in (values or []) if v is not None and np.isfinite(v)})
        edges[name] = finite
    return edges


def bin_proportions(
    con: duckdb.DuckDBPyConnection, edges: dict[str, list[float]], present: set[str] | None = None,
    table: str = FEATURE_TABLE,
) -> dict[str, dict[str, object]]:
    """Share of rows per bin for each feature, given bin edges, in one scan of the table.

    Returns {feature: {"proportions": [share per value bin], "null_proportion": share of NULLs, "rows": n}};
    a feature absent from the table counts as all NULL.
    """
    present = set(table_columns(con, table)) if present is None else present
    aggregates: list[str] = ["count(*)"]
    layout: list[tuple[str, int]] = []
    for name, cuts in edges.items():
        col = quote(name) if name in present else "cast(null as double)"
        value = f"cast({col} as double)"
        aggregates.append(f"count(*) filter (where {value} is null)")
        bounds = [None, *cuts, None]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            conds = []
            if lo is not None:
                conds.append(f"{value} > {float(lo)!r}")
            if hi is not None:
                conds.append(f"{value} <= {float(hi)!r}")
            aggregates.append(f"count(*) filter (where {' and '.join(conds) or f'{value} is not null'})")
        layout.append((name, len(cuts) + 1))
    row = con.execute("select " + ", ".join(aggregates) + f" from {table}").fetchone()
    total = int(row[0])
    out: dict[str, dict[str, object]] = {}
    pos = 1
    for name, n_bins in layout:
        nulls = int(row[pos])
        counts = [int(c) for c in row[pos + 1 : pos + 1 + n_bins]]
        pos += 1 + n_bins
        denom = total if total else 1
        out[name] = {
            "proportions": [c / denom for c in counts],
            "null_proportion": nulls / denom,
            "rows": total,
        }
    return out


def build_preprocessor(
    features: Sequence[str], log_features: Sequence[str], clip_z: float | None = None
) -> ColumnTransformer:
    """Unfitted preprocessing for `features` (a DataFrame with those columns, NaN for missing).

    Heavy-tailed columns (`log_features`) are clipped at 0 and log1p-transformed; every column is standardised
    (StandardScaler ignores NaN when fitting and keeps it), winsorised at +-`clip_z` standard deviations when
    `clip_z` is set (`ml.preprocessing.clip_z`: a few extreme customers, e.g. the one who bought 200 times, then
    cannot pull a centroid of their own or dominate the distances), then median-imputed by SimpleImputer with
    `add_indicator=True`. Imputing after scaling keeps the missing-value indicators as plain 0/1 columns: scaled,
    a flag that is rarely set would get a huge value and pull a cluster of its own. Only stock scikit-learn /
    numpy callables are used so the fitted pipeline serialises with skops (see SKOPS_TRUSTED_TYPES) and loads
    without this package.
    """

    def scaled() -> list[tuple[str, object]]:
        steps: list[tuple[str, object]] = [("scale", StandardScaler())]
        if clip_z is not None:
            z = float(clip_z)
            if not z > 0:
                raise ValueError(f"ml.preprocessing.clip_z must be positive, got {clip_z}")
            kw = {"a_min": -z, "a_max": z}
            steps.append(("winsorise", FunctionTransformer(np.clip, kw_args=kw, feature_names_out="one-to-one")))
        steps.append(("impute", SimpleImputer(strategy="median", add_indicator=True)))
        return steps

    log_set = set(log_features)
    log_cols = [f for f in features if f in log_set]
    lin_cols = [f for f in features if f not in log_set]
    transformers = []
    if log_cols:
        clip = FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": None}, feature_names_out="one-to-one")
        log1p = FunctionTransformer(np.log1p, feature_names_out="one-to-one")
        transformers.append(
            (
                "log",
                Pipeline([("clip", clip), ("log1p", log1p), *scaled()]),
                log_cols,
            )
        )
    if lin_cols:
        transformers.append(
            (
                "linear",
                Pipeline(scaled()),
                lin_cols,
            )
        )
    if not transformers:
        raise ValueError("no features to preprocess")
    return ColumnTransformer(transformers, remainder="drop")


def screen_features(
    frame: pd.DataFrame, features: Sequence[str], min_non_null_share: float, max_mode_share: float
) -> dict[str, str]:
    """{feature: reason} for the features of the fit sample that cannot separate customers.

    - no value at all, or fewer than `min_non_null_share` of the rows with a value (the feature would be the
      imputed median nearly everywhere and its missing flag a handful of ones);
    - a single distinct value (constant: e.g. `web_order_share` = 0 for a deployment whose orders carry no
      channel), or one value in more than `max_mode_share` of the valued rows (near-zero variance).
    A lifetime total with a mass at one value (most customers bought once) stays: the rest of its rows carry the
    information. Reasons name the setting to change.
    """
    out: dict[str, str] = {}
    n = len(frame)
    for f in features:
        col = frame[f].to_numpy(dtype="float64")
        valued = col[np.isfinite(col)]
        if valued.size == 0:
            out[f] = "no value in the fit sample"
            continue
        share = valued.size / n
        if share < min_non_null_share:
            out[f] = (
                f"only {share:.2%} of the fit sample has a value "
                f"(< ml.preprocessing.min_non_null_share {min_non_null_share})"
            )
            continue
        _, counts = np.unique(valued, return_counts=True)
        if counts.size == 1:
            out[f] = f"constant in the fit sample (every value is {valued[0]:g})"
        elif counts.max() / valued.size > max_mode_share:
            out[f] = (
                f"one value in {counts.max() / valued.size:.2%} of the fit sample's values "
                f"(> ml.preprocessing.max_mode_share {max_mode_share})"
            )
    return out


def value_columns(preprocess: ColumnTransformer) -> dict[str, int]:
    """{feature: index of its value column} in the fitted preprocessor's output (missing flags left out)."""
    out: dict[str, int] = {}
    for i, name in enumerate(preprocess.get_feature_names_out()):
        _, _, feature = str(name).partition("__")
        if not feature.startswith("missingindicator_"):
            out[feature] = i
    return out


def profile_space(frame: pd.DataFrame, features: Sequence[str], log_features: Sequence[str]) -> pd.DataFrame:
    """Features on the scale the model sees before imputation/scaling (log features clipped and log1p'd)."""
    out = frame.loc[:, list(features)].astype("float64")
    log_set = set(log_features)
    for f in features:
        if f in log_set:
            out[f] = np.log1p(np.clip(out[f].to_numpy(), 0.0, None))
    return out


def configured_features(settings: Settings) -> list[str]:
    """`ml.features` then `ml.lifecycle_features` (config order, no duplicates)."""
    cfg = settings.ml
    out: list[str] = []
    for f in [*cfg.features, *cfg.lifecycle_features]:
        if f not in out:
            out.append(f)
    return out
