with

source as (

    select * from {{ lake_source('survey_responses') }}

),

renamed as (

    select
        response_id,
        question_id,
        customer_id,
        {{ normalise_email('email') }} as email,
        cast(answered_at as timestamp) as answered_at,
        answer,
        case
            when question_id != 'preferred_channel' then try_cast(answer as integer)
        end as answer_score,
        cast(ingest_date as date) as ingest_date,
        _source_file as source_file,
        _row_number as source_row_number
    from source
    where {{ as_of_filter('answered_at') }}

),

deduplicated as (

    select
        *,
        row_number() over (
            partition by response_id, question_id
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
