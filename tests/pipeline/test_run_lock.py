"""One command at a time per data directory: a second `seg run` waits a bounded time, then names the holder.

dag.test() ignores Airflow's pools and max_active_runs, so without this lock two runs on one data directory could
publish marts the other run's gate never saw."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from seg.core import config
from seg.pipeline import cli, run_lock

HOLD = """
import sys, time
from seg.core import config
from seg.pipeline import run_lock
with run_lock.holding(config.load(sys.argv[1]), "seg run 2026-11-02 .. 2026-11-02 (test holder)"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(root, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _impatient_settings(tmp_path, monkeypatch, seconds: float) -> None:
    raw = yaml.safe_load(config.DEFAULT_SETTINGS.read_text())
    raw["warehouse"]["lock_timeout_s"] = seconds
    path = tmp_path / "settings.yml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SEG_CONFIG", str(path))


def test_a_second_run_on_a_busy_data_directory_is_refused_naming_the_holder(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    monkeypatch.setenv("SEG_DATA_DIR", str(root))
    _impatient_settings(tmp_path, monkeypatch, 0.5)
    holder = _hold(root, 5)
    try:
        code = cli.main(["run", "--date", "2026-11-02"])
    finally:
        holder.wait(timeout=30)
    err = capsys.readouterr().err
    assert code == 1
    assert f"pid {holder.pid}: seg run 2026-11-02 .. 2026-11-02 (test holder)" in err
    assert "use another SEG_DATA_DIR" in err
    assert not (root / "airflow").exists()  # nothing ran


def test_the_lock_is_waited_for_then_taken(tmp_path):
    settings = config.load(tmp_path / "data")
    holder = _hold(settings.paths.root, 2)
    try:
        start = time.monotonic()
        with run_lock.holding(settings, "second", timeout_s=60, poll_s=0.2):
            waited = time.monotonic() - start
    finally:
        holder.wait(timeout=30)
    assert waited > 1


def test_a_killed_holder_releases_the_directory(tmp_path):
    settings = config.load(tmp_path / "data")
    holder = _hold(settings.paths.root, 60)
    holder.kill()
    holder.wait(timeout=30)
    with run_lock.holding(settings, "after a crash", timeout_s=0.5):
        pass
    with pytest.raises(run_lock.DataDirectoryBusy), run_lock.holding(settings, "outer", timeout_s=0.5):
        # a second, independent open of the lock file in this process is refused too (flock is per descriptor)
        with run_lock.holding(settings, "inner", timeout_s=0.3, poll_s=0.1):
            pass
