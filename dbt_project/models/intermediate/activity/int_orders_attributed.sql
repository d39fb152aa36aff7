-- Orders with their lines summarised, the amount in the reporting currency and the person who placed them.
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

fx_rates as (

    select * from {{ ref('stg_lake__fx_rates') }}
    where to_currency = '{{ setting_var('reporting_currency', 'XXX') }}'

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

-- the latest rate to the reporting currency dated on or before the order date, at most fx_max_rate_age_days old:
-- the rule landing applies, so every landed order has one (or is in the reporting currency already)
rates_for_orders as (

    select
        attributed.order_id,
        fx_rates.rate,
        row_number() over (partition by attributed.order_id order by fx_rates.rate_date desc) as rate_rank
    from attributed
    inner join fx_rates
        on
            attributed.currency = fx_rates.from_currency
            and fx_rates.rate_date <= cast(attributed.ordered_at as date)
            and fx_rates.rate_date
            >= {{ add_days('cast(attributed.ordered_at as date)', -1 * setting_var('fx_max_rate_age_days', 0) | int) }}
    where attributed.currency <> '{{ setting_var('reporting_currency', 'XXX') }}'

),

order_rates as (

    select
        order_id,
        rate
    from rates_for_orders
    where rate_rank = 1

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
        '{{ setting_var('reporting_currency', 'XXX') }}' as reporting_currency,
        case
            when attributed.currency = '{{ setting_var('reporting_currency', 'XXX') }}' then attributed.amount
            else {{ money('attributed.amount * order_rates.rate') }}
        end as amount_reporting,
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
    left join order_rates
        on attributed.order_id = order_rates.order_id

)

select * from final
