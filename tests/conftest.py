"""Shared fixtures: every test gets its own data directory (SEG_DATA_DIR) so nothing leaks between tests."""

from __future__ import annotations

import pytest

from seg import config


@pytest.fixture
def settings(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("SEG_DATA_DIR", str(root))
    return config.load(root)
