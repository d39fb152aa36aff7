-- Every identifier seen in any source, mapped to one person (a connected component of accepted edges).
with

crm_customers as (

    select * from {{ ref('stg_lake__crm_customers') }}

),

orders as (

    select * from {{ ref('stg_lake__orders') }}

),

events as (

    select * from {{ ref('stg_lake__events') }}

),

store_visits as (

    select * from {{ ref('stg_lake__store_visits') }}

),

survey_responses as (

    select * from {{ ref('stg_lake__survey_responses') }}

),

accepted_edges as (

    select * from {{ ref('int_identity_edges_evaluated') }}
    where is_accepted

),

observed as (

    select
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from crm_customers
    union all
    select
        'email' as identifier_type,
        email as identifier_value
    from crm_customers
    union all
    select
        'loyalty_id' as identifier_type,
        loyalty_id as identifier_value
    from crm_customers
    union all
    select
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from orders
    union all
    select
        'email' as identifier_type,
        email as identifier_value
    from orders
    union all
    select
        'anonymous_id' as identifier_type,
        anonymous_id as identifier_value
    from events
    union all
    select
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from events
    union all
    select
        'loyalty_id' as identifier_type,
        loyalty_id as identifier_value
    from store_visits
    union all
    select
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from survey_responses
    union all
    select
        'email' as identifier_type,
        email as identifier_value
    from survey_responses
    union all
    select
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from accepted_edges
    union all
    select
        identifier_type,
        identifier_value
    from accepted_edges

),

identifiers as (

    select distinct
        identifier_type || ':' || identifier_value as identifier_key,
        identifier_type,
        identifier_value
    from observed
    where identifier_value is not null

),

-- Only identifiers with at least one accepted edge take part in label propagation (an anonymous device that never
-- logged in is its own component), and they do so under compact integer keys that keep the text order (so the
-- smallest label is the same node as before): over every identifier as text, the propagation ran DuckDB out of
-- memory at 1 M customers.
linked as (

    select distinct
        'customer_id:' || customer_id as key_a,
        identifier_type || ':' || identifier_value as key_b
    from accepted_edges

),

node_ids as (

    select
        node_key,
        dense_rank() over (order by node_key) as node
    from (
        select key_a as node_key from linked
        union
        select key_b as node_key from linked
    ) as linked_nodes

),

links as (

    select distinct
        node_a_ids.node as node_a,
        node_b_ids.node as node_b
    from linked
    inner join node_ids as node_a_ids on linked.key_a = node_a_ids.node_key
    inner join node_ids as node_b_ids on linked.key_b = node_b_ids.node_key

),

nodes as (

    select node from node_ids

),

{{ connected_components('links', 'nodes', 'identity', var('identity_max_iterations')) }},

components as (

    select
        identifiers.identifier_key,
        identifiers.identifier_type,
        identifiers.identifier_value,
        -- identifier keys contain ':', so they never equal a propagated (numeric) label
        coalesce(cast(identity_components.component_key as varchar), identifiers.identifier_key) as component_key,
        coalesce(identity_components.is_converged, true) as is_converged
    from identifiers
    left join node_ids
        on identifiers.identifier_key = node_ids.node_key
    left join identity_components
        on node_ids.node = identity_components.node

),

-- a person is keyed by its smallest customer id (the primary CRM record), else by its smallest identifier
person_keys as (

    select
        component_key,
        coalesce(
            'customer_id:' || min(case when identifier_type = 'customer_id' then identifier_value end),
            min(identifier_key)
        ) as person_key,
        count(*) as person_identifier_count
    from components
    group by component_key

),

final as (

    select
        components.identifier_key,
        components.identifier_type,
        components.identifier_value,
        -- a person known only by an email: md5 of 'email:<address>' would be an unkeyed hash of it
        case
            when person_keys.person_key like 'email:%'
                then left({{ pii_hash('person_keys.person_key') }}, 32)
            else md5(person_keys.person_key)
        end as person_id,
        person_keys.person_key,
        person_keys.person_identifier_count,
        components.is_converged
    from components
    inner join person_keys
        on components.component_key = person_keys.component_key

)

select * from final
