{#- Every row has at least one of the listed columns non-NULL. -#}
{% test at_least_one_not_null(model, columns) %}

select *
from {{ model }}
where {% for column in columns %}{{ column }} is null{% if not loop.last %} and {% endif %}{% endfor %}

{% endtest %}
