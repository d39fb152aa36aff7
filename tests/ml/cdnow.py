"""marts.customer_features for an orders-only deployment, built from the CDNOW purchase log with DuckDB SQL.

CDNOW (Fader & Hardie; a slice ships as tests/fixtures/cdnow_sample.txt, the whole log inside the `lifetimes`
wheel) has one line per purchase: customer id, date (YYYYMMDD), number of CDs, dollar value, separated by runs of
spaces. Only orders exist, so the features dbt derives from orders are filled (recency_days, frequency, monetary,
avg_order_value) and every other configured feature is NULL, as customer_features.sql produces for a deployment
without CRM, events, store visits or surveys. `tenure_days` is NULL as well (dbt takes it from the CRM signup
date) unless `tenure_from_first_order=True`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "cdnow_sample.txt"
AS_OF = date(1998, 7, 1)  # the day after the log's last purchase
ORDER_FEATURES = ("recency_days", "frequency", "monetary", "avg_order_value")


def features_frame(
    path: Path, configured: list[str], as_of: date = AS_OF, *, tenure_from_first_order: bool = False
) -> pd.DataFrame:
    """One row per CDNOW customer: person_id, customer_id, as_of_date and every `configured` feature."""
    tenure = (
        "cast(date_diff('day', first_order_date, as_of) as double)"
        if tenure_from_first_order
        else "cast(null as double)"
    )
    computed = {
        "recency_days": "cast(date_diff('day', last_order_date, as_of) as double)",
        "frequency": "cast(frequency as double)",
        "monetary": "cast(monetary as double)",
        "avg_order_value": "cast(round(monetary / nullif(frequency, 0), 6) as double)",
        "tenure_days": tenure,
    }
    columns = ", ".join(f'{computed.get(f, "cast(null as double)")} as "{f}"' for f in configured)
    sql = f"""
        with lines as (
            select regexp_split_to_array(trim(line), '\\s+') as f
            from read_csv('{path}', header = false, skip = 1, delim = '\\t', columns = {{'line': 'VARCHAR'}})
            where trim(line) <> ''
        ),
        orders as (
            select
                'C' || lpad(f[1], 8, '0') as customer_id,
                strptime(f[2], '%Y%m%d')::date as order_date,
                cast(f[4] as decimal(18, 2)) as amount
            from lines
        ),
        measured as (
            select
                customer_id,
                min(order_date) as first_order_date,
                max(order_date) as last_order_date,
                count(*) as frequency,
                sum(amount) as monetary,
                cast('{as_of.isoformat()}' as date) as as_of
            from orders
            where order_date < cast('{as_of.isoformat()}' as date)
            group by customer_id
        )
        select 'P' || customer_id as person_id, customer_id, as_of as as_of_date, {columns}
        from measured
        order by person_id
    """
    with duckdb.connect() as con:
        return con.sql(sql).df()
