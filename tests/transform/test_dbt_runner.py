"""dbt's console verbosity (seg/transform/dbt.py): quiet by default, per-node output with SEG_DBT_VERBOSE / `seg run --verbose`.

No dbt build here (tests/dbt has those): the arguments, as dbt itself parses them, and the plumbing.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from seg.pipeline import cli
from seg.transform import dbt as seg_dbt


def _flags(settings, verbose: bool):
    """dbt's own reading of the arguments seg.transform.dbt passes (no project is run)."""
    from dbt.cli.flags import Flags, args_to_context

    return Flags(args_to_context(["parse", *seg_dbt._common_args(settings, verbose)]))


def test_the_console_is_quiet_by_default_and_the_log_file_keeps_debug(settings):
    flags = _flags(settings, verbose=False)
    assert (flags.LOG_LEVEL, flags.LOG_LEVEL_FILE) == ("warn", "debug")
    assert str(flags.LOG_PATH) == str(seg_dbt.dbt_paths(settings)["logs"])


def test_verbose_restores_the_per_node_console_output(settings):
    flags = _flags(settings, verbose=True)
    assert (flags.LOG_LEVEL, flags.LOG_LEVEL_FILE) == ("info", "debug")


@pytest.mark.parametrize(("value", "verbose"), [(None, False), ("", False), ("0", False), ("1", True), ("true", True)])
def test_verbose_comes_from_the_environment(monkeypatch, value, verbose):
    if value is None:
        monkeypatch.delenv(seg_dbt.VERBOSE_ENV, raising=False)
    else:
        monkeypatch.setenv(seg_dbt.VERBOSE_ENV, value)
    assert seg_dbt.verbose_from_env() is verbose


def _event(name: str, msg: str):
    return SimpleNamespace(info=SimpleNamespace(name=name, msg=msg))


def test_a_quiet_console_still_gets_the_closing_stats_line(capsys):
    callback = seg_dbt._stats_line_printer("build")
    callback(_event("LogModelResult", "1 of 9 OK created sql view model staging.stg_lake__orders"))
    callback(_event("StatsLine", "Done. PASS=9 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=9"))
    assert capsys.readouterr().out == "dbt build: Done. PASS=9 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=9\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_seg_run_verbose_reaches_dbt_through_the_environment(settings, monkeypatch, verbose):
    from seg.pipeline import airflow as orchestrate

    # cmd_run sets the variable for the rest of its process; monkeypatch restores the original afterwards
    monkeypatch.setenv(seg_dbt.VERBOSE_ENV, "")
    seen = []

    def fake_run(settings, day, log_level=None):
        seen.append((seg_dbt.verbose_from_env(), log_level))  # what the DAG's dbt task would read
        return 0

    monkeypatch.setattr(orchestrate, "run", fake_run)
    args = cli.build_parser().parse_args(["run", "--date", "2025-03-31", *(["--verbose"] if verbose else [])])
    assert args.func(args) == 0
    assert seen == [(verbose, None if verbose else "WARNING")]
