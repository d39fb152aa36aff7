{#-
    Thin names over dbt's cross-database macros, so models read well and sqlfluff (jinja templater, which cannot
    see the `dbt` namespace) can lint them: dbt_project/.sqlfluff defines lint-time stand-ins with these names.
-#}

{#- Whole days from start to end (end - start). -#}
{% macro days_between(start, end) -%}
    {{ dbt.datediff(start, end, 'day') }}
{%- endmacro %}


{#- Whole seconds from start to end. -#}
{% macro seconds_between(start, end) -%}
    {{ dbt.datediff(start, end, 'second') }}
{%- endmacro %}


{#- expression + n days / seconds (n may be negative). -#}
{% macro add_days(expression, n) -%}
    {{ dbt.dateadd('day', n, expression) }}
{%- endmacro %}


{% macro add_seconds(expression, n) -%}
    {{ dbt.dateadd('second', n, expression) }}
{%- endmacro %}
