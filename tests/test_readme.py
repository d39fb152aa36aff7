"""What the README tells a new user to type works on what `make demo` made."""

from __future__ import annotations

import re

import duckdb

from seg.core.paths import REPO_ROOT


def test_the_readme_explains_a_customer_the_demo_has(demo_lake):
    """`seg explain <id>` in the README names a customer of the demo's data (#17: it named one the demo lacks)."""
    ids = re.findall(r"^seg explain (\S+)", (REPO_ROOT / "README.md").read_text(), re.MULTILINE)
    assert ids, "the README shows no `seg explain` example"
    crm = (demo_lake.incoming / "crm_customers").as_posix()
    known = {r[0] for r in duckdb.sql(f"select distinct customer_id from read_parquet('{crm}/*/*.parquet')")
             .fetchall()}
    assert set(ids) <= known, f"README examples {ids} are not customers of the demo"
