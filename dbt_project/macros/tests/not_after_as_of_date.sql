{#- No timestamp/date in the column is later than the end of the as-of day (nothing leaks from the future). -#}
{% test not_after_as_of_date(model, column_name) %}

select *
from {{ model }}
where cast({{ column_name }} as timestamp) >= {{ as_of_end() }}

{% endtest %}
