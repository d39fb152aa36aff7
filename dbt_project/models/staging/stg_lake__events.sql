with

source as (

    select * from {{ lake_source('events') }}

),

renamed as (

    select
        event_id,
        cast(occurred_at as timestamp) as occurred_at,
        anonymous_id,
        customer_id,
        session_id as client_session_id,
        event_type,
        cast(coalesce(taxonomy_version, 1) as integer) as taxonomy_version,
        device_type,
        os,
        country,
        region,
        page_url,
        product_id,
        category,
        cast(properties as json) as properties,
        -- typed taxonomy properties (DuckDB JSON functions stay in staging)
        try_cast(json_extract_string(properties, '$.price') as decimal(18, 2)) as price,
        try_cast(json_extract_string(properties, '$.quantity') as integer) as quantity,
        try_cast(json_extract_string(properties, '$.cart_value') as decimal(18, 2)) as cart_value,
        json_extract_string(properties, '$.order_id') as purchase_order_id,
        try_cast(json_extract_string(properties, '$.revenue') as decimal(18, 2)) as revenue,
        try_cast(json_extract_string(properties, '$.video_percent') as integer) as video_percent,
        try_cast(json_extract_string(properties, '$.scroll_percent') as integer) as scroll_percent,
        json_extract_string(properties, '$.search_term') as search_term,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('occurred_at') }}

),

deduplicated as (

    {{ latest_version('renamed', partition_by=['event_id']) }}

)

select * from deduplicated
