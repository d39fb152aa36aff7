"""The dbt-duckdb plugin that hands the deployment's PII key to dbt's DuckDB connections (dbt_project/profiles.yml
`plugins:`).

Personal identifiers leave marts.customers only as keyed hashes (dbt macro `pii_hash`: HMAC-SHA256 with
Settings.pii_key). The key must not be spliced into SQL: dbt writes every statement it runs to its debug log and to
target/run, and every --vars value to the log and run_results.json. So it travels beside the SQL: seg.transform.dbt
sets DBT_ENV_SECRET_SEG_PII_KEY for the duration of a dbt call (dbt scrubs DBT_ENV_SECRET_* values from its
output), the profile renders it into this plugin's config, and the plugin binds it as the DuckDB session variable
`seg_pii_key` on every connection and cursor dbt opens; the macro reads it with getvariable().
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

# the DuckDB variable the macro pii_hash reads (seg.triggers sets the same one on its connections)
VARIABLE = "seg_pii_key"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        key = plugin_config.get("key")
        if not key:
            raise ValueError("no key to hash personal identifiers with: run dbt through seg.transform.dbt, which sets "
                             "DBT_ENV_SECRET_SEG_PII_KEY from the deployment's key (SEG_PII_KEY or its data directory)")
        self._key = str(key)

    def __repr__(self) -> str:  # the key stays out of any repr dbt might log
        return f"<{type(self).__name__} {self.name}>"

    def configure_connection(self, conn) -> None:
        conn.execute(f"set variable {VARIABLE} = ?", [self._key])

    def configure_cursor(self, cursor) -> None:
        cursor.execute(f"set variable {VARIABLE} = ?", [self._key])
