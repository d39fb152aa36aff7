with

source as (

    select * from {{ lake_source('order_items') }}

),

renamed as (

    select
        order_id,
        cast(line_no as integer) as line_no,
        sku,
        category,
        cast(quantity as integer) as quantity,
        -- exact types (see macros/rounding.sql): cents, and the discount share to 4 decimals (contract: 0 to 1)
        cast(unit_price as decimal(18, 2)) as unit_price,
        cast(coalesce(discount, 0) as decimal(5, 4)) as discount_share,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    -- order lines carry no timestamp: the landing day bounds them; the orders they belong to bound them again
    where {{ as_of_filter() }}

),

deduplicated as (

    {{ latest_version('renamed', partition_by=['order_id', 'line_no']) }}

)

select * from deduplicated
