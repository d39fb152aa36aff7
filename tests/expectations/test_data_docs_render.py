"""Data Docs opened in Debian's headless chromium with no network: the tables render, and a failed check says its
severity and the values the gate saw.

The browser is /usr/bin/chromium (`apt-get install chromium`; .ci/run installs it), driven by playwright without
`playwright install`. Every request that is not a local file is aborted and recorded, so a page still loading jQuery
or Bootstrap from a CDN fails here. Screenshots are written under the test's tmp dir and their paths printed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from expectations import GateFailed, data_docs, run_gate

from ._lakes import DAY, write_partition
from .test_raw_ingest import history, manifest, orders, policy

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Offline:
    """A page that may load local files only: anything else is aborted and remembered."""

    def __init__(self, browser) -> None:
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route) -> None:
        url = urlparse(route.request.url)
        if url.scheme in ("file", "data", "blob", "about") or url.hostname in ("localhost", "127.0.0.1"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def open(self, path: Path) -> None:
        """Load the page and wait until bootstrap-table has drawn rows (it never does without its scripts)."""
        self.page.goto(path.as_uri(), wait_until="load")
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function("document.querySelectorAll('.bootstrap-table tbody tr[data-index]').length > 0",
                                    timeout=15_000)

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def offline(browser):
    page = Offline(browser)
    yield page
    page.close()


def short_day_in_cents(settings) -> GateFailed:
    """test_raw_ingest's bad day: 3 rows against a median of 10 (a warning), amounts x100, a rejected file."""
    history(settings)
    write_partition(settings, "orders", DAY, orders(DAY, 3, amount=5000.0), name="today")
    manifest(settings, DAY, "orders_today.parquet", quarantined=2)
    manifest(settings, DAY, "orders_cut.parquet", status="rejected", landed=0)
    manifest(settings, DAY, "orders_copy.parquet", status="duplicate", landed=3)
    with pytest.raises(GateFailed) as raised:
        run_gate(settings, "raw", DAY, policy=policy())
    return raised.value


def validation_page(site: Path, suite: str) -> Path:
    pages = sorted((site / "validations" / suite).rglob("*.html"))
    assert len(pages) == 1, pages
    return pages[0]


def test_no_data_docs_page_loads_a_script_or_stylesheet_from_the_network(settings):
    failure = short_day_in_cents(settings)
    site = failure.result.data_docs_index.parent

    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 3  # the index, a suite, a validation
    assert data_docs.remote_references(pages) == {}
    assert (site / "static" / "vendor" / "jquery-3.7.1.min.js").read_text().startswith("/*! jQuery v3.7.1")
    assert data_docs.localize(site) == []  # a second pass has nothing left to rewrite


def test_data_docs_index_renders_its_table_offline(settings, offline, tmp_path):
    failure = short_day_in_cents(settings)

    offline.open(failure.result.data_docs_index)
    offline.screenshot(tmp_path / "data_docs_index.png")

    # bootstrap-table builds the index rows from JSON in the page: without its scripts the table stays empty
    rows = offline.page.locator(".bootstrap-table").first.locator("table tbody tr")
    assert rows.count() == 2  # one validation per suite that ran
    assert "raw__2025-03-10" in rows.filter(has_text="raw__ingest").inner_text()
    assert rows.filter(has_text="raw__orders").count() == 1
    assert "Showing 1 to 2 of 2 rows" in offline.page.inner_text("body")
    assert offline.blocked == [] and offline.errors == []


def test_a_failed_warning_shows_its_severity_and_the_values_seen_offline(settings, offline, tmp_path):
    failure = short_day_in_cents(settings)
    page = validation_page(failure.result.data_docs_index.parent, "raw__ingest")

    offline.open(page)
    offline.screenshot(tmp_path / "data_docs_failed_raw__ingest.png")

    table = offline.page.locator(".bootstrap-table table").filter(has_text="rows landed within")
    rows = table.locator("tbody tr")
    assert rows.count() == 9
    volume = rows.filter(has_text="rows landed within").inner_text()
    assert "FAILED (warning, reported and the run goes on)" in volume
    assert "source orders, rows_landed 3, median_rows 10, volume_ratio 0.3" in volume  # which source, against what
    amounts = rows.filter(has_text="median amount of the day").inner_text()
    assert "FAILED (critical, stops the run)" in amounts and "amount_median 5001, median_amount 54.5" in amounts
    freshness = rows.filter(has_text="newest timestamp").inner_text()
    assert freshness.strip().startswith("warning: ") and "orders 48 h" in freshness
    assert "at most freshness_hours" not in offline.page.inner_text("body")
    # Font Awesome (the status icons) came from the vendored copy
    loaded = offline.page.evaluate("[...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
    assert any("Font Awesome" in family for family in loaded)
    assert offline.blocked == [] and offline.errors == []


def test_a_page_whose_cdn_reference_is_not_vendored_is_left_alone_and_reported(tmp_path, caplog):
    site = tmp_path / "site"
    (site / "validations").mkdir(parents=True)
    page = site / "validations" / "x.html"
    page.write_text('<link rel="stylesheet" href="https://cdn.example.org/new.css">'
                    '<script src="https://code.jquery.com/jquery-3.7.1.min.js" crossorigin="anonymous"></script>'
                    '<a href="https://greatexpectations.io">GX</a>')

    assert data_docs.localize(site) == [page]

    text = page.read_text()
    assert '<script src="../static/vendor/jquery-3.7.1.min.js"></script>' in text
    assert "https://greatexpectations.io" in text  # a link loads nothing
    assert data_docs.remote_references([page]) == {page: ["https://cdn.example.org/new.css"]}
    assert "cdn.example.org/new.css" in caplog.text


def test_the_vendored_assets_keep_their_licences():
    assets = data_docs.ASSETS
    for name in data_docs.CDN.values():
        if name is None:
            continue
        head = (assets / name).read_text(encoding="utf-8")[:400]
        assert "MIT" in head or "License" in head or "license" in head, name
    assert {p.name for p in (assets / "licenses").iterdir()} >= {"jquery.LICENSE.txt", "bootstrap.LICENSE", "bootstrap-datepicker.LICENSE",
                                                                  "bootstrap-table.LICENSE",
                                                                  "fontawesome-free.LICENSE.txt"}
