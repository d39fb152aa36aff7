{#-
    The lake tables are external Parquet globs (see models/staging/_lake__sources.yml). A deployment may have only
    some sources: a glob without any file makes read_parquet fail, so lake_source() renders a typed empty relation
    from the source's column data_types instead. Downstream models then build with empty inputs (NULL features).
-#}

{% macro lake_source_node(table_name) -%}
    {%- for node in graph.sources.values() -%}
        {%- if node.source_name == 'lake' and node.name == table_name -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("lake source " ~ table_name ~ " is not defined in _lake__sources.yml") }}
{%- endmacro %}


{% macro lake_files_exist(table_name) -%}
    {%- set node = lake_source_node(table_name) -%}
    {%- set pattern = node.meta.get('lake_glob') or node.config.meta.get('lake_glob') -%}
    {%- set result = run_query("select count(*) from glob('" ~ pattern ~ "')") -%}
    {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}


{% macro lake_empty_relation(table_name) -%}
    {%- set node = lake_source_node(table_name) -%}
    (
        select
        {%- for column in node.columns.values() %}
            cast(null as {{ column.data_type }}) as {{ adapter.quote(column.name) if column.name.startswith('_') else column.name }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
        where 1 = 0
    )
{%- endmacro %}


{% macro lake_source(table_name) -%}
    {#- source() is always called, so lineage and `--select source:lake.<table>+` work even when empty -#}
    {%- set relation = source('lake', table_name) -%}
    {%- if execute and not lake_files_exist(table_name) -%}
        {{ log("lake source " ~ table_name ~ " has no files: using a typed empty relation", info=true) }}
        {{- lake_empty_relation(table_name) -}}
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}
