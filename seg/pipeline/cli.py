"""The `seg` command: a thin face over the package's functions (the DAG tasks are another).

    seg generate --customers N --days D --end YYYY-MM-DD --seed S [--drift-from DATE] [--fault SRC:KIND:DATE ...]
                 [--profile NAME]
    seg import FILE --mapping MAPPING.yml [--date YYYY-MM-DD]
    seg land [--date YYYY-MM-DD]          land incoming files without Airflow (debugging)
    seg run --date YYYY-MM-DD [--days N]  run the daily DAG through Airflow for DATE (or N days ending at DATE)
    seg run --from A --to B [--every N]   replay history: one run every N days from A, ending on B
    seg summary                           what the data directory holds: landing, marts, segments, where to look
    seg contract-docs                     print the data contract as Markdown (docs/data_contract.md)
    seg ui                                Airflow UI + MLflow UI on localhost
    seg bench                             benchmark (see `seg bench --help`)
    seg explain CUSTOMER_ID               why a customer is in their segment (since when, closest features)
    seg triggers run --at YYYY-MM-DDTHH:MM  one trigger micro-batch through Airflow (`seg triggers --help`)

All commands work on the data directory SEG_DATA_DIR (default ./data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

from seg.core import config


def _scales(value: str) -> str:
    try:
        counts = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated customer counts: {value!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"customer counts must be positive: {value!r}")
    return value


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def cmd_generate(args) -> int:
    from seg.generate import run

    settings = config.load()
    start = time.monotonic()
    summary = run(settings.paths, customers=args.customers, days=args.days, end=args.end, seed=args.seed,
                  drift_from=args.drift_from, faults=args.fault or [], profile=args.profile)
    print(json.dumps(summary, indent=2, default=str))
    print(f"generated into {settings.paths.incoming} in {time.monotonic() - start:.1f} s (truth: {settings.paths.truth})")
    return 0


def cmd_import(args) -> int:
    from seg.lake.importer import MappingError, run_import

    settings = config.load()
    try:
        summary = run_import(settings.paths, args.file, args.mapping, args.date)
    except MappingError as exc:
        print(f"seg import: {exc}\nnothing was written.", file=sys.stderr)
        return 2
    read = summary.pop("_input", None)
    if read:
        line = f"input: {read['lines']:,} lines: {read['rows']:,} read, {read['rejected']:,} rejected"
        if read["rejected"]:
            reasons = ", ".join(f"{reason} {n}" for reason, n in (read.get("reasons") or {}).items())
            line += f" ({reasons}) -> kept in {read['rejects_file']}"
        print(line)
    for source, info in summary.items():
        print(f"{source}: {info['rows']:,} rows -> {info['file']}")
    print(f"land them with: seg run --date {args.date}")
    return 0


def cmd_land(args) -> int:
    from seg.lake.landing import land_all
    from seg.pipeline import run_lock

    settings = config.load()
    with run_lock.holding(settings, f"seg land --date {args.date}"):
        summaries = land_all(settings, args.date)
    for summary in summaries:
        print(f"{summary['source']:<18} files {summary['files_seen']:>4}  in {summary['rows_in']:>10}  "
              f"landed {summary['rows_landed']:>10}  quarantined {summary['rows_quarantined']:>8}  "
              f"rejected files {summary['files_rejected']}  duplicates {summary['files_duplicate']}")
    return 0


def cmd_run(args) -> int:
    from seg.pipeline import airflow as orchestrate
    from seg.transform import dbt

    settings = config.load()
    if args.verbose:
        # dbt runs inside the DAG's tasks, which dag.test() runs in this process: they read the flag from here
        os.environ[dbt.VERBOSE_ENV] = "1"
    try:
        days = run_dates(args)
        for day in days:
            orchestrate.check_date(settings, day)
    except (ValueError, orchestrate.RunRefused) as exc:
        print(f"seg run: {exc}", file=sys.stderr)
        return 2
    if len(days) > 1:
        print(f"seg run: {len(days)} runs, {days[0]} .. {days[-1]}")
    from seg.pipeline import run_lock

    try:
        with run_lock.holding(settings, f"seg run {days[0]} .. {days[-1]}"):  # the whole replay: nothing interleaves
            for day in days:
                code = orchestrate.run(settings, day, log_level=None if args.verbose else "WARNING")
                if code:
                    print(f"seg run: the DAG failed for {day}; later dates were not run", file=sys.stderr)
                    return code
    except run_lock.DataDirectoryBusy as exc:
        print(f"seg run: {exc}", file=sys.stderr)
        return 1
    return 0


def run_dates(args) -> list[dt.date]:
    """The as-of dates of `seg run`, oldest first: --date D [--days N], or --from A --to B [--every N] (A, A+N, ...,
    and always B itself, so the replay ends on the date asked for)."""
    if args.date is not None and (args.start is not None or args.end is not None):
        raise ValueError("give either --date (with --days) or --from/--to (with --every), not both")
    if args.date is not None:
        if args.every is not None:
            raise ValueError("--every goes with --from/--to; with --date use --days")
        if args.days < 1:
            raise ValueError(f"--days must be at least 1 (got {args.days})")
        return [args.date - dt.timedelta(days=n) for n in range(args.days - 1, -1, -1)]
    if args.start is None or args.end is None:
        raise ValueError("give --date D, or both --from A and --to B")
    if args.days != 1:
        raise ValueError("--days goes with --date; with --from/--to use --every")
    every = 1 if args.every is None else args.every
    if every < 1:
        raise ValueError(f"--every must be at least 1 (got {every})")
    if args.end < args.start:
        raise ValueError(f"--to {args.end} is before --from {args.start}")
    days = [args.start + dt.timedelta(days=n) for n in range(0, (args.end - args.start).days + 1, every)]
    if days[-1] != args.end:
        days.append(args.end)
    return days


def cmd_summary(args) -> int:
    from seg.pipeline.summary import print_summary

    print_summary(config.load())
    return 0


def cmd_contract_docs(args) -> int:
    from seg.core.contract.docs import render_markdown

    sys.stdout.write(render_markdown())
    return 0


def cmd_ui(args) -> int:
    from seg.pipeline.ui import serve

    return serve(config.load(), airflow_port=args.airflow_port, mlflow_port=args.mlflow_port, docs_port=args.docs_port)


def cmd_bench(args) -> int:
    from seg.bench.scales import main as bench_main

    return bench_main(args)


def cmd_explain(args) -> int:
    from ml.explain import explain, render

    try:
        result = explain(config.load(), args.customer_id)
    except LookupError as exc:
        print(f"seg explain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str) if args.json else render(result))
    return 0


def cmd_triggers(args) -> int:
    from seg.pipeline import triggers_cli

    return triggers_cli.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write synthetic multi-source data into incoming/ (truth into truth/)")
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--end", type=_date, required=True, help="last day generated (YYYY-MM-DD)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--drift-from", type=_date, default=None, help="shift the persona mix from this day on")
    p.add_argument("--fault", action="append", metavar="SOURCE:KIND:YYYY-MM-DD",
                   help="inject a fault (repeatable); KIND: duplicate_file, truncated_file, missing_column, "
                        "unknown_event_type, null_ids, negative_amounts, future_timestamps, wrong_units, volume_drop")
    p.add_argument("--profile", default="default",
                   help="generator profile: default (personas.yml) or a second world of seg/generate/profiles/ "
                        "(five_groups)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("import", help="turn your own export into contract files in incoming/ via a mapping YAML")
    p.add_argument("file")
    p.add_argument("--mapping", required=True)
    p.add_argument("--date", type=_date, default=dt.date.today(), help="ingest date of the import (default today)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("land", help="land incoming files dated on or before DATE (no Airflow)")
    p.add_argument("--date", type=_date, default=dt.date.today())
    p.set_defaults(func=cmd_land)

    p = sub.add_parser("run", help="run the daily DAG through Airflow for DATE, or replay --from A --to B")
    p.add_argument("--date", type=_date, default=None, help="the as-of date (YYYY-MM-DD)")
    p.add_argument("--days", type=int, default=1, help="run N consecutive days ending at DATE")
    p.add_argument("--from", dest="start", type=_date, default=None,
                   help="replay history: first as-of date (with --to)")
    p.add_argument("--to", dest="end", type=_date, default=None, help="replay history: last as-of date (always run)")
    p.add_argument("--every", type=int, default=None,
                   help="with --from/--to: one run every N days (e.g. 7 for weekly segment history; default 1)")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Airflow's INFO task logs and dbt's per-node output (default: warnings and errors)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("summary", help="print what the data directory holds and where to look next")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("contract-docs", help="print the data contract as Markdown")
    p.set_defaults(func=cmd_contract_docs)

    p = sub.add_parser("ui", help="serve the Airflow UI, the MLflow UI and the Data Docs on localhost")
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.add_argument("--docs-port", type=int, default=8081)
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser("bench", help="benchmark the pipeline at several scales; prints a table, writes JSON")
    p.add_argument("--scales", type=_scales, default="100000,1000000", help="comma-separated customer counts")
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--out", default="bench_results/bench.json")
    p.add_argument("--dbt-compare-max", type=int, default=100_000,
                   help="time dbt against hand-written SQL at scales up to this many customers (it rebuilds the warehouse)")
    p.add_argument("--no-triggers", dest="triggers", action="store_false", help="skip the trigger micro-batch and Redis figures")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("explain", help="why a customer is in their segment: since when, closest features")
    p.add_argument("customer_id", help="CRM customer id (or person id)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("triggers", help="behavioural trigger segments: run a micro-batch (see `seg triggers --help`)")
    from seg.pipeline.triggers_cli import add_arguments as add_trigger_arguments

    add_trigger_arguments(p)
    p.set_defaults(func=cmd_triggers)
    return parser


# Errors that are the user's to fix (a bad argument or setting, a missing warehouse, a busy data directory): one
# line naming the problem instead of a traceback. SEG_DEBUG=1 shows the traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        if os.environ.get("SEG_DEBUG"):
            raise
        print(f"seg {args.command}: {exc}", file=sys.stderr)
        print("(SEG_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
