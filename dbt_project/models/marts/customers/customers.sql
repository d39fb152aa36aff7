-- One row per known person: every identity component with at least one identifier other than a device
-- (a CRM record, an email, a loyalty card). Devices that never logged in are visitors, not customers.
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

crm_customers as (

    select * from {{ ref('stg_lake__crm_customers') }}

),

orders as (

    select * from {{ ref('int_orders_attributed') }}

),

sessions as (

    select * from {{ ref('sessions') }}

),

store_visits as (

    select * from {{ ref('int_store_visits_attributed') }}

),

survey_answers as (

    select * from {{ ref('int_survey_answers_pivoted') }}

),

persons as (

    select
        person_id,
        min(case when identifier_type = 'customer_id' then identifier_value end) as customer_id,
        count(case when identifier_type = 'customer_id' then 1 end) as customer_id_count,
        count(case when identifier_type = 'email' then 1 end) as email_count,
        count(case when identifier_type = 'loyalty_id' then 1 end) as loyalty_id_count,
        count(case when identifier_type = 'anonymous_id' then 1 end) as anonymous_id_count,
        min(case when identifier_type = 'email' then identifier_value end) as any_email
    from identities
    group by person_id
    having count(case when identifier_type != 'anonymous_id' then 1 end) > 0

),

crm_records as (

    select
        crm_customers.*,
        identities.person_id,
        row_number() over (
            partition by identities.person_id
            order by crm_customers.updated_at desc, crm_customers.customer_id asc
        ) as record_rank,
        count(*) over (partition by identities.person_id) as crm_record_count,
        min(crm_customers.signup_at) over (partition by identities.person_id) as first_signup_at
    from crm_customers
    inner join identities
        on
            identities.identifier_type = 'customer_id'
            and crm_customers.customer_id = identities.identifier_value

),

latest_crm_records as (

    select * from crm_records
    where record_rank = 1

),

activity as (

    select
        person_id,
        ordered_at as active_at
    from orders
    union all
    select
        person_id,
        started_at as active_at
    from sessions
    union all
    select
        person_id,
        ended_at as active_at
    from sessions
    union all
    select
        person_id,
        visited_at as active_at
    from store_visits
    union all
    select
        person_id,
        last_answered_at as active_at
    from survey_answers
    union all
    select
        person_id,
        signup_at as active_at
    from crm_records
    union all
    select
        person_id,
        updated_at as active_at
    from crm_records

),

activity_spans as (

    select
        person_id,
        min(active_at) as first_seen_at,
        max(active_at) as last_seen_at
    from activity
    where person_id is not null
    group by person_id

),

final as (

    select
        persons.person_id,
        persons.customer_id,
        persons.customer_id_count,
        persons.email_count,
        persons.loyalty_id_count,
        persons.anonymous_id_count,
        coalesce(latest_crm_records.crm_record_count, 0) as crm_record_count,
        latest_crm_records.person_id is not null as has_crm_record,
        {{ pii_match_sha256('coalesce(latest_crm_records.email, persons.any_email)') }} as email_sha256,
        {{ pii_match_sha256('latest_crm_records.phone') }} as phone_sha256,
        latest_crm_records.gender,
        latest_crm_records.birth_date,
        latest_crm_records.country,
        latest_crm_records.region,
        latest_crm_records.city,
        persons.loyalty_id_count > 0 as has_loyalty_card,
        latest_crm_records.is_marketing_opt_in,
        latest_crm_records.first_signup_at as signup_at,
        latest_crm_records.updated_at as crm_updated_at,
        activity_spans.first_seen_at,
        activity_spans.last_seen_at,
        {{ as_of_date() }} as as_of_date
    from persons
    left join latest_crm_records
        on persons.person_id = latest_crm_records.person_id
    left join activity_spans
        on persons.person_id = activity_spans.person_id

)

select * from final
