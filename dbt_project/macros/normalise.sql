{#- Identifier hygiene shared by staging models, and the two hashes personal identifiers leave staging in. -#}

{#- Emails compare case- and space-insensitively; an empty string is no email. -#}
{% macro normalise_email(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}


{#- Phones compare on digits (and a leading +) only. -#}
{% macro normalise_phone(column) -%}
    nullif(regexp_replace(trim({{ column }}), '[^0-9+]', '', 'g'), '')
{%- endmacro %}


{#- The keyed hash of a (normalised) personal identifier, the only form one leaves marts.customers in: hex
    HMAC-SHA256 (RFC 2104) with the deployment's key (Settings.pii_key: SEG_PII_KEY, else a random key of the data
    directory), so a list of emails or the small space of phone numbers cannot be hashed to find people.
    The key is not in this SQL: the profile's plugin (seg/transform/dbt_pii.py) binds it as the DuckDB variable
    seg_pii_key on every connection dbt opens, so no compiled model, artifact or dbt log holds it; unset, hashing
    fails rather than yielding nulls. DuckDB has no HMAC function (its crypto extension is not bundled), so this is
    HMAC built from sha256: sha256((K xor opad) || sha256((K xor ipad) || m)), K the key's UTF-8 bytes (their
    SHA-256 when longer than the 64-byte block) zero-padded to 64 bytes. seg/triggers/tables.py (pii_hmac) builds
    the same expression for the trigger micro-batches; tests check both against Python's hmac. -#}
{% macro pii_hash(column) -%}
    sha256({{ pii_key_xor('5c') }} || unhex(sha256({{ pii_key_xor('36') }} || encode({{ column }}))))
{%- endmacro %}


{#- HMAC's inner/outer key: the key block xor a pad byte (hex) repeated over the block. -#}
{% macro pii_key_xor(pad_byte) -%}
    xor({{ pii_key_block() }}::bit, unhex(repeat('{{ pad_byte }}', 64))::bit)::blob
{%- endmacro %}


{#- The deployment's key as HMAC's 64-byte block (a BLOB), from the connection's variable seg_pii_key. -#}
{% macro pii_key_block() -%}
    {%- set key -%}
        encode(if(getvariable('seg_pii_key') is null,
            error('DuckDB variable seg_pii_key is not set: no key to hash personal identifiers with'),
            cast(getvariable('seg_pii_key') as varchar)))
    {%- endset -%}
    unhex(rpad(hex(case when octet_length({{ key }}) > 64 then unhex(sha256({{ key }})) else {{ key }} end), 128, '0'))
{%- endmacro %}


{#- Unkeyed hex SHA-256 of a normalised email or phone: the form ad platforms match customer lists on. Only
    marts.customers, the customer mart (personal data, access as such), keeps it; everywhere else pii_hash. -#}
{% macro pii_match_sha256(column) -%}
    sha256({{ column }})
{%- endmacro %}
