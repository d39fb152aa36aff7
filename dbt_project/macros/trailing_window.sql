{#-
    Trailing windows of the as-of date for the windowed (behaviour) features: "30d" is the 30 days
    as_of_date - 29 .. as_of_date, both ends inclusive. The upper bound repeats what staging already guarantees
    (nothing stamped after the as-of day, nothing landed after it), so a window never reaches past the as-of date
    even when read from a table that holds later rows.
-#}

{#- TRUE when the date expression lies in the `days` days ending on the as-of date (inclusive). -#}
{% macro in_trailing_days(date_expression, days) -%}
    ({{ date_expression }} between {{ add_days(as_of_date(), -1 * ((days | int) - 1)) }} and {{ as_of_date() }})
{%- endmacro %}


{#- count(*) of the rows in the window (optionally also meeting `condition`), 0 when none. -#}
{% macro count_in_trailing_days(date_expression, days, condition='true') -%}
    count(case when {{ in_trailing_days(date_expression, days) }} and ({{ condition }}) then 1 end)
{%- endmacro %}
