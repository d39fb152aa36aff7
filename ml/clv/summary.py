"""The per-customer summary the CLV models are fitted on, computed in DuckDB from an order table.

One row per person with at least one counted order on or before `calibration_end`:

- `x`          repeat purchases: purchase days after the first, up to `calibration_end`;
- `t_x`        time from the first purchase day to the last one (0 when x = 0);
- `T`          age: time from the first purchase day to `calibration_end` (the end date is inside the period);
- `mean_spend` mean amount of the repeat purchase days (the first is left out, as the Gamma-Gamma model is fitted;
               NULL -> NaN when x = 0);
- with `holdout_end`: `x_holdout`, purchase days in (`calibration_end`, `holdout_end`], and `holdout_length`.

Times are in `unit` (days, or weeks = days / 7). Orders of one person on one day are one purchase with their
amounts summed: BG/NBD counts purchase occasions in continuous time, and a basket split into several orders is
still one visit. The defaults fit `marts.orders` (person_id, order_date, amount_reporting, completed orders only).
Everything up to the per-customer rows runs in SQL; only those rows come back, as a pandas DataFrame.
"""

from __future__ import annotations

import re
from datetime import date

import pandas as pd

from ml.clv._common import days_per_unit

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote_relation(relation: str) -> str:
    """`schema.table` (or `catalog.schema.table`, or a table) quoted part by part; anything else is refused."""
    parts = relation.split(".")
    if not 1 <= len(parts) <= 3 or not all(_IDENT.match(p) for p in parts):
        raise ValueError(f"relation must be a table or view name like 'marts.orders', got {relation!r}")
    return ".".join(f'"{p}"' for p in parts)


def _quote_column(name: str, role: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{role} must be a plain column name, got {name!r}")
    return f'"{name}"'


def summary_sql(
    relation: str = "marts.orders",
    *,
    person_col: str = "person_id",
    date_col: str = "order_date",
    amount_col: str = "amount_reporting",
    include_col: str | None = "is_completed",
    unit: str = "days",
    holdout: bool = False,
) -> str:
    """The summary query, with `$calibration_end` (and `$holdout_end` when `holdout`) as parameters."""
    per_unit = days_per_unit(unit)
    person = _quote_column(person_col, "person_col")
    day = _quote_column(date_col, "date_col")
    amount = _quote_column(amount_col, "amount_col")
    included = f"and {_quote_column(include_col, 'include_col')}" if include_col else ""
    last_day = "$holdout_end" if holdout else "$calibration_end"
    holdout_cols = (
        f""",
            count(*) filter (where purchase_date > $calibration_end) as x_holdout,
            date_diff('day', $calibration_end, $holdout_end) / {per_unit} as holdout_length"""
        if holdout
        else ""
    )
    return f"""
        with

        orders as (
            select
                cast({person} as varchar) as person_id,
                cast({day} as date) as purchase_date,
                cast({amount} as double) as amount
            from {_quote_relation(relation)}
            where {person} is not null and {day} is not null {included}
        ),

        purchase_days as (
            select person_id, purchase_date, sum(amount) as amount
            from orders
            where purchase_date <= cast({last_day} as date)
            group by person_id, purchase_date
        ),

        ranked as (
            select
                *,
                min(purchase_date) over (partition by person_id) as first_date,
                purchase_date <= cast($calibration_end as date) as is_calibration
            from purchase_days
        ),

        final as (
            select
                person_id,
                count(*) filter (where is_calibration) - 1 as x,
                date_diff('day', first_date, max(purchase_date) filter (where is_calibration)) / {per_unit} as t_x,
                date_diff('day', first_date, cast($calibration_end as date)) / {per_unit} as "T",
                avg(amount) filter (where is_calibration and purchase_date > first_date) as mean_spend{holdout_cols}
            from ranked
            where first_date <= cast($calibration_end as date)
            group by person_id, first_date
        )

        select * from final order by person_id
    """


def summary_from_orders(
    con,
    relation: str = "marts.orders",
    *,
    person_col: str = "person_id",
    date_col: str = "order_date",
    amount_col: str = "amount_reporting",
    include_col: str | None = "is_completed",
    calibration_end: date,
    holdout_end: date | None = None,
    unit: str = "days",
) -> pd.DataFrame:
    """(person_id, x, t_x, T, mean_spend[, x_holdout, holdout_length]) per person, from `relation` on the DuckDB
    connection `con`. `include_col` names a boolean column selecting the orders that count (marts.orders:
    `is_completed`, leaving out cancelled and returned orders); None counts every row."""
    if holdout_end is not None and holdout_end <= calibration_end:
        raise ValueError(f"holdout_end ({holdout_end}) must be after calibration_end ({calibration_end})")
    sql = summary_sql(
        relation,
        person_col=person_col,
        date_col=date_col,
        amount_col=amount_col,
        include_col=include_col,
        unit=unit,
        holdout=holdout_end is not None,
    )
    params = {"calibration_end": calibration_end}
    if holdout_end is not None:
        params["holdout_end"] = holdout_end
    frame = con.execute(sql, params).df()
    for col in ("x", "x_holdout"):
        if col in frame:
            frame[col] = frame[col].astype("int64")
    return frame
