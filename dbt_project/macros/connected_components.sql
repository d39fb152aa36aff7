{#-
    Connected components by min-label propagation, unrolled into a bounded chain of CTEs (no recursive SQL, so
    the calling models stay unit-testable and portable). Every node starts with its own key as label; each round a
    node takes the smallest label among itself and its neighbours. After `iterations` rounds every component whose
    diameter is at most `iterations` carries one label: its smallest node key.

    edges_cte: a CTE with columns node_a, node_b (undirected; either order)
    nodes_cte: a CTE with column node (every node, including isolated ones)
    Emits CTEs <prefix>_neighbours, <prefix>_labels_0 .. <prefix>_labels_<n> and <prefix>_components
    (node, component_key, is_converged), without a trailing comma. is_converged is false when the last round still
    changed the node's label (raise var identity_max_iterations).
-#}
{% macro connected_components(edges_cte, nodes_cte, prefix, iterations) -%}
{%- set n = [iterations | int, 1] | max -%}
{{ prefix }}_neighbours as (

    select node_a as node, node_b as neighbour from {{ edges_cte }}
    union
    select node_b as node, node_a as neighbour from {{ edges_cte }}
    union
    select node, node as neighbour from {{ nodes_cte }}

),

{{ prefix }}_labels_0 as (

    select distinct
        node,
        node as label
    from {{ nodes_cte }}

),
{% for i in range(1, n + 1) %}
{{ prefix }}_labels_{{ i }} as (

    select
        neighbours.node,
        min(labels.label) as label
    from {{ prefix }}_neighbours as neighbours
    inner join {{ prefix }}_labels_{{ i - 1 }} as labels
        on neighbours.neighbour = labels.node
    group by neighbours.node

),
{% endfor %}
{{ prefix }}_components as (

    select
        last_round.node,
        last_round.label as component_key,
        last_round.label = previous_round.label as is_converged
    from {{ prefix }}_labels_{{ n }} as last_round
    inner join {{ prefix }}_labels_{{ n - 1 }} as previous_round
        on last_round.node = previous_round.node

)
{%- endmacro %}
