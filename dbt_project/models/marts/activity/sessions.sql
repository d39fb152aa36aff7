-- One row per web/app session, attributed to the person who logged in during it, else to the device's person.
with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

summarised as (

    select
        session_id,
        anonymous_id,
        session_customer_id,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        min(device_type) as device_type,
        count(*) as event_count,
        count(case when event_type = 'page_view' then 1 end) as page_view_count,
        count(case when event_type = 'product_view' then 1 end) as product_view_count,
        count(case when event_type = 'add_to_cart' then 1 end) as add_to_cart_count,
        count(case when event_type = 'checkout_started' then 1 end) as checkout_count,
        count(case when event_type = 'purchase' then 1 end) as purchase_count
    from events
    group by session_id, anonymous_id, session_customer_id

),

final as (

    select
        summarised.session_id,
        coalesce(by_customer.person_id, by_device.person_id) as person_id,
        summarised.anonymous_id,
        summarised.session_customer_id as customer_id,
        summarised.session_customer_id is not null as is_logged_in,
        summarised.started_at,
        summarised.ended_at,
        cast(summarised.started_at as date) as session_date,
        {{ seconds_between('summarised.started_at', 'summarised.ended_at') }} as session_duration_s,
        summarised.device_type,
        summarised.event_count,
        summarised.page_view_count,
        summarised.product_view_count,
        summarised.add_to_cart_count,
        summarised.add_to_cart_count > 0 as has_add_to_cart,
        summarised.checkout_count > 0 as has_checkout,
        summarised.purchase_count > 0 as has_purchase,
        summarised.add_to_cart_count > 0 and summarised.purchase_count = 0 as is_cart_abandoned
    from summarised
    left join identities as by_customer
        on
            by_customer.identifier_type = 'customer_id'
            and summarised.session_customer_id = by_customer.identifier_value
    left join identities as by_device
        on
            by_device.identifier_type = 'anonymous_id'
            and summarised.anonymous_id = by_device.identifier_value

)

select * from final
