-- Reconciliation: the marts hold exactly the landed orders. Returns one row per mismatch (the test fails on any):
--   1. per (status, currency): order count and revenue in marts.orders = the landed orders up to the as-of date,
--      read from the lake directly (latest version of each order), and the same for all orders net of
--      cancellations (status 'net');
--   2. customer_rfm: sum(frequency) / sum(monetary) = completed orders with a person in marts.orders / their EUR
--      revenue.
-- Money is DECIMAL(18,2) from staging on, so the comparison is exact (no tolerance).
with

lake_orders as (

    select * from {{ lake_source('orders') }}

),

mart_orders as (

    select * from {{ ref('orders') }}

),

customer_rfm as (

    select * from {{ ref('customer_rfm') }}

),

lake_versions as (

    select
        order_id,
        coalesce(status, 'completed') as status,
        coalesce(currency, 'EUR') as currency,
        cast(amount as decimal(18, 2)) as amount,
        ingest_date,
        _source_file,
        _row_number
    from lake_orders
    where {{ as_of_filter('ordered_at') }}

),

lake_latest as (

    {{ latest_version(
        'lake_versions', partition_by=['order_id'], order_by=['ingest_date', '_source_file', '_row_number']
    ) }}

),

lake_totals as (

    select
        status,
        currency,
        count(*) as order_count,
        sum(amount) as revenue
    from lake_latest
    group by status, currency
    union all
    select
        'net' as status,
        currency,
        count(*) as order_count,
        sum(amount) as revenue
    from lake_latest
    where status != 'cancelled'
    group by currency

),

mart_totals as (

    select
        status,
        currency,
        count(*) as order_count,
        sum(amount) as revenue
    from mart_orders
    group by status, currency
    union all
    select
        'net' as status,
        currency,
        count(*) as order_count,
        sum(amount) as revenue
    from mart_orders
    where status != 'cancelled'
    group by currency

),

order_mismatches as (

    select
        'orders' as check_name,
        coalesce(lake_totals.status, mart_totals.status) || ' ' || coalesce(lake_totals.currency, mart_totals.currency)
            as scope,
        lake_totals.order_count as expected_orders,
        mart_totals.order_count as actual_orders,
        lake_totals.revenue as expected_revenue,
        mart_totals.revenue as actual_revenue
    from lake_totals
    full outer join mart_totals
        on
            lake_totals.status = mart_totals.status
            and lake_totals.currency = mart_totals.currency
    where
        lake_totals.order_count is distinct from mart_totals.order_count
        or lake_totals.revenue is distinct from mart_totals.revenue

),

completed_totals as (

    select
        count(*) as order_count,
        coalesce(sum(amount_reporting), 0) as revenue
    from mart_orders
    where
        is_completed
        and person_id is not null

),

rfm_totals as (

    select
        coalesce(sum(frequency), 0) as order_count,
        coalesce(sum(monetary), 0) as revenue
    from customer_rfm

),

rfm_mismatches as (

    select
        'customer_rfm' as check_name,
        'completed EUR' as scope,
        completed_totals.order_count as expected_orders,
        rfm_totals.order_count as actual_orders,
        completed_totals.revenue as expected_revenue,
        rfm_totals.revenue as actual_revenue
    from completed_totals
    cross join rfm_totals
    where
        completed_totals.order_count != rfm_totals.order_count
        or completed_totals.revenue != rfm_totals.revenue

),

final as (

    select * from order_mismatches
    union all
    select * from rfm_mismatches

)

select * from final
