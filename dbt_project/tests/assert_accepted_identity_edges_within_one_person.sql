-- Every accepted identity edge joins two identifiers of the same person (identity resolution converged).
with

accepted_edges as (

    select * from {{ ref('int_identity_edges_evaluated') }}
    where is_accepted

),

identities as (

    select * from {{ ref('int_identities_resolved') }}

),

final as (

    select
        accepted_edges.edge_id,
        customer_side.person_id as customer_person_id,
        identifier_side.person_id as identifier_person_id
    from accepted_edges
    inner join identities as customer_side
        on customer_side.identifier_key = 'customer_id:' || accepted_edges.customer_id
    inner join identities as identifier_side
        on
            identifier_side.identifier_key
            = accepted_edges.identifier_type || ':' || accepted_edges.identifier_value
    where customer_side.person_id != identifier_side.person_id

)

select * from final
