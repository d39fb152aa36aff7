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

    {{ latest_version('renamed', partition_by=['response_id', 'question_id']) }}

)

select * from deduplicated
