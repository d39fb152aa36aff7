{#-
    Incremental upkeep of int_events_sessionized (a pre-hook; renders nothing on a full build).

    Per device, delete every stored session from the first one that must change:
      - a session holding an event landed after the as-of date or stamped after its end (a rebuild for an
        earlier date must not keep the future), or
      - a session reaching into the period of the events landed in the last `lookback_days` days (late events
        may extend, join or split it): any event at or after (earliest newly landed event - session gap).
    The model then sessionises each device's events after its last kept event, so an incremental run equals a
    full rebuild as long as runs are not further apart than lookback_days.
-#}
{% macro sessionized_events_rebuild_delete(events_relation) -%}
{%- if is_incremental() -%}
{%- set gap_seconds = setting_var('session_gap_minutes', 30) | int * 60 -%}
delete from {{ this }} as existing
where exists (
    select 1
    from (
        select
            stored.anonymous_id,
            min(stored.session_started_at) as rebuild_from
        from {{ this }} as stored
        left join (
            select
                anonymous_id,
                min(occurred_at) as landed_from
            from {{ events_relation }}
            where ingest_date >= {{ add_days(as_of_date(), -1 * (setting_var('lookback_days', 0) | int)) }}
            group by anonymous_id
        ) as landed
            on stored.anonymous_id = landed.anonymous_id
        where stored.occurred_at >= {{ as_of_end() }}
            or stored.ingest_date > {{ as_of_date() }}
            or stored.occurred_at >= {{ add_seconds('landed.landed_from', -1 * gap_seconds) }}
        group by stored.anonymous_id
    ) as rebuild
    where rebuild.anonymous_id = existing.anonymous_id
        and existing.session_started_at >= rebuild.rebuild_from
)
{%- endif -%}
{%- endmacro %}
