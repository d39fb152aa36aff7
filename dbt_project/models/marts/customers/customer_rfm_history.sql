-- One row per person per as-of date: customer_rfm as it was built for each date (for stability reports).
-- Incremental delete+insert keyed on as_of_date: a rerun of a date replaces that date's rows, other dates stay.
-- full_refresh=false: `dbt build --full-refresh` (used to rebuild the event models) never wipes the history.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
        full_refresh=false
    )
}}

with

customer_rfm as (

    select * from {{ ref('customer_rfm') }}

),

final as (

    select
        as_of_date,
        person_id,
        last_order_date,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        fm_score,
        rfm_cell,
        rfm_segment
    from customer_rfm

)

select * from final
