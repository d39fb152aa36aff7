import datetime as dt

import pytest

from seg.triggers import definitions


def test_shipped_definitions_cover_the_five_triggers_with_every_field():
    cfg = definitions.load()
    assert {t.kind for t in cfg.triggers.values()} == set(definitions.KINDS)
    cart = cfg.triggers["cart_abandonment"]
    assert cart.segment_name == "High intent, at risk"
    assert cart.window == dt.timedelta(hours=24) and cart.priority == 1 and cart.exclusion == "order"
    assert cfg.triggers["repeated_product_view"].threshold == 3
    assert cfg.schedule == "*/15 * * * *"


def test_durations_parse_and_bad_values_are_refused():
    assert definitions.parse_duration("30m") == dt.timedelta(minutes=30)
    assert definitions.parse_duration("3d") == dt.timedelta(days=3)
    with pytest.raises(ValueError, match="not a duration"):
        definitions.parse_duration("soon")


def test_a_definition_with_an_unknown_kind_or_too_short_horizon_is_refused(tmp_path):
    bad = tmp_path / "t.yml"
    bad.write_text("triggers:\n  x: {kind: teleport, segment_name: X, priority: 1, expiry: 1d}\n")
    with pytest.raises(ValueError, match="trigger x: unknown kind"):
        definitions.load(bad)
    bad.write_text("horizon: 1d\ntriggers:\n  c: {kind: cart_abandonment, segment_name: C, priority: 1, window: 24h, expiry: 2d}\n")
    with pytest.raises(ValueError, match="horizon"):
        definitions.load(bad)


def test_the_pool_is_a_setting_and_a_leftover_pool_key_is_ignored_with_a_warning(tmp_path):
    assert not hasattr(definitions.load(), "warehouse_pool")  # airflow.warehouse_pool in config/settings.yml
    legacy = tmp_path / "t.yml"
    legacy.write_text(
        "warehouse_pool: another_pool\n"
        "triggers:\n  c: {kind: cart_abandonment, segment_name: C, priority: 1, window: 24h, expiry: 2d}\n"
    )
    with pytest.warns(UserWarning, match="warehouse_pool is ignored"):
        cfg = definitions.load(legacy)
    assert list(cfg.triggers) == ["c"]


def test_a_session_gap_in_the_definitions_is_refused(tmp_path):
    """The gap has one home, settings sessions.gap_minutes (dbt's sessions use it too)."""
    assert not hasattr(definitions.load(), "session_gap")
    old = tmp_path / "t.yml"
    old.write_text(
        "session_gap: 20m\n"
        "triggers:\n  c: {kind: cart_abandonment, segment_name: C, priority: 1, window: 24h, expiry: 2d}\n"
    )
    with pytest.raises(ValueError, match="session_gap is not a trigger setting.*sessions.gap_minutes"):
        definitions.load(old)


def test_a_lock_wait_in_the_definitions_is_refused(tmp_path):
    """The wait for the warehouse lock has one home, settings warehouse.lock_timeout_s (every command uses it)."""
    assert not hasattr(definitions.load(), "lock_timeout_s")
    old = tmp_path / "t.yml"
    old.write_text(
        "lock_timeout_s: 5\n"
        "triggers:\n  c: {kind: cart_abandonment, segment_name: C, priority: 1, window: 24h, expiry: 2d}\n"
    )
    with pytest.raises(ValueError, match="lock_timeout_s is not a trigger setting.*warehouse.lock_timeout_s"):
        definitions.load(old)
