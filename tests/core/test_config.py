"""Where the data directory comes from."""

from __future__ import annotations

from pathlib import Path

from seg.core import config


def test_an_empty_seg_data_dir_means_the_default_not_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEG_DATA_DIR", "")
    assert config.data_dir() == (tmp_path / "data").resolve()
    monkeypatch.setenv("SEG_DATA_DIR", str(tmp_path / "elsewhere"))
    assert config.data_dir() == Path(tmp_path / "elsewhere").resolve()


def test_a_data_directory_deployment_file_overrides_settings(tmp_path):
    from seg.core import config

    root = tmp_path / "data"
    config.write_deployment(root, {"reporting_currency": "usd", "contract_overlay": "seg/generate/contract_overlay.yml"}, "")
    settings = config.load(root)
    assert settings.reporting_currency == "USD"
    assert settings.contract_overlay == config.REPO_ROOT / "seg" / "generate" / "contract_overlay.yml"
    assert config.load(tmp_path / "other").reporting_currency is None  # another deployment is not affected


def test_an_unknown_deployment_setting_is_an_error(tmp_path):
    import pytest

    from seg.core import config

    root = tmp_path / "data"
    config.write_deployment(root, {"reporting_curency": "USD"}, "")
    with pytest.raises(ValueError, match="unknown setting deployment.reporting_curency"):
        config.load(root)


def test_settings_are_typed_and_frozen(tmp_path):
    import dataclasses
    import datetime as dt

    import pytest

    settings = config.load(tmp_path)
    assert isinstance(settings.ml.k_min, int) and isinstance(settings.ml.features, tuple)
    assert settings.airflow.earliest_date == dt.date(1970, 1, 1)
    assert settings.ml.selection.min_stability == pytest.approx(0.8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.ml.k_min = 1
    with pytest.raises(TypeError):
        settings.ml.candidates["ward"]["sample_size"] = 1  # read-only mappings too


def test_overrides_give_new_settings_and_leave_the_original(tmp_path):
    settings = config.load(tmp_path)
    smaller = settings.with_overrides({"ml": {"k_min": 2, "selection": {"min_stability": 0.5}}})
    assert (smaller.ml.k_min, smaller.ml.selection.min_stability) == (2, 0.5)
    assert settings.ml.k_min == 3 and smaller.ml.k_max == settings.ml.k_max


def _settings_file(tmp_path, monkeypatch, edit) -> None:
    import yaml

    raw = yaml.safe_load(config.DEFAULT_SETTINGS.read_text())
    edit(raw)
    path = tmp_path / "settings.yml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SEG_CONFIG", str(path))


def test_a_settings_file_with_an_unknown_key_names_it(tmp_path, monkeypatch):
    import pytest

    _settings_file(tmp_path, monkeypatch, lambda raw: raw["ml"].update(k_minimum=2))
    with pytest.raises(config.SettingsError, match=r"ml: unknown setting\(s\) k_minimum"):
        config.load(tmp_path / "data")


def test_a_settings_file_missing_a_key_names_it(tmp_path, monkeypatch):
    import pytest

    _settings_file(tmp_path, monkeypatch, lambda raw: raw["drift"].pop("psi_act"))
    with pytest.raises(config.SettingsError, match=r"drift.psi_act: missing"):
        config.load(tmp_path / "data")


def test_a_value_of_the_wrong_type_names_the_key(tmp_path, monkeypatch):
    import pytest

    _settings_file(tmp_path, monkeypatch, lambda raw: raw["ml"].update(k_max="ten"))
    with pytest.raises(config.SettingsError, match=r"ml.k_max: expected an integer, got 'ten'"):
        config.load(tmp_path / "data")
    _settings_file(tmp_path, monkeypatch, lambda raw: raw["airflow"].update(earliest_date="01/01/1970"))
    with pytest.raises(config.SettingsError, match=r"airflow.earliest_date: not a date"):
        config.load(tmp_path / "data")


def test_settings_survive_pickling_for_subprocesses(tmp_path):
    import pickle

    settings = config.load(tmp_path).with_overrides({"ml": {"k_min": 2}})
    again = pickle.loads(pickle.dumps(settings))
    assert again.ml == settings.ml and again.paths == settings.paths


# --- the deployment's key for hashing personal identifiers (SEG_PII_KEY, else one per data directory) -----------

def test_the_pii_key_is_made_once_per_data_directory_readable_by_its_owner_only(tmp_path, monkeypatch):
    import stat

    monkeypatch.delenv("SEG_PII_KEY", raising=False)
    key = config.load(tmp_path / "data").pii_key
    assert len(key) >= 32
    assert config.load(tmp_path / "data").pii_key == key  # reruns hash alike
    assert config.load(tmp_path / "other").pii_key != key  # two deployments never share a key
    stored = tmp_path / "data" / "secrets" / "pii_key"
    assert stored.read_text().strip() == key
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert key not in repr(config.load(tmp_path / "data"))


def test_seg_pii_key_is_the_key_on_services_and_leaves_the_data_directory_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("SEG_PII_KEY", "a-service-secret-from-the-vault-0123456789")
    settings = config.load(tmp_path / "data")
    assert settings.pii_key == "a-service-secret-from-the-vault-0123456789"
    assert not (tmp_path / "data" / "secrets").exists()


def test_a_weak_seg_pii_key_is_refused_without_echoing_it(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setenv("SEG_PII_KEY", "hunter2")
    with pytest.raises(config.SettingsError, match="SEG_PII_KEY") as caught:
        config.load(tmp_path / "data").pii_key  # noqa: B018 - the property raises
    assert "hunter2" not in str(caught.value)


def test_a_pii_key_file_others_can_read_is_refused(tmp_path, monkeypatch):
    import pytest

    monkeypatch.delenv("SEG_PII_KEY", raising=False)
    settings = config.load(tmp_path / "data")
    stored = tmp_path / "data" / "secrets" / "pii_key"
    settings.pii_key  # noqa: B018 - made here
    stored.chmod(0o644)
    with pytest.raises(config.SettingsError, match="chmod 600"):
        config.load(tmp_path / "data").pii_key  # noqa: B018 - the property raises
