"""Bad arguments and missing state get one line naming the problem, not a traceback (exit code 2)."""

from __future__ import annotations

import pytest

from seg.pipeline import cli


@pytest.mark.parametrize(("argv", "message"), [
    (["explain", "C123"], "seg explain: warehouse"),
    (["triggers", "show"], "seg triggers: warehouse"),
    (["generate", "--customers", "0", "--days", "1", "--end", "2026-11-02"], "customers must be a positive integer"),
    (["generate", "--customers", "10", "--days", "0", "--end", "2026-11-02"], "days must be a positive integer"),
])
def test_a_user_error_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SEG_DEBUG", raising=False)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_triggers_show_before_the_first_micro_batch_says_what_to_run(tmp_path, monkeypatch, capsys):
    """A warehouse the daily run made, but no trigger run yet: one line saying what to run (#17: it was a DuckDB
    traceback)."""
    import duckdb

    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SEG_DEBUG", raising=False)
    (tmp_path / "data").mkdir()
    duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb")).execute("create schema marts").close()
    assert cli.main(["triggers", "show"]) == 2
    err = capsys.readouterr().err
    assert "no trigger micro-batch has run; run `seg triggers run --at" in err and "Traceback" not in err


def test_bench_scales_are_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["bench", "--scales", "abc"])
    assert raised.value.code == 2
    assert "not comma-separated customer counts: 'abc'" in capsys.readouterr().err


def test_seg_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SEG_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(["explain", "C123"])
