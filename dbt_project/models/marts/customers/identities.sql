-- One row per source identifier (customer id, email, loyalty card, device) with the person it resolves to: the
-- identity graph of int_identities_resolved, gated and published for readers outside dbt (the trigger micro-batches
-- key their memberships by it). An email only keyed: the HMAC-SHA256 of its normalised form with the deployment's key
-- (macro pii_hash), which the triggers compute alike for guests this graph does not know yet.
with

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

published as (

    select
        case
            when identifier_type = 'email' then 'email_hmac'
            else identifier_type
        end as identifier_type,
        case
            when identifier_type = 'email' then {{ pii_hash('identifier_value') }}
            else identifier_value
        end as identifier_value,
        person_id
    from identities

),

final as (

    select
        identifier_type || ':' || identifier_value as identifier_key,
        identifier_type,
        identifier_value,
        person_id,
        {{ as_of_date() }} as as_of_date
    from published

)

select * from final
