"""One run at a time per data directory: `seg run`, `seg triggers run` and `seg land` take <data>/run.lock.

Airflow's dag.test() ignores pools and max_active_runs, so two commands on one data directory could interleave:
one run's marts published after another run's gate, two landings racing on the same temporary file. The lock is an
OS file lock (fcntl), released when the process ends, even when it is killed; the file records who holds it, so a
second command waits a bounded time and then says which command holds the directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from seg.core.config import Settings


class DataDirectoryBusy(RuntimeError):
    """Another command holds the data directory longer than the wait allows; the message names it."""


@contextmanager
def holding(settings: Settings, command: str, timeout_s: float | None = None, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the data directory's run lock for the block, waiting up to `timeout_s` (default
    warehouse.lock_timeout_s) for another command to finish."""
    path = settings.paths.run_lock
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = settings.warehouse.lock_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout
    fh = open(path, "a+")  # noqa: SIM115 - held open for the whole block: the lock lives with the descriptor
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DataDirectoryBusy(
                        f"{settings.paths.root} is in use by another command ({_holder(path)}) for more than "
                        f"{timeout:g} s: wait for it to finish, or use another SEG_DATA_DIR") from None
                if not waited:
                    print(f"waiting for another command on {settings.paths.root} ({_holder(path)})", file=sys.stderr)
                    waited = True
                time.sleep(poll_s)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "command": command}))
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


def _holder(path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "unknown"
    return f"pid {info.get('pid', '?')}: {info.get('command', '?')}"
