-- One row per person with at least one completed order up to the as-of date (RFM is undefined without one;
-- customer_features carries everyone else with NULL recency and zero frequency/monetary).
with

orders as (

    select * from {{ ref('int_orders_attributed') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

completed_orders as (

    select * from orders
    where
        is_completed
        and person_id is not null

),

measured as (

    select
        person_id,
        cast('{{ var("as_of_date") }}' as date) as as_of_date,
        max(order_date) as last_order_date,
        count(distinct order_id) as frequency,
        {{ money('sum(amount_reporting)') }} as monetary
    from completed_orders
    group by person_id

),

scored as (

    select
        person_id,
        as_of_date,
        last_order_date,
        {{ days_between('last_order_date', 'as_of_date') }} as recency_days,
        frequency,
        monetary,
        -- quintiles over the scored population (oldest last order first, so r_score 5 = most recent);
        -- person_id breaks ties so a rerun scores the same
        ntile(5) over (order by last_order_date asc, person_id asc) as r_score,
        ntile(5) over (order by frequency asc, person_id asc) as f_score,
        ntile(5) over (order by monetary asc, person_id asc) as m_score
    from measured

),

final as (

    select
        scored.person_id,
        scored.as_of_date,
        scored.last_order_date,
        scored.recency_days,
        scored.frequency,
        scored.monetary,
        scored.r_score,
        scored.f_score,
        scored.m_score,
        cast(floor((scored.f_score + scored.m_score + 1) / 2.0) as integer) as fm_score,
        cast(scored.r_score as varchar) || cast(scored.f_score as varchar) || cast(scored.m_score as varchar)
            as rfm_cell,
        rfm_segments.rfm_segment
    from scored
    left join rfm_segments
        on
            scored.r_score = rfm_segments.r_score
            and cast(floor((scored.f_score + scored.m_score + 1) / 2.0) as integer) = rfm_segments.fm_score

)

select * from final
