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
        cast(dwell_minutes as double) as dwell_minutes,
        cast(coalesce(purchase_amount, 0) as double) as purchase_amount,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('visited_at') }}

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by visit_id
            order by ingest_date desc, source_file desc, source_row_number desc
        ) as version_rank
    from renamed

),

final as (

    select * exclude (version_rank)
    from deduplicated
    where version_rank = 1

)

select * from final
