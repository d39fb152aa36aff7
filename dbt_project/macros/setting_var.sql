{#- A dbt var whose one home is config/settings.yml: seg.transform.dbt passes it on every run (see the list in
    seg/core/config.py, PIPELINE_DBT_VARS). dbt_project.yml keeps no second default that could disagree with the
    settings; run by hand, dbt needs the value in --vars. -#}
{% macro setting_var(name, parse_placeholder) -%}
    {%- set value = var(name, none) -%}
    {%- if value is none or value == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "var " ~ name ~ " is passed by seg.transform.dbt from config/settings.yml: run dbt through seg "
                ~ "(seg run / seg.transform.dbt.build), or pass it in --vars"
            ) }}
        {%- endif -%}
        {{- return(parse_placeholder) -}}
    {%- endif -%}
    {{- return(value) -}}
{%- endmacro %}
