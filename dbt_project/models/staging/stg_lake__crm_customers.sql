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

deduplicated as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by updated_at desc, ingest_date desc, source_file desc, source_row_number desc
        ) as version_rank
    from renamed

),

final as (

    select * exclude (version_rank)
    from deduplicated
    where version_rank = 1

)

select * from final
