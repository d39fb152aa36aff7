"""Identity resolution scored against the generator's truth: pairwise precision and recall of person_id.

    from seg.core import config
    from seg.bench import identity_quality
    identity_quality.score(config.load())     # {"precision": 0.998, "recall": 0.99, ...}
    python -m seg.bench.identity_quality [DATA_DIR]  # the same, as JSON

A pair is two customer ids (CRM records) of one person. The truth (`<data dir>/truth/identities.parquet`,
id_type 'customer_id') says which pairs belong together; the warehouse (`intermediate.int_identities_resolved`,
built by dbt) says which pairs got the same person_id. Over the customer ids present in both:

    precision = pairs resolved together that truly belong together / pairs resolved together
    recall    = pairs truly together that were resolved together   / pairs truly together

Counted per contingency cell (truth person x resolved person) as n * (n - 1) / 2, so the cost is one group-by,
whatever the scale. With no pair on one side the figure is 1.0 (nothing to get wrong) and the pair count says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb

from seg.core import config
from seg.core.config import Settings

RESOLVED = "intermediate.int_identities_resolved"


def _pairs(column: str) -> str:
    return f"coalesce(sum(n * (n - 1) / 2), 0) from (select count(*) as n from scored group by {column})"


def score(settings: Settings | str | Path) -> dict[str, Any]:
    """Pairwise precision / recall of the resolved person_id of every customer id, for one data directory.

    Raises FileNotFoundError when the truth file or the warehouse is missing, LookupError when dbt has not built
    int_identities_resolved.
    """
    if not isinstance(settings, Settings):
        settings = config.load(Path(settings))
    truth_file = settings.paths.truth / "identities.parquet"
    warehouse = settings.paths.warehouse
    for path in (truth_file, warehouse):
        if not path.exists():
            raise FileNotFoundError(path)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        exists = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'intermediate' and table_name = 'int_identities_resolved'"
        ).fetchone()[0]
        if not exists:
            raise LookupError(f"{RESOLVED} does not exist in {warehouse}: run the dbt build first")
        con.execute(
            "create temp table truth as select distinct id_value as customer_id, person_id as truth_person "
            "from read_parquet(?) where id_type = 'customer_id'",
            [str(truth_file)],
        )
        con.execute(
            "create temp table resolved as select identifier_value as customer_id, person_id as resolved_person "
            f"from {RESOLVED} where identifier_type = 'customer_id'"
        )
        con.execute(
            "create temp table scored as select truth.customer_id, truth_person, resolved_person "
            "from truth join resolved using (customer_id)"
        )
        truth_ids, resolved_ids, scored_ids = (
            con.execute(f"select count(*) from {table}").fetchone()[0] for table in ("truth", "resolved", "scored")
        )
        true_pairs = int(con.execute("select " + _pairs("truth_person")).fetchone()[0])
        resolved_pairs = int(con.execute("select " + _pairs("resolved_person")).fetchone()[0])
        correct_pairs = int(con.execute("select " + _pairs("truth_person, resolved_person")).fetchone()[0])
        persons = con.execute(
            "select count(distinct truth_person), count(distinct resolved_person) from scored"
        ).fetchone()
    finally:
        con.close()
    return {
        "customer_ids_in_truth": int(truth_ids),
        "customer_ids_resolved": int(resolved_ids),
        "customer_ids_scored": int(scored_ids),
        "truth_persons": int(persons[0]),
        "resolved_persons": int(persons[1]),
        "true_pairs": true_pairs,
        "resolved_pairs": resolved_pairs,
        "correct_pairs": correct_pairs,
        "precision": correct_pairs / resolved_pairs if resolved_pairs else 1.0,
        "recall": correct_pairs / true_pairs if true_pairs else 1.0,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = config.load(Path(args[0])) if args else config.load()
    print(json.dumps(score(settings), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
