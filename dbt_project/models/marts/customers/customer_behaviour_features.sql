-- One row per person in customers: what the person does NOW, as features over trailing windows ending on the
-- as-of date (inclusive: "30d" = as_of_date - 29 .. as_of_date; macro in_trailing_days), the input of the
-- behaviour lens. Same conventions as customer_features: staging already drops everything stamped after the as-of
-- day or landed after it; a feature whose source holds no data (int_sources_summarised.is_available) is NULL,
-- never zero; counts are 0 when the source has data but the person has none in the window; a share or average
-- without a denominator in the window is NULL; money is DECIMAL(18,2), ratios are rounded (var ratio_decimals).
{{ config(tags=['features']) }}
{%- set as_of = as_of_date() %}
{%- set ordered_in_30d = in_trailing_days('order_date', 30) %}
{%- set ordered_in_90d = in_trailing_days('order_date', 90) %}

with

customers as (

    select * from {{ ref('customers') }}

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

sources as (

    select * from {{ ref('int_sources_summarised') }}

),

availability as (

    {{ source_availability('sources', ['orders', 'order_items', 'events', 'store_visits']) }}

),

-- completed orders count as orders (as customer_rfm.frequency); returns are judged among completed + returned
order_windows as (

    select
        person_id,
        max(case when is_completed then order_date end) as last_order_date,
        {{ count_in_trailing_days('order_date', 30, 'is_completed') }} as orders_30d,
        {{ count_in_trailing_days('order_date', 90, 'is_completed') }} as orders_90d,
        {{ money('sum(case when is_completed and ' ~ ordered_in_30d ~ ' then amount_reporting end)') }}
            as spend_30d,
        {{ money('sum(case when is_completed and ' ~ ordered_in_90d ~ ' then amount_reporting end)') }}
            as spend_90d,
        sum(case when is_completed and {{ ordered_in_90d }} then discount_amount end)
            as discount_amount_90d,
        sum(case when is_completed and {{ ordered_in_90d }} then gross_item_amount end)
            as gross_item_amount_90d,
        {{ count_in_trailing_days('order_date', 90, "status = 'returned'") }} as returned_orders_90d,
        {{ count_in_trailing_days('order_date', 90, "status in ('completed', 'returned')") }}
            as kept_or_returned_orders_90d,
        {{ count_in_trailing_days('order_date', 90, "is_completed and channel = 'web'") }} as web_orders_90d,
        {{ count_in_trailing_days('order_date', 90, "is_completed and channel = 'app'") }} as app_orders_90d,
        {{ count_in_trailing_days('order_date', 90, "is_completed and channel = 'store'") }} as store_orders_90d
    from orders
    where
        person_id is not null
        and order_date <= {{ as_of }}
    group by person_id

),

-- sessions by the date they started
session_windows as (

    select
        person_id,
        {{ count_in_trailing_days('session_date', 30) }} as sessions_30d,
        {{ count_in_trailing_days('session_date', 90) }} as sessions_90d,
        {{ count_in_trailing_days('session_date', 90, 'has_add_to_cart') }} as cart_sessions_90d,
        {{ count_in_trailing_days('session_date', 90, 'is_cart_abandoned') }} as abandoned_cart_sessions_90d
    from sessions
    where
        person_id is not null
        and {{ in_trailing_days('session_date', 90) }}
    group by person_id

),

-- events by their own date (a session crossing midnight into the window brings only its events inside it)
event_windows as (

    select
        sessions.person_id,
        count(case when events.event_type = 'product_view' then 1 end) as product_views_30d,
        count(case when events.event_type = 'add_to_cart' then 1 end) as cart_adds_30d
    from events
    inner join sessions
        on events.session_id = sessions.session_id
    where
        sessions.person_id is not null
        and {{ in_trailing_days('events.event_date', 30) }}
    group by sessions.person_id

),

visit_windows as (

    select
        person_id,
        count(*) as store_visits_90d
    from store_visits
    where
        person_id is not null
        and {{ in_trailing_days('visit_date', 90) }}
    group by person_id

),

final as (

    select
        customers.person_id,
        customers.customer_id,
        {{ as_of }} as as_of_date,

        -- orders
        {{ days_between('order_windows.last_order_date', as_of) }} as days_since_last_order,
        case when availability.has_orders then coalesce(order_windows.orders_30d, 0) end as orders_30d,
        case when availability.has_orders then coalesce(order_windows.orders_90d, 0) end as orders_90d,
        case when availability.has_orders then {{ money('coalesce(order_windows.spend_30d, 0)') }} end as spend_30d,
        case when availability.has_orders then {{ money('coalesce(order_windows.spend_90d, 0)') }} end as spend_90d,
        {{ rounded_ratio('order_windows.spend_90d', 'order_windows.orders_90d') }} as avg_order_value_90d,
        case
            when availability.has_order_items
                then {{ rounded_ratio('order_windows.discount_amount_90d', 'order_windows.gross_item_amount_90d') }}
        end as discount_share_90d,
        {{ rounded_ratio('order_windows.returned_orders_90d', 'order_windows.kept_or_returned_orders_90d') }}
            as return_share_90d,
        {{ rounded_ratio('order_windows.web_orders_90d', 'order_windows.orders_90d') }} as web_share_90d,
        {{ rounded_ratio('order_windows.app_orders_90d', 'order_windows.orders_90d') }} as app_share_90d,
        {{ rounded_ratio('order_windows.store_orders_90d', 'order_windows.orders_90d') }} as store_share_90d,

        -- web / app
        case when availability.has_events then coalesce(session_windows.sessions_30d, 0) end as sessions_30d,
        case when availability.has_events then coalesce(session_windows.sessions_90d, 0) end as sessions_90d,
        case when availability.has_events then coalesce(event_windows.product_views_30d, 0) end
            as product_views_30d,
        case when availability.has_events then coalesce(event_windows.cart_adds_30d, 0) end as cart_adds_30d,
        {{ rounded_ratio('session_windows.abandoned_cart_sessions_90d', 'session_windows.cart_sessions_90d') }}
            as cart_abandonment_share_90d,

        -- store
        case when availability.has_store_visits then coalesce(visit_windows.store_visits_90d, 0) end
            as store_visits_90d
    from customers
    cross join availability
    left join order_windows
        on customers.person_id = order_windows.person_id
    left join session_windows
        on customers.person_id = session_windows.person_id
    left join event_windows
        on customers.person_id = event_windows.person_id
    left join visit_windows
        on customers.person_id = visit_windows.person_id

)

select * from final
