"""A connection meeting the DuckDB lock of another process (the other DAG, a second command) waits for it a bounded
time (warehouse.lock_timeout_s, for every command), then fails naming the file."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from seg.core import config
from seg.core.warehouse import WarehouseLocked, connect, connect_waiting

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
        with pytest.raises(WarehouseLocked, match="held by another process .* more than 0.5 s"):
            connect_waiting(settings, timeout_s=0.5)
        start = time.monotonic()
        con = connect_waiting(settings, timeout_s=60)
        try:
            assert con.execute("select current_setting('threads')").fetchone()[0] == settings.warehouse.threads
        finally:
            con.close()
        assert time.monotonic() - start > 1  # it waited for the other process
    finally:
        holder.wait(timeout=30)


def test_every_warehouse_connection_waits_for_the_lock_a_bounded_time(tmp_path):
    settings = config.load(tmp_path / "data").with_overrides({"warehouse": {"lock_timeout_s": 60}})
    holder = _hold_lock(settings, 3)
    try:
        start = time.monotonic()
        with connect(settings) as con:  # the stages' connection, not only the micro-batch's
            con.execute("create table waited as select 1 as x")
        assert time.monotonic() - start > 1
    finally:
        holder.wait(timeout=30)
    impatient = settings.with_overrides({"warehouse": {"lock_timeout_s": 0.5}})
    holder = _hold_lock(settings, 3)
    try:
        with pytest.raises(WarehouseLocked, match="warehouse.lock_timeout_s"), connect(impatient):
            pass
    finally:
        holder.wait(timeout=30)
