"""`seg run` argument handling and the outcome rule (a run in which no task ran is a failure)."""

import datetime as dt

import pytest

from seg.core import config
from seg.pipeline import airflow as orchestrate
from seg.pipeline import cli
from seg.pipeline.airflow import StageResult


def dates(*argv):
    return cli.run_dates(cli.build_parser().parse_args(["run", *argv]))


def test_date_and_days():
    assert dates("--date", "1997-01-03", "--days", "3") == [dt.date(1997, 1, 1), dt.date(1997, 1, 2), dt.date(1997, 1, 3)]


def test_replay_every_n_days_ends_on_the_last_date():
    got = dates("--from", "1997-01-01", "--to", "1997-01-20", "--every", "7")
    assert got == [dt.date(1997, 1, 1), dt.date(1997, 1, 8), dt.date(1997, 1, 15), dt.date(1997, 1, 20)]
    assert dates("--from", "1997-01-01", "--to", "1997-01-03") == [dt.date(1997, 1, d) for d in (1, 2, 3)]


@pytest.mark.parametrize("argv", [
    ["--date", "2026-01-01", "--days", "0"],
    ["--date", "2026-01-01", "--days", "-2"],
    ["--from", "2026-01-05", "--to", "2026-01-01"],
    ["--from", "2026-01-01", "--to", "2026-01-05", "--every", "0"],
    ["--from", "2026-01-01"],
    [],
    ["--date", "2026-01-01", "--from", "2026-01-01", "--to", "2026-01-02"],
])
def test_bad_arguments_are_errors_not_empty_runs(argv):
    with pytest.raises(ValueError):
        dates(*argv)


def test_cli_exits_2_with_a_message_for_zero_days(capsys):
    assert cli.main(["run", "--date", "2026-01-01", "--days", "0"]) == 2
    assert "--days must be at least 1" in capsys.readouterr().err


def test_a_date_before_the_earliest_date_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path))
    first = orchestrate.earliest_date(config.load())
    day = first - dt.timedelta(days=1)
    assert cli.main(["run", "--date", day.isoformat()]) == 2
    assert "earliest_date" in capsys.readouterr().err
    assert not (tmp_path / "airflow").exists()  # refused before Airflow was touched


def test_the_earliest_date_allows_old_history():
    assert orchestrate.earliest_date(config.load()) <= dt.date(1990, 1, 1)


def test_a_run_in_which_no_task_ran_fails():
    assert orchestrate.outcome("success", []) == (orchestrate.NOTHING_RAN, 1)
    skipped_only = [StageResult("train", "skipped", None)]
    assert orchestrate.outcome("success", skipped_only)[1] == 1
    ran = [StageResult("land_orders", "success", 1.0), StageResult("train", "skipped", None)]
    assert orchestrate.outcome("success", ran) == ("success", 0)
    assert orchestrate.outcome("failed", ran) == ("failed", 1)
