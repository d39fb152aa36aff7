"""The training reference of drift: what `ml.train` builds and stores with the model, what `ml.drift.monitor` reads.

`build_reference` (called by train on the read-only warehouse), for every model feature over the whole
`marts.customer_features` table: interior quantile cut points (`drift.psi_bins` bins, duplicates removed) with the
share of rows per bin and of NULLs (PSI), a quantile sketch (`quantile_points` quantiles at the probabilities
(i + 0.5) / points, KS and Wasserstein), mean and standard deviation; the observation window (`history_days`: days
from the first order in `marts.orders` to the as-of date); a seeded sample of `REFERENCE_SAMPLE_ROWS` feature rows
(centroid distances and per-segment means are recomputed from it with the champion, so they are measured exactly
like today's); the day's activity of the `drift.flow_window_days` days up to training per weekday
(`build_flow_reference`: order-amount bin counts and channel counts from `marts.orders`).

Train adds the segment mix of the fit sample (`segment_proportions`) and the segment profiles, writes the dict as
the model's `extra_files/reference.json` (`ml.tracking.REFERENCE_FILE`), and `ml.tracking.load_champion` gives it
back as `LoadedModel.reference`. The monitor reads today's data with the same functions (`read_columns`,
`read_orders`, `history_days`, `amount_counts`), so both sides are counted alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np

from ml import features
from ml.drift import stats

REFERENCE_FORMAT = 2
REFERENCE_SAMPLE_ROWS = 2000
QUANTILE_POINTS = 100
FLOW_WINDOW_DAYS = 14  # the default of drift.flow_window_days (settings.yml says why 14)
SAMPLE_SEED = 42


def read_columns(
    con: duckdb.DuckDBPyConnection,
    names: Sequence[str],
    present: set[str] | None = None,
    table: str = features.FEATURE_TABLE,
) -> tuple[dict[str, np.ndarray], int]:
    """Every row of the given feature columns of `table` as float64 arrays (NULL -> NaN), and the row count."""
    present = set(features.table_columns(con, table)) if present is None else present
    if not names:
        return {}, features.row_count(con, table)
    cols = ", ".join(
        f"coalesce(cast({features.quote(f)} as double), 'NaN'::double) as {features.quote(f)}"
        if f in present
        else f"'NaN'::double as {features.quote(f)}"
        for f in names
    )
    columns = con.execute(f"select {cols} from {table}").fetchnumpy()
    out = {f: np.asarray(columns[f], dtype="float64") for f in names}
    return out, len(next(iter(out.values())))


def history_days(con: duckdb.DuckDBPyConnection, table: str = features.FEATURE_TABLE) -> int | None:
    """Days from the first order in marts.orders to the feature table's as-of date (None when unknown)."""
    try:
        (first,) = con.execute("select min(order_date) from marts.orders").fetchone()
        (as_of,) = con.execute(f"select max(as_of_date) from {table}").fetchone()
    except duckdb.Error:
        return None
    if first is None or as_of is None:
        return None
    first = first.date() if hasattr(first, "date") and not isinstance(first, date) else first
    as_of = as_of.date() if hasattr(as_of, "date") and not isinstance(as_of, date) else as_of
    return max(1, (as_of - first).days + 1)


def read_orders(con: duckdb.DuckDBPyConnection, first: date, last: date) -> dict[str, np.ndarray] | None:
    """Orders dated first..last from marts.orders: weekday (0 = Monday), channel, amount; None without the table."""
    try:
        return con.execute(
            "select cast(isodow(order_date) - 1 as integer) as weekday, coalesce(cast(channel as varchar), 'NULL') "
            "as channel, coalesce(cast(amount as double), 'NaN'::double) as amount from marts.orders "
            "where order_date between ? and ?",
            [first, last],
        ).fetchnumpy()
    except duckdb.Error:
        return None


def amount_counts(amount: np.ndarray, edges: np.ndarray) -> list[int]:
    """Order amounts counted into the bins of `edges`, the NULL count last."""
    nulls = np.isnan(amount)
    counts = np.bincount(np.searchsorted(edges, amount[~nulls], side="left"), minlength=edges.size + 1)
    return [*counts.tolist(), int(nulls.sum())]


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable labels of the bins cut at `edges`, NULL last (the order of the reference's shares)."""
    if not edges:
        return ["all values", "NULL"]
    labels = [f"<= {edges[0]:.4g}"]
    labels += [f"({lo:.4g}, {hi:.4g}]" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f"> {edges[-1]:.4g}", "NULL"]
    return labels


def _sketch(values: np.ndarray, points: int) -> dict[str, Any]:
    v = values[~np.isnan(values)]
    if v.size == 0:
        return {"quantiles": [], "mean": None, "std": None, "non_null_rows": 0}
    return {
        "quantiles": [float(q) for q in np.quantile(v, stats.quantile_probs(points))],
        "mean": float(v.mean()),
        "std": float(v.std()),
        "non_null_rows": int(v.size),
    }


def _json_value(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(f"{v:.7g}")


def _feature_as_of(con: duckdb.DuckDBPyConnection, table: str = features.FEATURE_TABLE) -> date | None:
    (as_of,) = con.execute(f"select max(as_of_date) from {table}").fetchone()
    return as_of


def build_flow_reference(
    con: duckdb.DuckDBPyConnection, bins: int, window_days: int = FLOW_WINDOW_DAYS,
    table: str = features.FEATURE_TABLE,
) -> dict | None:
    """Per weekday, the orders of the `window_days` days up to the as-of date (of feature table `table`): amount
    bin counts and channel counts."""
    try:
        as_of = _feature_as_of(con, table)
    except duckdb.Error:
        return None
    if as_of is None:
        return None
    first = as_of - timedelta(days=window_days - 1)
    orders = read_orders(con, first, as_of)
    if orders is None or len(orders["amount"]) == 0:
        return None
    amount = np.asarray(orders["amount"], dtype="float64")
    finite = amount[~np.isnan(amount)]
    edges = sorted({float(e) for e in np.quantile(finite, [i / bins for i in range(1, bins)])}) if finite.size else []
    channels = sorted({str(c) for c in orders["channel"]})
    weekday = np.asarray(orders["weekday"])
    channel = np.asarray(orders["channel"]).astype(str)
    by_weekday = {}
    for wd in range(7):
        mask = weekday == wd
        by_weekday[str(wd)] = {
            "orders": int(mask.sum()),
            "amount_counts": amount_counts(amount[mask], np.asarray(edges)),
            "channel_counts": [int((channel[mask] == c).sum()) for c in channels],
        }
    return {
        "window_days": window_days,
        "first_date": first.isoformat(),
        "last_date": as_of.isoformat(),
        "amount_edges": edges,
        "channels": channels,
        "by_weekday": by_weekday,
    }


def build_reference(
    con: duckdb.DuckDBPyConnection,
    used: Sequence[str],
    bins: int,
    *,
    quantile_points: int = QUANTILE_POINTS,
    sample_rows: int = REFERENCE_SAMPLE_ROWS,
    seed: int = SAMPLE_SEED,
    flow_window_days: int = FLOW_WINDOW_DAYS,
    table: str = features.FEATURE_TABLE,
) -> dict[str, Any]:
    """The training-time reference of every feature over the whole table (see the module docstring)."""
    edges = features.quantile_edges(con, used, bins, table)
    shares = features.bin_proportions(con, edges, table=table)
    rows = next(iter(shares.values()))["rows"] if shares else features.row_count(con, table)
    columns, _ = read_columns(con, used, table=table)
    sketches = {f: _sketch(columns[f], quantile_points) for f in used}
    del columns
    sample = features.sample_frame(con, used, sample_rows, seed, table)
    flows = build_flow_reference(con, bins, flow_window_days, table)
    return {
        "format_version": REFERENCE_FORMAT,
        "psi_bins": int(bins),
        "quantile_points": int(quantile_points),
        "rows": rows,
        "history_days": history_days(con, table),
        "features_used": list(used),
        "features": {
            f: {
                "edges": edges[f],
                "proportions": shares[f]["proportions"],
                "null_proportion": shares[f]["null_proportion"],
                **sketches[f],
            }
            for f in used
        },
        "flows": flows,
        "sample": {
            "columns": list(used),
            "rows": [[_json_value(x) for x in row] for row in sample[list(used)].to_numpy(dtype="float64")],
        },
    }
