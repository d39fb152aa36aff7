-- Every observed link between a customer id and another identifier, before any guard.
with

crm_customers as (

    select * from {{ ref('stg_lake__crm_customers') }}

),

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

events as (

    select * from {{ ref('stg_lake__events') }}

),

survey_responses as (

    select * from {{ ref('stg_lake__survey_responses') }}

),

crm_email_edges as (

    select
        customer_id,
        'email' as identifier_type,
        email as identifier_value,
        'crm_email' as edge_source,
        updated_at as observed_at
    from crm_customers
    where email is not null

),

crm_loyalty_edges as (

    select
        customer_id,
        'loyalty_id' as identifier_type,
        loyalty_id as identifier_value,
        'crm_loyalty' as edge_source,
        updated_at as observed_at
    from crm_customers
    where loyalty_id is not null

),

order_email_edges as (

    select
        customer_id,
        'email' as identifier_type,
        email as identifier_value,
        'order_email' as edge_source,
        ordered_at as observed_at
    from orders
    where
        customer_id is not null
        and email is not null

),

survey_email_edges as (

    select
        customer_id,
        'email' as identifier_type,
        email as identifier_value,
        'survey_email' as edge_source,
        answered_at as observed_at
    from survey_responses
    where
        customer_id is not null
        and email is not null

),

-- from the login on, a device's events carry the customer id
login_edges as (

    select
        customer_id,
        'anonymous_id' as identifier_type,
        anonymous_id as identifier_value,
        'event_login' as edge_source,
        occurred_at as observed_at
    from events
    where customer_id is not null

),

unioned as (

    select * from crm_email_edges
    union all
    select * from crm_loyalty_edges
    union all
    select * from order_email_edges
    union all
    select * from survey_email_edges
    union all
    select * from login_edges

),

final as (

    select
        md5(customer_id || '|' || identifier_type || '|' || identifier_value || '|' || edge_source) as edge_id,
        customer_id,
        identifier_type,
        identifier_value,
        edge_source,
        count(*) as observation_count,
        min(observed_at) as first_observed_at,
        max(observed_at) as last_observed_at
    from unioned
    group by customer_id, identifier_type, identifier_value, edge_source

)

select * from final
