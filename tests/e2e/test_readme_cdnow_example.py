"""The README's CDNOW example, run as written: the public purchase log in, segments for every customer out.

The commands are read from the README's code block (so the README cannot drift from what works); the data file
is the one the `lifetimes` wheel ships (a pinned, test-only dependency: nothing downloads here). The expected
figures are computed from the file itself in plain Python, not copied from an earlier run.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from seg.core import config

from .conftest import query, seg_run

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Importing your own data", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines() if line.startswith("seg ")]


def cdnow_master() -> Path:
    spec = importlib.util.find_spec("lifetimes")  # located, not imported (it does not import under pandas 3)
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"


def file_totals(path: Path) -> tuple[int, int, Decimal]:
    customers, purchases, dollars = set(), 0, Decimal("0")
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if fields:
            customers.add(fields[0])
            purchases += 1
            dollars += Decimal(fields[3])
    return len(customers), purchases, dollars


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cdnow")
    shutil.copy(cdnow_master(), tmp / "CDNOW_master.txt")
    root = tmp / "data"
    procs = []
    for args in readme_commands():
        args = [str(tmp / "CDNOW_master.txt") if a == "/tmp/CDNOW_master.txt" else
                str(REPO / a) if a.startswith("examples/") else a for a in args]
        proc = seg_run(root, *args)
        assert proc.returncode == 0, " ".join(args) + "\n" + proc.stdout[-4000:] + proc.stderr[-4000:]
        procs.append(proc)
    return config.load(root), procs, file_totals(tmp / "CDNOW_master.txt")


def test_the_readme_runs_import_then_a_1998_run(ran):
    _, procs, _ = ran
    assert [p.args[3] for p in procs] == ["import", "run"]
    assert "SUCCESS" in procs[1].stdout and "train" in procs[1].stdout  # a 1998 run ran its tasks


def test_every_purchase_lands_and_revenue_in_usd_equals_the_files_total(ran):
    settings, _, (customers, purchases, dollars) = ran
    assert (customers, purchases) == (23_570, 69_659)  # the file as published
    assert query(settings, "select count(*), count(distinct currency), any_value(reporting_currency), "
                           "sum(amount_reporting) from marts.orders") == [(purchases, 1, "USD", dollars)]
    assert query(settings, "select sum(monetary) from marts.customer_rfm") == [(dollars,)]
    assert not list(settings.paths.quarantine.rglob("*.parquet"))


def test_every_cdnow_customer_gets_a_segment(ran):
    settings, _, (customers, _, _) = ran
    assert query(settings, "select count(*) from marts.customers") == [(customers,)]
    for lens in settings.lenses:
        (assigned, people, segments), = query(
            settings, "select count(*), count(distinct person_id), count(distinct segment_id) "
                      "from marts.customer_segments where segmentation = ?", [lens])
        assert assigned == people == customers and segments >= 2, lens
    # customer ids are the file's own (00001 ...), not reshaped to fit a format
    assert query(settings, "select count(*) from marts.orders where customer_id = '00001'") == [(1,)]
