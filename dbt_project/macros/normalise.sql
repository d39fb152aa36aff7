{#- Identifier hygiene shared by staging models. -#}

{#- Emails compare case- and space-insensitively; an empty string is no email. -#}
{% macro normalise_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}


{#- Phones compare on digits (and a leading +) only. -#}
{% macro normalise_phone(column) -%}
    nullif(regexp_replace(trim({{ column }}), '[^0-9+]', '', 'g'), '')
{%- endmacro %}


{#- Hex SHA-256 of a (normalised) PII value; marts keep PII only in this form. -#}
{% macro pii_hash(column) -%}
    sha256({{ column }})
{%- endmacro %}
