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

nodes as (

    select identifier_key as node from identifiers

),

links as (

    select distinct
        'customer_id:' || customer_id as node_a,
        identifier_type || ':' || identifier_value as node_b
    from accepted_edges

),

{{ connected_components('links', 'nodes', 'identity', var('identity_max_iterations')) }},

components as (

    select
        identifiers.identifier_key,
        identifiers.identifier_type,
        identifiers.identifier_value,
        identity_components.component_key,
        identity_components.is_converged
    from identifiers
    inner join identity_components
        on identifiers.identifier_key = identity_components.node

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
        md5(person_keys.person_key) as person_id,
        person_keys.person_key,
        person_keys.person_identifier_count,
        components.is_converged
    from components
    inner join person_keys
        on components.component_key = person_keys.component_key

)

select * from final
