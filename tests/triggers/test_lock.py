"""A micro-batch meeting the DuckDB lock of another writer (the daily DAG) waits for it
(seg.core.warehouse.connect_waiting with the definitions' lock_timeout_s), and gives up after the timeout."""

from __future__ import annotations

import subprocess
import sys
import time

import duckdb
import pytest

from seg.core import config
from seg.core.warehouse import connect_waiting

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(settings: config.Settings, seconds: float) -> subprocess.Popen:
    settings.paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.paths.warehouse), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_warehouse_is_waited_for_then_opened(tmp_path):
    settings = config.load(tmp_path / "data")
    holder = _hold_lock(settings, 3)
    try:
        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            connect_waiting(settings, timeout_s=0.5, poll_s=0.2)
        start = time.monotonic()
        con = connect_waiting(settings, timeout_s=60, poll_s=0.2)
        try:
            assert con.execute("select current_setting('threads')").fetchone()[0] == settings.warehouse.threads
        finally:
            con.close()
        assert time.monotonic() - start > 1  # it waited for the other process
    finally:
        holder.wait(timeout=30)
