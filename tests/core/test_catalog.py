"""One writer per warehouse relation: the SQL in the code agrees with seg/core/catalog.py.

The scan reads every string of every module (f-strings included, with the module's own string constants filled
in: `f"create or replace table {TARGET} ..."` with TARGET = "ml_stage.customer_assignments") and finds the
relation after each writing statement (create / replace / insert / delete / update / alter / drop).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from seg.core.catalog import CATALOG, DBT, WAP, writer_of
from seg.core.paths import REPO_ROOT

WRITE = re.compile(
    r"\b(?:create\s+(?:or\s+replace\s+)?(?:temp(?:orary)?\s+)?(?:table|view)(?:\s+if\s+not\s+exists)?"
    r"|insert\s+(?:or\s+replace\s+)?into|delete\s+from|update|alter\s+table|drop\s+(?:table|view)(?:\s+if\s+exists)?"
    r"|truncate(?:\s+table)?)\s+([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\b",
    re.IGNORECASE,
)
# schemas whose relations must all be catalogued (staging/intermediate/marts_audit belong to dbt)
OWNED_SCHEMAS = {"marts", "ml_stage", "monitoring", "triggers"}
UNKNOWN = "\x00"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _text(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name):
                out.append(constants.get(part.value.id, UNKNOWN))
            else:
                out.append(UNKNOWN)
        return "".join(out)
    return None


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "..." / f"..." assignments, resolved in order."""
    constants: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _text(node.value, constants)
            if value is not None and UNKNOWN not in value:
                constants[node.targets[0].id] = value
    return constants


def _relations(path: Path, pattern: re.Pattern[str]) -> set[str]:
    """The relations `pattern` (group 1) finds in the module's strings, constants filled in."""
    tree = ast.parse(path.read_text())
    constants = _constants(tree)
    found = set()
    for node in ast.walk(tree):
        text = _text(node, constants)
        if text:
            found |= {m.group(1).lower() for m in pattern.finditer(text) if UNKNOWN not in m.group(1)}
    return found


def writes(path: Path) -> set[str]:
    return _relations(path, WRITE)


def _written() -> dict[str, set[str]]:
    """relation -> modules whose SQL writes it."""
    out: dict[str, set[str]] = {}
    for top in ("seg", "ml", "expectations", "dags"):
        for path in (REPO_ROOT / top).rglob("*.py"):
            if "bench" in path.relative_to(REPO_ROOT).parts:
                continue  # benchmarks write their own scratch databases, never the deployment's warehouse
            for relation in writes(path):
                out.setdefault(relation, set()).add(_module_name(path))
    return out


def _base(relation: str) -> str:
    # a writer's private work table (ml_stage.customer_assignments__staging) belongs to the relation it builds
    return relation.split("__")[0]


def test_every_relation_is_written_only_by_its_catalogued_writer():
    wrong = []
    for relation, modules in sorted(_written().items()):
        base = _base(relation)
        if base not in CATALOG:
            continue
        writer = writer_of(base)
        expected = {WAP} if writer == DBT else {writer}
        if modules - expected:
            wrong.append(f"{relation}: written by {sorted(modules - expected)}, catalogued writer {writer}")
    assert not wrong, "\n".join(wrong)


def test_every_written_relation_of_our_schemas_is_catalogued():
    missing = sorted(r for r in _written() if r.split(".")[0] in OWNED_SCHEMAS and _base(r) not in CATALOG)
    assert not missing, f"relations written by the code but not in seg/core/catalog.py: {missing}"


def test_the_scan_finds_writes_through_module_constants(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'SCHEMA = "marts"\nTARGET = f"{SCHEMA}.customer_segments"\n'
        'def f(con, t):\n'
        '    con.execute(f"create or replace table {TARGET} as select 1")\n'
        '    con.execute("delete from monitoring.gate_results where true")\n'
        '    con.execute(f"insert into marts.{t} select 1")\n'  # a loop variable: cannot be resolved, not reported
    )
    assert writes(sample) == {"marts.customer_segments", "monitoring.gate_results"}


READ = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\b", re.IGNORECASE)
GATED_WRITERS = {WAP, "seg.transform.segments", "seg.triggers.tables"}  # published after a gate, or its own
# the warehouse's schemas (a `from x.y` in another schema is a column (`is distinct from o.col`) or prose)
WAREHOUSE_SCHEMAS = OWNED_SCHEMAS | {"staging", "intermediate", "marts_audit", "main"}


def reads(path: Path) -> set[str]:
    return {r for r in _relations(path, READ) if r.split(".")[0] in WAREHOUSE_SCHEMAS}


def test_the_trigger_micro_batch_reads_only_gated_published_relations():
    """Triggers run between daily runs: they must read the identity graph and segments only as published after
    their gates (marts.identities, marts.customer_segments), never dbt's staging / intermediate relations or the
    audit schema, which a failed daily run leaves unaudited (issue #14)."""
    read = {}
    for path in (REPO_ROOT / "seg" / "triggers").rglob("*.py"):
        for relation in reads(path):
            read.setdefault(relation, set()).add(_module_name(path))
    assert "marts.identities" in read, sorted(read)  # the scan sees the identity graph the triggers resolve through
    ungated = sorted(f"{r} (read by {sorted(m)})" for r, m in read.items()
                     if _base(r) not in CATALOG or writer_of(_base(r)) not in GATED_WRITERS)
    assert not ungated, f"the micro-batch reads relations no gate stands before: {ungated}"


def test_the_read_scan_finds_reads_through_module_constants(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('IDS = "intermediate.int_identities_resolved"\n'
                      'def f(con):\n    con.execute(f"select * from {IDS} i join marts.customers c using (person_id)")\n')
    assert reads(sample) == {"intermediate.int_identities_resolved", "marts.customers"}
