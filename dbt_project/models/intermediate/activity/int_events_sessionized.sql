-- Events cut into sessions per device: a new session after more than var session_gap_minutes of inactivity.
-- The rule (partition, order, comparison) is shared with the trigger micro-batches (seg/triggers/sessions.py)
-- and the gap with them too (settings sessions.gap_minutes); tests/triggers/test_sessions.py holds them equal.
-- Incremental: each run re-sessionises only what the events landed in the last lookback_days days can change
-- (macro sessionized_events_rebuild_delete). Persons are attached downstream (sessions), since identity
-- resolution is rebuilt daily and may re-attribute old sessions.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='sync_all_columns',
        pre_hook="{{ sessionized_events_rebuild_delete(ref('stg_lake__events')) }}"
    )
}}

with

events as (

    select * from {{ ref('stg_lake__events') }}

),

-- what earlier runs keep, per device (after the pre-hook's delete); nothing on a full build
kept as (

    {% if is_incremental() %}
        select
            anonymous_id,
            max(occurred_at) as kept_until,
            max(device_session_number) as kept_session_count
        from {{ this }}
        group by anonymous_id
    {% else %}
        select
            cast(null as varchar) as anonymous_id,
            cast(null as timestamp) as kept_until,
            cast(0 as bigint) as kept_session_count
        where false
    {% endif %}

),

new_events as (

    select
        events.*,
        coalesce(kept.kept_session_count, 0) as session_number_offset
    from events
    left join kept
        on events.anonymous_id = kept.anonymous_id
    where
        kept.kept_until is null
        or events.occurred_at > kept.kept_until

),

gaps as (

    select
        *,
        lag(occurred_at) over (
            partition by anonymous_id
            order by occurred_at, event_id
        ) as previous_occurred_at
    from new_events

),

flagged as (

    select
        *,
        case
            when previous_occurred_at is null then 1
            when
                {{ seconds_between('previous_occurred_at', 'occurred_at') }}
                > {{ setting_var('session_gap_minutes', 30) | int * 60 }}
                then 1
            else 0
        end as is_session_start
    from gaps

),

numbered as (

    select
        *,
        cast(
            session_number_offset + sum(is_session_start) over (
                partition by anonymous_id
                order by occurred_at, event_id
                rows between unbounded preceding and current row
            ) as bigint
        ) as device_session_number
    from flagged

),

sessions as (

    select
        anonymous_id,
        device_session_number,
        min(occurred_at) as session_started_at,
        -- a session with a login belongs to the customer who logged in (smallest id if several did)
        min(customer_id) as session_customer_id
    from numbered
    group by anonymous_id, device_session_number

),

final as (

    select
        numbered.event_id,
        md5(numbered.anonymous_id || '|' || cast(sessions.session_started_at as varchar)) as session_id,
        numbered.anonymous_id,
        numbered.customer_id,
        sessions.session_customer_id,
        numbered.device_session_number,
        sessions.session_started_at,
        numbered.occurred_at,
        cast(numbered.occurred_at as date) as event_date,
        numbered.event_type,
        numbered.taxonomy_version,
        numbered.device_type,
        numbered.os,
        numbered.country,
        numbered.page_url,
        numbered.product_id,
        numbered.category,
        numbered.price,
        numbered.quantity,
        numbered.cart_value,
        numbered.purchase_order_id,
        numbered.revenue,
        numbered.video_percent,
        numbered.scroll_percent,
        numbered.search_term,
        numbered.is_session_start = 1 as is_session_start,
        numbered.ingest_date
    from numbered
    inner join sessions
        on
            numbered.anonymous_id = sessions.anonymous_id
            and numbered.device_session_number = sessions.device_session_number

)

select * from final
