"""The import rule of docs/architecture.md, checked on the source: every `import` of every module of ours
(module level and inside functions alike: a lazy import is still a dependency).

    dags -> seg.pipeline -> {seg.lake, seg.transform, expectations, ml, seg.triggers, seg.generate} -> seg.core
    seg.bench (benchmarks, scores against the generator's truth) -> the stages and seg.core

Stages never import each other; Airflow is imported only by `dags/` and the adapter seg/pipeline/airflow.py.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from seg.core.paths import REPO_ROOT

OURS = ("seg", "ml", "expectations", "dags")
STAGES = ("seg.lake", "seg.transform", "expectations", "ml", "seg.triggers", "seg.generate")
# unit -> the units it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "seg.core": set(),
    **{stage: {"seg.core"} for stage in STAGES},
    "seg.bench": {"seg.core", *STAGES},
    "seg.pipeline": {"seg.core", "seg.bench", *STAGES},
    "dags": {"seg.core", "seg.pipeline"},
    "seg": set(),  # seg/__init__.py
}
AIRFLOW_ADAPTER = "seg.pipeline.airflow"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The unit (package of the rule) a module belongs to: seg.<room> inside seg, else the top-level package."""
    parts = module.split(".")
    if parts[0] == "seg" and len(parts) > 1:
        return "seg." + parts[1]
    return parts[0]


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement of the file; `from a import b` yields a.b when a.b is a
    module of ours (it is, for `from seg.core import config`), else a."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((candidate if _is_module(candidate) else base, node.lineno))
    return found


def _is_module(name: str) -> bool:
    path = REPO_ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _sources() -> list[Path]:
    return sorted(p for top in OURS for p in (REPO_ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def _graph() -> list[tuple[str, str, int, str]]:
    """(from module, to module, line, file) for every import of one of our modules."""
    edges = []
    for path in _sources():
        module = _module_name(path)
        for target, line in _imports(path, module):
            if target.split(".")[0] in OURS:
                edges.append((module, target, line, str(path.relative_to(REPO_ROOT))))
    return edges


def violations(edges) -> list[str]:
    broken = []
    for module, target, line, file in edges:
        source_unit, target_unit = unit_of(module), unit_of(target)
        if source_unit == target_unit or target == "seg":
            continue
        if target_unit not in ALLOWED.get(source_unit, set()):
            broken.append(f"{file}:{line}: {source_unit} imports {target} ({target_unit})")
    return broken


def test_every_import_follows_the_rule():
    broken = violations(_graph())
    assert not broken, "imports against the rule of docs/architecture.md:\n" + "\n".join(broken)


def test_no_cycle_between_units():
    reach: dict[str, set[str]] = {}
    for module, target, *_ in _graph():
        a, b = unit_of(module), unit_of(target)
        if a != b and target != "seg":
            reach.setdefault(a, set()).add(b)
    units = set(reach) | set(itertools.chain.from_iterable(reach.values()))
    closure = {u: set(reach.get(u, ())) for u in units}
    changed = True
    while changed:
        changed = False
        for u in units:
            more = set().union(*(closure[v] for v in closure[u])) - closure[u]
            if more:
                closure[u] |= more
                changed = True
    cycles = sorted(u for u in units if u in closure[u])
    assert not cycles, f"units that import themselves through others: {cycles}"


def test_no_cycle_between_modules_of_a_unit():
    """Inside a unit too, two modules never import each other (directly or around a circle)."""
    reach: dict[str, set[str]] = {}
    for module, target, *_ in _graph():
        if module != target and unit_of(module) == unit_of(target) and not target.startswith(module + "."):
            # a package importing its own submodule (seg/bench/__init__ -> seg.bench.gates) is its table of contents
            reach.setdefault(module, set()).add(target)

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in reach.get(node, ()):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in (cycle_from(m) for m in sorted(reach)) if c]
    assert not cycles, "modules importing each other: " + "; ".join(" -> ".join(c) for c in cycles)


def test_airflow_is_imported_only_by_dags_and_the_adapter():
    offenders = []
    for path in _sources():
        module = _module_name(path)
        if module.startswith("dags") or module == AIRFLOW_ADAPTER:
            continue
        for target, line in _imports(path, module):
            if target.split(".")[0] == "airflow":
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert not offenders, f"Airflow imported outside dags/ and {AIRFLOW_ADAPTER}: {offenders}"


@pytest.mark.parametrize(("module", "target", "expected_unit"), [
    ("seg.lake.landing", "seg.core.config", "seg.core"),
    ("ml.train", "ml.features", "ml"),
    ("dags.segmentation_daily", "seg.pipeline.daily", "seg.pipeline"),
])
def test_units_are_named_by_room(module, target, expected_unit):
    assert unit_of(target) == expected_unit
    assert unit_of(module) in ALLOWED


def test_the_rule_catches_a_lazy_import_of_one_stage_by_another(tmp_path):
    """The checker itself can fail: a lake module importing ml inside a function is reported."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from ml.train import run\n")
    edges = [("seg.lake.bad", target, line, "bad.py") for target, line in _imports(fake, "seg.lake.bad")]
    assert violations(edges) == ["bad.py:2: seg.lake imports ml.train (ml)"]
