-- The latest survey answer of each person to each question, one column per question.
with

survey_responses as (

    select * from {{ ref('stg_lake__survey_responses') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

attributed as (

    select
        survey_responses.*,
        coalesce(by_customer.person_id, by_email.person_id) as person_id
    from survey_responses
    left join identities as by_customer
        on
            by_customer.identifier_type = 'customer_id'
            and survey_responses.customer_id = by_customer.identifier_value
    left join identities as by_email
        on
            by_email.identifier_type = 'email'
            and survey_responses.email = by_email.identifier_value

),

ranked as (

    select
        *,
        row_number() over (
            partition by person_id, question_id
            order by answered_at desc, response_id desc
        ) as answer_rank
    from attributed

),

final as (

    select
        person_id,
        max(case when question_id = 'price_sensitivity' then answer_score end) as price_sensitivity,
        max(case when question_id = 'brand_loyalty' then answer_score end) as brand_loyalty,
        max(case when question_id = 'sustainability_interest' then answer_score end) as sustainability_interest,
        max(case when question_id = 'innovation_seeking' then answer_score end) as innovation_seeking,
        max(case when question_id = 'shopping_enjoyment' then answer_score end) as shopping_enjoyment,
        max(case when question_id = 'preferred_channel' then answer end) as preferred_channel,
        count(distinct response_id) as response_count,
        max(answered_at) as last_answered_at
    from ranked
    where answer_rank = 1
    group by person_id

)

select * from final
