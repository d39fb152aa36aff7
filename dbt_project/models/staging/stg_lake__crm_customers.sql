with

source as (

    select * from {{ lake_source('crm_customers') }}

),

renamed as (

    select
        customer_id,
        {{ normalise_email('email') }} as email,
        {{ normalise_phone('phone') }} as phone,
        cast(birth_date as date) as birth_date,
        coalesce(gender, 'U') as gender,
        country,
        region,
        city,
        cast(signup_at as timestamp) as signup_at,
        loyalty_id,
        marketing_opt_in as is_marketing_opt_in,
        cast(updated_at as timestamp) as updated_at,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('updated_at') }}

),

-- the CRM stamps each version: the latest updated_at wins, the landing lineage breaks ties
deduplicated as (

    {{ latest_version(
        'renamed',
        partition_by=['customer_id'],
        order_by=['updated_at', 'ingest_date', 'source_file', 'source_row_number']
    ) }}

)

select * from deduplicated
