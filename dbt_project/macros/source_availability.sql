{#-
    One row of flags saying which sources hold data (int_sources_summarised.is_available): `has_<source>` per
    source named, false when the source has no row. A feature whose source holds no data is NULL, never zero
    (customer_features, customer_behaviour_features).
-#}
{% macro source_availability(sources_relation, source_names) -%}
    select
    {%- for name in source_names %}
        coalesce(bool_or(source_name = '{{ name }}' and is_available), false) as has_{{ name }}
        {%- if not loop.last %},{% endif %}
    {%- endfor %}
    from {{ sources_relation }}
{%- endmacro %}
