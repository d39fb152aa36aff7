with

source as (

    select * from {{ lake_source('fx_rates') }}

),

renamed as (

    select
        cast(rate_date as date) as rate_date,
        from_currency,
        to_currency,
        -- rates keep 8 decimals: enough for JPY -> EUR, exact across reruns
        cast(rate as decimal(18, 8)) as rate,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter() }}

),

deduplicated as (

    {{ latest_version('renamed', partition_by=['rate_date', 'from_currency', 'to_currency']) }}

)

select * from deduplicated
