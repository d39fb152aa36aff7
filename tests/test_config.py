"""Where the data directory comes from."""

from __future__ import annotations

from pathlib import Path

from seg import config


def test_an_empty_seg_data_dir_means_the_default_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEG_DATA_DIR", "")
    assert config.data_dir() == (tmp_path / "data").resolve()
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "elsewhere"))
    assert config.data_dir() == Path(tmp_path / "elsewhere").resolve()
