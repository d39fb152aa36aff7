"""`seg triggers ...`: the trigger micro-batch from the command line (argparse only; work is imported lazily).

    seg triggers run --at 2026-11-02T10:15 [--no-airflow]   one micro-batch (through Airflow's dag.test by default)
    seg triggers show [--trigger NAME] [--limit N]          current memberships
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

# the DAG in dags/segmentation_triggers.py, run through Airflow's dag.test like `seg run`
TRIGGERS_DAG_ID = "segmentation_triggers"


def _when(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time (YYYY-MM-DDTHH:MM, UTC): {value!r}") from None
    return when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="triggers_command", required=True)
    p = sub.add_parser("run", help="one micro-batch: land the day's files, evaluate triggers, publish")
    p.add_argument("--at", type=_when, required=True, help="evaluation time (UTC), the run's data_interval_end")
    p.add_argument("--no-airflow", action="store_true", help="call seg.pipeline.microbatch.run directly")
    p = sub.add_parser("show", help="print current trigger memberships")
    p.add_argument("--trigger", default=None)
    p.add_argument("--limit", type=int, default=20)


def main(args) -> int:
    from seg.core import config

    settings = config.load()
    if args.triggers_command == "run":
        from seg.pipeline import run_lock

        try:
            with run_lock.holding(settings, f"seg triggers run --at {args.at.isoformat()}"):
                if args.no_airflow:
                    from seg.pipeline.microbatch import run

                    print(json.dumps(run(settings, args.at), indent=2, default=str))
                    return 0
                from seg.pipeline import airflow

                return airflow.run(settings, args.at, dag_id=TRIGGERS_DAG_ID)
        except run_lock.DataDirectoryBusy as exc:
            print(f"seg triggers run: {exc}", file=sys.stderr)
            return 1
    if args.triggers_command == "show":
        from seg.core.warehouse import connect, table_exists
        from seg.triggers.tables import CURRENT

        with connect(settings, read_only=True) as con:
            if not table_exists(con, *CURRENT.split(".")):
                raise RuntimeError(f"{CURRENT} does not exist in {settings.paths.warehouse} yet: no trigger "
                                   "micro-batch has run; run `seg triggers run --at YYYY-MM-DDTHH:MM` first")
            where = "where trigger = ?" if args.trigger else ""
            rows = con.execute(f"select trigger, member_key, entered_at, expires_at, evidence from {CURRENT} "
                               f"{where} order by entered_at desc limit {int(args.limit)}",
                               [args.trigger] if args.trigger else []).fetchall()
        for row in rows:
            print(*row, sep="\t")
        return 0
    print(f"unknown triggers command {args.triggers_command}", file=sys.stderr)
    return 2
