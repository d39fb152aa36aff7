with

source as (

    select * from {{ lake_source('store_visits') }}

),

renamed as (

    select
        visit_id,
        loyalty_id,
        store_id,
        cast(visited_at as timestamp) as visited_at,
        -- exact types (see macros/rounding.sql): dwell to 0.01 minute, the till total in cents
        cast(dwell_minutes as decimal(9, 2)) as dwell_minutes,
        cast(coalesce(purchase_amount, 0) as decimal(18, 2)) as purchase_amount,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('visited_at') }}

),

deduplicated as (

    {{ latest_version('renamed', partition_by=['visit_id']) }}

)

select * from deduplicated
