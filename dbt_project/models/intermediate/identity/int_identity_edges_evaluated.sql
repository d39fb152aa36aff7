-- The over-stitching guard: which collected edges may join identifiers into one person.
{%- set limits = var('max_customers_per_identifier') %}
{#- a type missing from an overriding var keeps its default limit -#}
{%- set default_limits = {'email': 2, 'loyalty_id': 2, 'anonymous_id': 1} %}
with

edges as (

    select * from {{ ref('int_identity_edges_collected') }}

),

limited as (

    select
        *,
        case identifier_type
            {%- for identifier_type, default_limit in default_limits.items() %}
                when '{{ identifier_type }}'
                    then {{ (limits[identifier_type] if identifier_type in limits else default_limit) | int }}
            {%- endfor %}
            else 1
        end as customer_limit
    from edges

),

identifier_customers as (

    select
        identifier_type,
        identifier_value,
        count(distinct customer_id) as customer_count
    from limited
    group by identifier_type, identifier_value

),

-- pass 1: strong identifiers (email, loyalty card) under their limit merge the CRM records of one person
strong_links as (

    select distinct
        'customer_id:' || limited.customer_id as node_a,
        limited.identifier_type || ':' || limited.identifier_value as node_b
    from limited
    inner join identifier_customers
        on
            limited.identifier_type = identifier_customers.identifier_type
            and limited.identifier_value = identifier_customers.identifier_value
    where
        limited.identifier_type != 'anonymous_id'
        and identifier_customers.customer_count <= limited.customer_limit

),

strong_nodes as (

    select 'customer_id:' || customer_id as node from limited
    union
    select node_b as node from strong_links

),

{{ connected_components('strong_links', 'strong_nodes', 'strong', var('identity_max_iterations')) }},

customer_clusters as (

    select
        substr(node, length('customer_id:') + 1) as customer_id,
        component_key as cluster_key
    from strong_components
    where node like 'customer_id:%'

),

-- pass 2: a device counts the persons (not the records) that logged in on it
identifier_persons as (

    select
        limited.identifier_type,
        limited.identifier_value,
        count(distinct customer_clusters.cluster_key) as person_count
    from limited
    inner join customer_clusters
        on limited.customer_id = customer_clusters.customer_id
    group by limited.identifier_type, limited.identifier_value

),

evaluated as (

    select
        limited.edge_id,
        limited.customer_id,
        limited.identifier_type,
        limited.identifier_value,
        limited.edge_source,
        limited.observation_count,
        limited.first_observed_at,
        limited.last_observed_at,
        identifier_customers.customer_count as identifier_customer_count,
        identifier_persons.person_count as identifier_person_count,
        limited.customer_limit,
        case
            when limited.identifier_type = 'anonymous_id'
                then identifier_persons.person_count <= limited.customer_limit
            else identifier_customers.customer_count <= limited.customer_limit
        end as is_accepted
    from limited
    inner join identifier_customers
        on
            limited.identifier_type = identifier_customers.identifier_type
            and limited.identifier_value = identifier_customers.identifier_value
    inner join identifier_persons
        on
            limited.identifier_type = identifier_persons.identifier_type
            and limited.identifier_value = identifier_persons.identifier_value

),

final as (

    select
        *,
        case
            when is_accepted then null
            when identifier_type = 'anonymous_id'
                then 'anonymous_id shared by ' || identifier_person_count || ' persons (limit ' || customer_limit || ')'
            else
                identifier_type || ' shared by ' || identifier_customer_count
                || ' customer ids (limit ' || customer_limit || ')'
        end as rejection_reason
    from evaluated

)

select * from final
