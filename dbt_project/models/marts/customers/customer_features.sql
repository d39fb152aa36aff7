-- One row per person in customers: the model's feature vector as of the as-of date. A feature whose source
-- holds no data (int_sources_summarised.is_available) is NULL, never zero; a ratio without a denominator is NULL.
{{ config(tags=['features']) }}
{%- set as_of = "cast('" ~ var('as_of_date') ~ "' as date)" %}

with

customers as (

    select * from {{ ref('customers') }}

),

customer_rfm as (

    select * from {{ ref('customer_rfm') }}

),

orders as (

    select * from {{ ref('int_orders_attributed') }}

),

events as (

    select * from {{ ref('int_events_sessionized') }}

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

sources as (

    select * from {{ ref('int_sources_summarised') }}

),

availability as (

    {{ source_availability('sources', ['orders', 'order_items', 'events', 'store_visits', 'survey_responses']) }}

),

order_stats as (

    select
        person_id,
        count(case when is_completed and channel = 'web' then 1 end) as web_order_count,
        count(case when is_completed and channel = 'app' then 1 end) as app_order_count,
        count(case when is_completed and channel = 'store' then 1 end) as store_order_count,
        count(case when status = 'returned' then 1 end) as returned_order_count,
        count(case when status in ('completed', 'returned') then 1 end) as kept_or_returned_order_count,
        sum(case when is_completed then discount_amount end) as discount_amount,
        sum(case when is_completed then gross_item_amount end) as gross_item_amount,
        {{ rounded('avg(case when is_completed then unit_count end)') }} as avg_units_per_order
    from orders
    where person_id is not null
    group by person_id

),

event_stats as (

    select
        sessions.person_id,
        count(*) as event_count,
        count(case when events.event_type = 'product_view' then 1 end) as product_view_count,
        count(case when events.event_type = 'add_to_cart' then 1 end) as add_to_cart_count,
        count(case when events.event_type = 'search' then 1 end) as search_count,
        count(case when events.event_type = 'video_play' then 1 end) as video_play_count,
        {{ rounded('avg(events.video_percent)') }} as avg_video_percent,
        {{ rounded('avg(events.scroll_percent)') }} as avg_scroll_percent,
        {{ rounded_ratio('count(case when extract(hour from events.occurred_at) >= 18 then 1 end)', 'count(*)') }}
            as evening_event_share,
        {{ rounded_ratio('count(case when extract(isodow from events.occurred_at) in (6, 7) then 1 end)', 'count(*)') }}
            as weekend_event_share,
        max(events.event_date) as last_event_date
    from events
    inner join sessions
        on events.session_id = sessions.session_id
    where sessions.person_id is not null
    group by sessions.person_id

),

session_stats as (

    select
        person_id,
        count(*) as session_count,
        count(case when has_add_to_cart then 1 end) as cart_session_count,
        count(case when is_cart_abandoned then 1 end) as abandoned_cart_session_count,
        {{ rounded('avg(session_duration_s)') }} as avg_session_duration_s
    from sessions
    where person_id is not null
    group by person_id

),

visit_stats as (

    select
        person_id,
        count(*) as store_visit_count,
        {{ money('sum(purchase_amount)') }} as store_spend,
        {{ rounded('avg(dwell_minutes)') }} as avg_dwell_minutes
    from store_visits
    where person_id is not null
    group by person_id

),

final as (

    select
        customers.person_id,
        customers.customer_id,
        {{ as_of }} as as_of_date,

        -- orders (RFM as in customer_rfm)
        customer_rfm.recency_days,
        case when availability.has_orders then coalesce(customer_rfm.frequency, 0) end as frequency,
        case when availability.has_orders then coalesce(customer_rfm.monetary, 0) end as monetary,
        {{ rounded_ratio('customer_rfm.monetary', 'customer_rfm.frequency') }} as avg_order_value,
        case
            when availability.has_order_items
                then {{ rounded_ratio('order_stats.discount_amount', 'order_stats.gross_item_amount') }}
        end as discount_share,
        {{ rounded_ratio('order_stats.web_order_count', 'customer_rfm.frequency') }} as web_order_share,
        {{ rounded_ratio('order_stats.app_order_count', 'customer_rfm.frequency') }} as app_order_share,
        {{ rounded_ratio('order_stats.store_order_count', 'customer_rfm.frequency') }} as store_order_share,
        {{ rounded_ratio('order_stats.returned_order_count', 'order_stats.kept_or_returned_order_count') }}
            as return_rate,
        case when availability.has_order_items then order_stats.avg_units_per_order end as avg_units_per_order,

        -- store
        case when availability.has_store_visits then coalesce(visit_stats.store_visit_count, 0) end
            as store_visit_count,
        case when availability.has_store_visits then coalesce(visit_stats.store_spend, 0) end as store_spend,
        visit_stats.avg_dwell_minutes,

        -- web / app behaviour
        case when availability.has_events then coalesce(event_stats.event_count, 0) end as event_count,
        case when availability.has_events then coalesce(session_stats.session_count, 0) end as session_count,
        case when availability.has_events then coalesce(event_stats.product_view_count, 0) end
            as product_view_count,
        case when availability.has_events then coalesce(event_stats.add_to_cart_count, 0) end
            as add_to_cart_count,
        case when availability.has_events then coalesce(event_stats.search_count, 0) end as search_count,
        case when availability.has_events then coalesce(event_stats.video_play_count, 0) end
            as video_play_count,
        {{ rounded_ratio('session_stats.abandoned_cart_session_count', 'session_stats.cart_session_count') }}
            as cart_abandonment_rate,
        session_stats.avg_session_duration_s,
        event_stats.avg_video_percent,
        event_stats.avg_scroll_percent,
        event_stats.evening_event_share,
        event_stats.weekend_event_share,
        {{ days_between('event_stats.last_event_date', as_of) }}
            as days_since_last_event,

        -- survey (latest answer, Likert 1-5)
        survey_answers.price_sensitivity,
        survey_answers.brand_loyalty,
        survey_answers.sustainability_interest,
        survey_answers.innovation_seeking,
        survey_answers.shopping_enjoyment,

        -- CRM
        {{ days_between('cast(customers.signup_at as date)', as_of) }}
            as tenure_days,
        floor(
            {{ days_between('customers.birth_date', as_of) }} / 365.25
        ) as age_years
    from customers
    cross join availability
    left join customer_rfm
        on customers.person_id = customer_rfm.person_id
    left join order_stats
        on customers.person_id = order_stats.person_id
    left join event_stats
        on customers.person_id = event_stats.person_id
    left join session_stats
        on customers.person_id = session_stats.person_id
    left join visit_stats
        on customers.person_id = visit_stats.person_id
    left join survey_answers
        on customers.person_id = survey_answers.person_id

)

select * from final
