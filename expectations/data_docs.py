"""Data Docs a person can read: each check's severity and the values it saw, rendered with no network.

    publish(ctx, validations, rows)   # in run_gate, once the checkpoint has built the docs and the rows are known

Great Expectations 1.24's Data Docs, as the gate's checkpoint builds them, show a failed warning as the same red
cross as a critical failure, show an SQL check's observed value as a bare count ("1"), and load jQuery, Bootstrap,
bootstrap-table and Font Awesome from CDNs, so an offline machine shows an index without its table. This module

1. rebuilds the gate's validation pages from a copy of its results whose expectation descriptions (the text GX puts
   in the Expectation column) start with the severity and, for a failed check, end with the values the gate saw:
   its observed value and sample rows (which source, how many rows, against what median, which file and row).
   The copy replaces the checkpoint's entry in GX's validation results store (the pages render from the store);
   the gate's own report, reports/gx/<date>/<gate>.json, keeps GX's result as it was. GX's mechanism for extra
   table columns (suite meta `notes` in the `meta_properties` format) is not usable: 1.24 passes
   `meta_properties_to_render` to the expectation model, which rejects it, and the page is not written;
2. rewrites the CDN `<script>`/`<link>` tags of every page under the site to copies vendored in
   expectations/data_docs_assets/ (see its README for versions and licences), copied into `static/vendor/`, and the
   navbar logo GX fetches from its S3 bucket (with the data context id in the query) to the copy GX ships.

Everything here runs inside the gate's lock, after its checkpoint; nothing downloads anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import html
import json
import logging
import os
import re
import shutil
import string
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from expectations.suites._base import GateContext


class ExpectationRow(Protocol):
    """What a gate's result row (expectations.gates.ExpectationRow) offers the pages; a protocol, so this module
    does not import the gate runner that calls it."""

    suite: str
    key: str
    severity: str
    success: bool
    observed_value: str | None
    unexpected_count: int | None
    sample_values: list[Any]
    error: str | None

log = logging.getLogger(__name__)

SITE = "seg_data_docs"
ASSETS = Path(__file__).resolve().parent / "data_docs_assets"
VENDOR = Path("static") / "vendor"  # inside the site

# --- severity and values seen ---------------------------------------------------------------------------------------

FAILED = {
    "critical": "critical, stops the run",
    "warning": "warning, reported and the run goes on",
}
MAX_SAMPLES = 5
MAX_CHARS = 700


def describe(row: ExpectationRow | None, text: str) -> str:
    """The Expectation column's text: severity, what is checked and, for a failure, the values seen."""
    if row is None:
        return text
    if row.success:
        return f"{row.severity}: {text}"
    return f"FAILED ({FAILED.get(row.severity, row.severity)}): {text}. Seen: {values_seen(row)}"


def values_seen(row: ExpectationRow) -> str:
    """What a failed check saw, in words: the observed value, then up to MAX_SAMPLES offending rows."""
    if row.error:
        return f"error: {row.error}"[:MAX_CHARS]
    head = str(row.observed_value) if row.observed_value is not None else "no observed value"
    head = re.sub(r"^1 unexpected rows$", "1 unexpected row", head)
    samples = []
    for sample in row.sample_values[:MAX_SAMPLES]:
        if isinstance(sample, dict):
            samples.append(", ".join(f"{k} {_value(v)}" for k, v in sample.items()))
        else:
            samples.append(_value(sample))
    text = head + (": " + " | ".join(samples) if samples else "")
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value) if value == "" or value != value.strip() else value
    return str(value)


def _text(config: Any) -> str:
    """What GX would show for the expectation: its description, else its prescriptive template filled in."""
    if config.description:
        return str(config.description)
    from great_expectations.render.renderer.inline_renderer import InlineRenderer

    try:
        for content in InlineRenderer(render_object=config).get_rendered_content():
            if content.name.endswith("prescriptive.summary"):
                value = content.value.to_json_dict()
                params = {k: _value(v.get("value")) for k, v in (value.get("params") or {}).items()}
                return string.Template(value.get("template") or "").safe_substitute(params)
    except Exception as error:  # rendering is best effort: the check itself is recorded elsewhere
        log.debug("data docs: no prescriptive text for %s: %s", config.type, error)
    return config.type


def publish(ctx: GateContext, validations: dict[str, Any], rows: list[ExpectationRow]) -> Path:
    """Rebuild the gate's validation pages with severity and values seen, then localize the site's assets.

    `validations` ({suite: ExpectationSuiteValidationResult}) are not changed: the pages render from a copy.
    Returns the site's index.
    """
    site = ctx.settings.paths.reports / "data_docs"
    if validations:
        try:
            _rebuild(ctx, {suite: _annotated(suite, v, rows) for suite, v in validations.items()})
        except Exception:  # as GX does for its own rendering errors: the verdict stands, the pages keep GX's text
            log.exception("data docs: could not add severity and values seen to the %s pages", ctx.gate)
    localize(site)
    return site / "index.html"


def _annotated(suite: str, validation: Any, rows: list[ExpectationRow]) -> Any:
    by_key = {r.key: r for r in rows if r.suite == suite}
    annotated = copy.deepcopy(validation)
    for result in annotated.results:
        config = result.expectation_config
        row = by_key.get((config.meta or {}).get("key"))
        config.description = describe(row, _text(config))
    return annotated


def _rebuild(ctx: GateContext, validations: dict[str, Any]) -> None:
    """Store the annotated results over the checkpoint's and rebuild those pages (and the index) only."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    from expectations import duckdb_compat as compat

    context = gx.get_context(mode="file", project_root_dir=str(ctx.settings.paths.root))
    try:
        store = context.validation_results_store
        wanted = {}
        for suite, validation in validations.items():
            run_id = validation.meta.get("run_id")
            if isinstance(run_id, dict):
                run_id = RunIdentifier(**run_id)
            wanted[(suite, run_id.to_tuple())] = validation
        keys = []
        for key in store.list_keys():
            validation = wanted.get((key.expectation_suite_identifier.name, key.run_id.to_tuple()))
            if validation is not None:
                store.set(key, validation)
                keys.append(key)
        if len(keys) != len(wanted):
            log.warning("data docs: found %d of %d validation results of this run in the store; the others' pages "
                        "show GX's text only", len(keys), len(wanted))
        if keys:
            context.build_data_docs(site_names=[SITE], resource_identifiers=keys)
    finally:
        compat.release(context)


# --- offline assets ------------------------------------------------------------------------------------------------

# every script/stylesheet URL in GX 1.24's templates -> its vendored file, or None: the tag is removed
CDN: dict[str, str | None] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper-1.12.9.min.js",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table-1.19.1.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-filter-control-1.19.1.min.js",
    # the templates ask for 1.19.0's stylesheet beside 1.19.1's script: the matching 1.19.1 file serves both
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-filter-control-1.19.1.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-filter-control-1.19.1.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-6.6.0/css/all.min.css",
    # the index's Run Time filter (bootstrap-table filter-control `datepicker`)
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0.min.css",
    # the dark colour scheme for browsers set to dark: pages stay light
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": None,
}
# graph blocks only (vegaEmbed): removed from pages without a graph, kept (and warned about) on a page with one
GRAPH_LIBRARIES = ("https://cdn.jsdelivr.net/npm/vega@5", "https://cdn.jsdelivr.net/npm/vega-lite@5",
                   "https://cdn.jsdelivr.net/npm/vega-embed@6")

# the navbar logo (an <img> with the data context id in its query) and the dark-mode logo of GX's stylesheet: GX ships
# logo-long.png in the site's static/images/, it has no dark one
IMAGES_HOST = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}
_IMAGE = re.compile(re.escape(IMAGES_HOST) + r"(?P<name>[\w.-]+)(?:\?[^\"')\s]*)?")

_TAG = re.compile(r"""<script\b[^>]*\bsrc=["'](?P<src>https?://[^"']+)["'][^>]*>\s*</script>"""
                  r"""|<link\b[^>]*\bhref=["'](?P<href>https?://[^"']+)["'][^>]*/?>""", re.IGNORECASE)


def localize(site: Path) -> list[Path]:
    """Copy the vendored assets into the site and point every page at them; returns the pages rewritten.

    Idempotent: a page rewritten by an earlier gate run has no CDN tag left and is not touched again.
    """
    if not site.is_dir():
        return []
    _copy_assets(site / VENDOR)
    changed = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        new = _rewrite(text, page, site)
        if new != text:
            tmp = page.with_suffix(".html.tmp")
            tmp.write_text(new, encoding="utf-8")
            tmp.replace(page)
            changed.append(page)
    return changed


def _copy_assets(target: Path) -> None:
    for source in ASSETS.rglob("*"):
        if source.is_dir() or source.name == "README.md":
            continue
        destination = target / source.relative_to(ASSETS)
        if destination.exists() and destination.stat().st_size == source.stat().st_size:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


def _rewrite(text: str, page: Path, site: Path) -> str:
    prefix = Path(os.path.relpath(site / VENDOR, page.parent)).as_posix()
    has_graph = "vegaEmbed(" in text
    unknown: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        url = match.group("src") or match.group("href")
        if url in GRAPH_LIBRARIES:
            return match.group(0) if has_graph else ""
        if url not in CDN:
            if match.group("href") and not re.search(r"""rel=["']?stylesheet""", match.group(0), re.IGNORECASE):
                return match.group(0)  # <link rel="canonical"> and the like load nothing
            unknown.add(url)
            return match.group(0)
        local = CDN[url]
        if local is None:
            return ""
        href = html.escape(f"{prefix}/{local}", quote=True)
        if match.group("src"):
            return f'<script src="{href}"></script>'
        return f'<link rel="stylesheet" href="{href}">'

    images = Path(os.path.relpath(site / "static" / "images", page.parent)).as_posix()
    new = _TAG.sub(replace, text)
    new = _IMAGE.sub(lambda m: f"{images}/{IMAGES[m.group('name')]}" if m.group("name") in IMAGES else m.group(0),
                     new)
    if has_graph:
        log.warning("data docs: %s draws a graph; vega is not vendored, so the graph needs the network", page)
    if unknown:
        log.warning("data docs: %s loads %s from the network: add it to expectations.data_docs.CDN",
                    page, ", ".join(sorted(unknown)))
    return new


_LOADS = re.compile(r"""\bsrc=["'](?P<src>https?://[^"']+)|url\(\s*["']?(?P<url>https?://[^"')]+)""", re.IGNORECASE)


def remote_references(pages: Iterable[Path]) -> dict[Path, list[str]]:
    """What the pages still load from the network: scripts, images, stylesheets, CSS url()s (links are navigation,
    not loads). For the tests, and to check the CDN table after a GX upgrade."""
    found = {}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        urls = [m.group("href") for m in _TAG.finditer(text)
                if m.group("href") and re.search(r"""rel=["']?stylesheet""", m.group(0), re.IGNORECASE)]
        urls += [m.group("src") or m.group("url") for m in _LOADS.finditer(text)]
        if urls:
            found[page] = urls
    return found
