from pathlib import Path

from seg.contract import SOURCES, load_contract
from seg.contract.docs import render_markdown

REPO = Path(__file__).resolve().parents[2]


def test_contract_has_the_six_sources_with_keys_that_are_columns():
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
