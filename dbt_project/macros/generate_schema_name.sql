{#- Schemas are exactly the layer names (staging, intermediate, marts), not <target>_<custom>.
    Write-audit-publish: the var `marts_schema` redirects the marts layer to an audit schema (the pipeline passes
    `marts_audit`; seg/transform/wap.py publishes it into `marts` after the gates). Without the var, marts build in `marts`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'marts' -%}
        {{ var('marts_schema', 'marts') }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
