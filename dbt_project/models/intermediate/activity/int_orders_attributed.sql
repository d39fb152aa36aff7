-- Orders with their lines summarised, the amount in EUR and the person who placed them.
with

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

order_items as (

    select * from {{ ref('stg_lake__order_items') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

currency_rates as (

    select * from {{ ref('currency_rates') }}

),

items_summarised as (

    select
        order_id,
        count(*) as line_count,
        cast(sum(quantity) as bigint) as unit_count,
        -- exact DECIMAL sums, rounded to cents once per order
        {{ money('sum(quantity * unit_price)') }} as gross_item_amount,
        {{ money('sum(quantity * unit_price * discount_share)') }} as discount_amount,
        count(distinct category) as category_count
    from order_items
    group by order_id

),

-- a logged-in order belongs to its customer id's person, a guest order to its email's person
attributed as (

    select
        orders.*,
        coalesce(by_customer.person_id, by_email.person_id) as person_id
    from orders
    left join identities as by_customer
        on
            by_customer.identifier_type = 'customer_id'
            and orders.customer_id = by_customer.identifier_value
    left join identities as by_email
        on
            by_email.identifier_type = 'email'
            and orders.email = by_email.identifier_value

),

final as (

    select
        attributed.order_id,
        attributed.person_id,
        attributed.customer_id,
        attributed.customer_id is null as is_guest_order,
        attributed.ordered_at,
        cast(attributed.ordered_at as date) as order_date,
        attributed.channel,
        attributed.status,
        attributed.status = 'completed' as is_completed,
        attributed.currency,
        attributed.amount,
        {{ money('attributed.amount * currency_rates.rate_to_eur') }} as amount_eur,
        items_summarised.order_id is not null as has_items,
        coalesce(items_summarised.line_count, 0) as line_count,
        coalesce(items_summarised.unit_count, 0) as unit_count,
        items_summarised.gross_item_amount,
        items_summarised.discount_amount,
        {{ rounded_ratio('items_summarised.discount_amount', 'items_summarised.gross_item_amount') }}
            as item_discount_share,
        coalesce(items_summarised.category_count, 0) as category_count
    from attributed
    left join items_summarised
        on attributed.order_id = items_summarised.order_id
    left join currency_rates
        on attributed.currency = currency_rates.currency

)

select * from final
