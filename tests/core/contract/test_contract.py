from pathlib import Path

import pytest

from seg.core.contract import SOURCES, load_contract
from seg.core.contract.docs import render_markdown

REPO = Path(__file__).resolve().parents[3]


def test_contract_sources_in_landing_order_with_keys_that_are_columns():
    contract = load_contract()
    assert tuple(contract.sources) == SOURCES
    for source in contract.sources.values():
        assert set(source.primary_key) <= set(source.columns), source.name
        assert all(c in source.columns for c in source.required_columns)
        if source.timestamp:
            assert source.columns[source.timestamp].type == "timestamp"


def test_issue_columns_exist_under_their_names():
    expected = {
        "crm_customers": "customer_id email phone first_name last_name birth_date gender country region city signup_at loyalty_id marketing_opt_in updated_at",
        "orders": "order_id customer_id email ordered_at channel status amount currency",
        "order_items": "order_id line_no sku category quantity unit_price discount",
        "events": "event_id occurred_at anonymous_id customer_id event_type device_type os country page_url product_id category properties",
        "store_visits": "visit_id loyalty_id store_id visited_at dwell_minutes purchase_amount",
        "survey_responses": "response_id customer_id email answered_at question_id answer",
    }
    contract = load_contract()
    for source, columns in expected.items():
        assert set(columns.split()) <= set(contract.sources[source].columns), source


def test_event_taxonomy_covers_the_required_types_and_events_accept_exactly_them():
    contract = load_contract()
    required = {"page_view", "product_view", "search", "add_to_cart", "remove_from_cart", "checkout_started",
                "purchase", "video_play", "scroll_depth", "login"}
    assert required <= set(contract.event_types)
    assert set(contract.sources["events"].columns["event_type"].allowed) == set(contract.event_types)
    assert contract.event_properties("video_play")["video_percent"]["type"] == "integer"


def test_committed_contract_docs_match_the_yaml():
    assert (REPO / "docs" / "data_contract.md").read_text() == render_markdown(), "run: seg contract-docs > docs/data_contract.md"


def test_the_shared_contract_states_meanings_not_one_deployments_formats():
    # identifier formats and "typical" maxima belong to a deployment's overlay; only facts stay
    contract = load_contract()
    for source in contract.sources.values():
        for col in source.columns.values():
            if col.pattern:
                assert col.pattern == "^[A-Z]{3}$", f"{source.name}.{col.name}: only ISO 4217 codes have a format"
            if col.identifier:
                assert col.type == "varchar" and col.allowed is None
    orders = contract.sources["orders"].columns
    assert orders["order_id"].identifier and orders["amount"].min == 0 and orders["amount"].max is None
    assert contract.sources["order_items"].columns["quantity"].max is None
    assert contract.sources["survey_responses"].columns["question_id"].allowed is None


def test_the_generator_overlay_adds_its_formats(tmp_path):
    from seg.generate import DEPLOYMENT

    overlay = REPO / DEPLOYMENT["contract_overlay"]
    contract = load_contract(overlay)
    assert contract.overlay == str(overlay)
    assert contract.sources["orders"].columns["order_id"].pattern == "^O[0-9]{10}$"
    assert contract.sources["orders"].columns["amount"].max == 50000
    assert load_contract().sources["orders"].columns["order_id"].pattern is None  # the shared one is untouched


@pytest.mark.parametrize("overlay, message", [
    ("sources: {nope: {columns: {}}}", "'nope' is not a contract source"),
    ("sources: {orders: {columns: {nope: {pattern: x}}}}", "orders.nope is not a contract column"),
    ("sources: {orders: {columns: {amount: {type: integer}}}}", "cannot be overlaid"),
    ("sources: {orders: {columns: {order_id: {required: false}}}}", "required by the shared contract"),
    ("sources: {events: {columns: {event_type: {allowed: [a]}}}}", "already has a value list"),
    ("colums: {}", "unknown top-level keys"),
])
def test_an_overlay_can_only_add_rules_and_says_what_is_wrong(tmp_path, overlay, message):
    path = tmp_path / "overlay.yml"
    path.write_text(overlay)
    with pytest.raises(ValueError, match=message):
        load_contract(path)
