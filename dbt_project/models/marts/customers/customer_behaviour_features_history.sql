-- One row per person per as-of date: customer_behaviour_features as it was built for each date (the behaviour
-- lens's drift and stability, and its trailing windows side by side).
-- Incremental delete+insert keyed on as_of_date: a rerun of a date replaces that date's rows, other dates stay.
-- full_refresh=false: `dbt build --full-refresh` (used to rebuild the event models) never wipes the history.
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='append_new_columns',
        full_refresh=false,
        tags=['features']
    )
}}

with

customer_behaviour_features as (

    select * from {{ ref('customer_behaviour_features') }}

),

final as (

    select
        as_of_date,
        * exclude (as_of_date)
    from customer_behaviour_features

)

select * from final
