-- One row per order up to the as-of date, with its lines summarised and the person who placed it.
with

orders as (

    select * from {{ ref('int_orders_attributed') }}

),

final as (

    select
        order_id,
        person_id,
        customer_id,
        is_guest_order,
        ordered_at,
        order_date,
        channel,
        status,
        is_completed,
        currency,
        amount,
        reporting_currency,
        amount_reporting,
        has_items,
        line_count,
        unit_count,
        gross_item_amount,
        discount_amount,
        item_discount_share,
        category_count
    from orders

)

select * from final
