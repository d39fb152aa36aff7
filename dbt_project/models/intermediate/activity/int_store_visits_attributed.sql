-- Store visits with the person who owns the scanned loyalty card.
with

store_visits as (

    select * from {{ ref('stg_lake__store_visits') }}

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        store_visits.visit_id,
        identities.person_id,
        store_visits.loyalty_id,
        store_visits.store_id,
        store_visits.visited_at,
        cast(store_visits.visited_at as date) as visit_date,
        store_visits.dwell_minutes,
        store_visits.purchase_amount,
        store_visits.purchase_amount > 0 as has_purchase
    from store_visits
    left join identities
        on
            identities.identifier_type = 'loyalty_id'
            and store_visits.loyalty_id = identities.identifier_value

)

select * from final
