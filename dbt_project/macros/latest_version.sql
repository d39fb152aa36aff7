{#-
    The lake is append-only: a re-sent or corrected record lands again (a later day, file or row), so every staging
    model keeps only the latest version per key. This macro is that one rule, written once, so the six models cannot
    drift apart in the ordering or the tie-breaks.

    latest_version(relation, partition_by, order_by) renders a whole SELECT for a CTE body: every column of
    `relation` (a CTE name or relation), one row per `partition_by` key, namely the first row when sorted by the
    `order_by` columns, each DESCENDING (the latest first). The default order is the landing lineage, which is unique
    per row: latest ingest_date, then latest source_file, then the last row in that file. A model with a business
    version stamp puts it in front (stg_lake__crm_customers: updated_at first).

        deduplicated as (

            {{ latest_version('renamed', partition_by=['order_id']) }}

        )
-#}

{% macro latest_version(relation, partition_by, order_by=['ingest_date', 'source_file', 'source_row_number']) -%}
    {%- set partition_by = [partition_by] if partition_by is string else partition_by -%}
    {%- set order_by = [order_by] if order_by is string else order_by -%}
    select *
    from {{ relation }}
    qualify row_number() over (
        partition by {{ partition_by | join(', ') }}
        order by {% for column in order_by %}{{ column }} desc{{ ', ' if not loop.last }}{% endfor %}
    ) = 1
{%- endmacro %}
