with

source as (

    select * from {{ lake_source('orders') }}

),

renamed as (

    select
        order_id,
        customer_id,
        {{ normalise_email('email') }} as email,
        cast(ordered_at as timestamp) as ordered_at,
        channel,
        coalesce(status, 'completed') as status,
        -- money is exact: DECIMAL(18,2) sums do not depend on DuckDB's thread schedule (see macros/rounding.sql)
        cast(amount as decimal(18, 2)) as amount,
        coalesce(currency, '{{ setting_var('reporting_currency', 'XXX') }}') as currency,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('ordered_at') }}

),

deduplicated as (

    {{ latest_version('renamed', partition_by=['order_id']) }}

)

select * from deduplicated
