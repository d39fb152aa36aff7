{#- The as-of date (var as_of_date, the run's logical date) and the filters that keep later rows out. -#}

{% macro as_of_date() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or value == '' -%}
        {%- if execute -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date (YYYY-MM-DD) is required: dbt build --vars '{as_of_date: 2025-01-31}'"
            ) }}
        {%- endif -%}
        {%- set value = '1970-01-01' -%}
    {%- endif -%}
    {%- if modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) is none -%}
        {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD, got " ~ value) }}
    {%- endif -%}
    cast('{{ value }}' as date)
{%- endmacro %}


{#- First instant after the as-of day: timestamps must be strictly before it. -#}
{% macro as_of_end() -%}
    {{ add_days(as_of_date(), 1) }}
{%- endmacro %}


{#- WHERE condition for a staging model: landed by the as-of date, and (if given) happened by its end. -#}
{% macro as_of_filter(timestamp_column=none) -%}
    {%- set conditions = [] -%}
    {%- if var('respect_ingest_date', true) -%}
        {%- do conditions.append('cast(ingest_date as date) <= ' ~ as_of_date()) -%}
    {%- endif -%}
    {%- if timestamp_column -%}
        {%- do conditions.append('cast(' ~ timestamp_column ~ ' as timestamp) < ' ~ as_of_end()) -%}
    {%- endif -%}
    {{ conditions | join('\n        and ') if conditions else 'true' }}
{%- endmacro %}
