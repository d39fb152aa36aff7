"""The demo's parameters as the Makefile's `make demo` has them (customers, days, end date, seed, DAG days), so tests
about the demo follow the Makefile instead of copying its numbers."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from seg.core.paths import REPO_ROOT


@dataclass(frozen=True)
class Demo:
    customers: int
    days: int  # generated days
    end: dt.date
    seed: int
    run_days: int  # days the DAG runs, ending on `end`

    @property
    def first_run_day(self) -> dt.date:
        return self.end - dt.timedelta(days=self.run_days - 1)


def demo() -> Demo:
    text = (REPO_ROOT / "Makefile").read_text()
    made = dict(re.findall(r"^(DEMO_[A-Z]+) \?= (\S+)$", text, re.MULTILINE))
    line = next(line for line in text.splitlines() if " generate " in line and "DEMO_CUSTOMERS" in line)
    return Demo(customers=int(made["DEMO_CUSTOMERS"]), days=int(re.search(r"--days (\d+)", line).group(1)),
                end=dt.date.fromisoformat(made["DEMO_END"]), seed=int(re.search(r"--seed (\d+)", line).group(1)),
                run_days=int(made["DEMO_DAYS"]))
