-- Edges the over-stitching guard refused, for the identity report.
with

evaluated as (

    select * from {{ ref('int_identity_edges_evaluated') }}

),

final as (

    select
        edge_id,
        customer_id,
        identifier_type,
        identifier_value,
        edge_source,
        observation_count,
        first_observed_at,
        last_observed_at,
        identifier_customer_count,
        identifier_person_count,
        customer_limit,
        rejection_reason
    from evaluated
    where not is_accepted

)

select * from final
