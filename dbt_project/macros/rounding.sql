{#-
    Determinism of derived numbers. Money is DECIMAL(18,2) from staging on, so its sums are exact whatever the
    thread schedule; a DOUBLE sum or average is not (DuckDB adds partial aggregates in whatever order its threads
    finish, so reruns of one date differed in the last bits). Every derived ratio or average is therefore computed
    from exact inputs where possible and rounded to var ratio_decimals (6) decimal places, then stored as DOUBLE.
-#}

{#- numerator / denominator as a rounded DOUBLE; NULL when the denominator is 0 or NULL. -#}
{% macro rounded_ratio(numerator, denominator) -%}
    round(
        cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0),
        {{ var('ratio_decimals') | int }}
    )
{%- endmacro %}


{#- An average (or any derived DOUBLE) rounded to ratio_decimals places. -#}
{% macro rounded(expression) -%}
    round(cast({{ expression }} as double), {{ var('ratio_decimals') | int }})
{%- endmacro %}


{#- Money: exact DECIMAL(18,2) (cents); `expression` may be a sum of DECIMALs or a product with a rate. -#}
{% macro money(expression) -%}
    cast(round({{ expression }}, 2) as decimal(18, 2))
{%- endmacro %}
