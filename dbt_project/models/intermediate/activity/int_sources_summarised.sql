-- Which lake sources hold data up to the as-of date. A source without rows gives NULL (unknown) features
-- rather than zeros: customer_features reads is_available from here.
with

crm_customers as (

    select * from {{ ref('stg_lake__crm_customers') }}

),

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

order_items as (

    select * from {{ ref('stg_lake__order_items') }}

),

events as (

    select * from {{ ref('stg_lake__events') }}

),

store_visits as (

    select * from {{ ref('stg_lake__store_visits') }}

),

survey_responses as (

    select * from {{ ref('stg_lake__survey_responses') }}

),

unioned as (

    select
        'crm_customers' as source_name,
        count(*) as row_count,
        min(updated_at) as first_row_at,
        max(updated_at) as last_row_at,
        max(ingest_date) as last_ingest_date
    from crm_customers
    union all
    select
        'orders' as source_name,
        count(*) as row_count,
        min(ordered_at) as first_row_at,
        max(ordered_at) as last_row_at,
        max(ingest_date) as last_ingest_date
    from orders
    union all
    select
        'order_items' as source_name,
        count(*) as row_count,
        cast(null as timestamp) as first_row_at,
        cast(null as timestamp) as last_row_at,
        max(ingest_date) as last_ingest_date
    from order_items
    union all
    select
        'events' as source_name,
        count(*) as row_count,
        min(occurred_at) as first_row_at,
        max(occurred_at) as last_row_at,
        max(ingest_date) as last_ingest_date
    from events
    union all
    select
        'store_visits' as source_name,
        count(*) as row_count,
        min(visited_at) as first_row_at,
        max(visited_at) as last_row_at,
        max(ingest_date) as last_ingest_date
    from store_visits
    union all
    select
        'survey_responses' as source_name,
        count(*) as row_count,
        min(answered_at) as first_row_at,
        max(answered_at) as last_row_at,
        max(ingest_date) as last_ingest_date
    from survey_responses

),

final as (

    select
        source_name,
        row_count,
        row_count > 0 as is_available,
        first_row_at,
        last_row_at,
        last_ingest_date
    from unioned

)

select * from final
