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


def test_a_data_directory_deployment_file_overrides_settings(tmp_path):
    from seg import config

    root = tmp_path / "data"
    config.write_deployment(root, {"reporting_currency": "usd", "contract_overlay": "seg/generate/contract_overlay.yml"}, "")
    settings = config.load(root)
    assert settings.reporting_currency == "USD"
    assert settings.contract_overlay == config.REPO_ROOT / "seg" / "generate" / "contract_overlay.yml"
    assert config.load(tmp_path / "other").reporting_currency is None  # another deployment is not affected


def test_an_unknown_deployment_setting_is_an_error(tmp_path):
    import pytest

    from seg import config

    root = tmp_path / "data"
    config.write_deployment(root, {"reporting_curency": "USD"}, "")
    with pytest.raises(ValueError, match="unknown setting deployment.reporting_curency"):
        config.load(root)
