"""Money at landing: the deployment's reporting currency and the orders that cannot be converted to it.

The reporting currency is `deployment.reporting_currency`, or, when that is not set, the currency of the
deployment's orders themselves: the currency of the orders already in the lake, or (first delivery) the most common
currency of the file being landed. A single-currency shop (CDNOW reports USD, a Japanese shop JPY) therefore needs no
configuration and no rates. An order in another currency needs a rate in `fx_rates` (landed before orders in every
run) from its currency to the reporting one, dated on or before its order date and at most `fx.max_rate_age_days`
old; otherwise it is quarantined with that reason: it is never converted at a made-up rate. dbt converts with the
same rule (int_orders_attributed), so every landed order has exactly one conversion.
"""

from __future__ import annotations

import duckdb

from seg.core.config import Settings
from seg.core.warehouse import sql_str

ISO_4217 = r"^[A-Z]{3}$"


def _glob(settings: Settings, source: str) -> str | None:
    base = settings.paths.raw / source
    return str(base / "*" / "*.parquet") if any(base.glob("*/*.parquet")) else None


def lake_currency(settings: Settings) -> str | None:
    """The most common currency of the orders already landed (None when no order landed yet)."""
    glob = _glob(settings, "orders")
    if glob is None:
        return None
    con = duckdb.connect(":memory:")
    try:
        row = con.execute(f"select currency from read_parquet({sql_str(glob)}) where currency is not null "
                          "group by currency order by count(*) desc, currency limit 1").fetchone()
    finally:
        con.close()
    return row[0] if row else None


def reporting_currency(settings: Settings) -> str | None:
    """The configured reporting currency, else the one of the landed orders (None before any order landed)."""
    return settings.reporting_currency or lake_currency(settings)


def file_currency(con: duckdb.DuckDBPyConnection, relation: str, column: str = "currency") -> str | None:
    """The most common well-formed currency code of a relation (the first delivery fixes the deployment's one)."""
    row = con.execute(
        f"select upper(trim(cast({column} as varchar))) as c from {relation} where regexp_full_match(upper(trim(cast("
        f"{column} as varchar))), '{ISO_4217[1:-1]}') group by c order by count(*) desc, c limit 1").fetchone()
    return row[0] if row else None


def load_rates(con: duckdb.DuckDBPyConnection, settings: Settings, reporting: str) -> None:
    """Temp table `fx_known(from_currency, rate_date)`: the landed rates to the reporting currency."""
    glob = _glob(settings, "fx_rates")
    source = (f"select from_currency, rate_date from read_parquet({sql_str(glob)}) "
              f"where to_currency = {sql_str(reporting)} and rate > 0") if glob else (
        "select cast(null as varchar) as from_currency, cast(null as date) as rate_date where false")
    con.execute(f"create or replace temp table fx_known as {source}")


def conversion_check(currency_sql: str, when_sql: str, reporting: str, max_age_days: int, configured: bool) -> str:
    """A CASE giving the quarantine reason of an order whose currency has no usable rate (NULL otherwise)."""
    if configured:
        reason = f"currency: no rate to {reporting} on or before the order date (fx_rates)"
    else:
        reason = (f"currency: not this deployment's currency {reporting} (set deployment.reporting_currency and "
                  "deliver fx_rates to accept several currencies)")
    return (
        f"CASE WHEN ({currency_sql}) IS NOT NULL AND ({currency_sql}) <> {sql_str(reporting)} AND NOT EXISTS ("
        f"SELECT 1 FROM fx_known WHERE fx_known.from_currency = ({currency_sql}) "
        f"AND fx_known.rate_date <= CAST(({when_sql}) AS DATE) "
        f"AND fx_known.rate_date >= CAST(({when_sql}) AS DATE) - INTERVAL {int(max_age_days)} DAY) "
        f"THEN {sql_str(reason)} END"
    )
