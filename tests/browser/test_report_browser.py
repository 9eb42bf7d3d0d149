"""The report and the per-record page in a real headless Chromium: rendering, sorting, images, no request out, and
markup from the CRM that never runs. The stored state is small (tests/report_state.py), without a registry; the
e2e session world checks the auditor part with real models (tests/e2e/test_cli_report.py)."""
from __future__ import annotations

import json

import pytest

from crm.writeback import read_scores
from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.report import build_report, record_page
from tests.report_state import MARKUP_ID, MARKUP_INDUSTRY, MARKUP_SEGMENT, MARKUP_SOURCE, build_state

pytestmark = pytest.mark.browser

#: Records what a page reports about itself before any of its own code runs (injected by the driver, not the page).
PROBE = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
         "function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });")


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return build_state(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def files(state, tmp_path_factory):
    settings = load_settings(state.config, crm=state.crm, env={})
    out = tmp_path_factory.mktemp("pages")
    report = out / "report.html"
    report.write_text(build_report(settings), encoding="utf-8")
    record = out / "record.html"
    record.write_text(record_page(settings, state.markup_account), encoding="utf-8")
    lead = out / "lead.html"  # its id, "L-</script><script>...", is in the page's script data
    lead.write_text(record_page(settings, state.markup_lead), encoding="utf-8")
    return {"report": report, "record": record, "lead": lead}


def open_page(chromium, path):
    """The page loaded behind a request gate: (context, page, every requested URL, console and page errors)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    requested: list[str] = []

    def gate(route):
        url = route.request.url
        requested.append(url)
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.add_init_script(PROBE)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return context, page, requested, problems


@pytest.mark.parametrize("which", ["report", "record", "lead"])
def test_page_renders_cleanly_and_calls_nothing_out(chromium, files, which):
    context, page, requested, problems = open_page(chromium, files[which])
    try:
        assert problems == []
        assert page.evaluate("window.__csp") == []
        assert requested and all(u.startswith(("file:", "data:")) for u in requested), requested
        assert page.evaluate("document.documentElement.getAttribute('data-page')") == (
            "record" if which == "lead" else which)  # the script ran
        assert page.evaluate("typeof window.__pwned") == "undefined"
    finally:
        context.close()


@pytest.mark.parametrize("which", ["report", "record", "lead"])
def test_markup_from_the_crm_is_shown_as_text_and_never_runs(chromium, files, state, which):
    context, page, _, problems = open_page(chromium, files[which])
    try:
        text = page.evaluate("document.body.innerText")
        if which == "lead":  # a lead's page: its id and its source hold "</script>", in the text and the script data
            assert state.markup_lead in text and MARKUP_SOURCE in text.replace(state.markup_lead, "")
        else:
            assert MARKUP_SEGMENT in text and MARKUP_ID in text and MARKUP_INDUSTRY in text
        if which == "report":
            assert MARKUP_SOURCE in text
            page.locator("#list-at-risk th button", has_text="segment").click()  # the sorted rows stay text too
            page.fill('input[data-table="list-at-risk"]', "<script>")
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("body img[src^='x'], body img[src^='y']").count() == 0
        assert problems == []
    finally:
        context.close()


def _column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(f"#{table} tbody tr:not([hidden])",
                                     f"rows => rows.map(r => r.cells[{index}].textContent)")


def test_at_risk_rows_are_those_of_crmscore_list(chromium, files, state, capsys):
    assert main(["list", "at-risk", "--crm", state.crm, "--config", str(state.config), "--top", "10",
                 "--format", "json"]) == 0
    listed = [r["entity_id"] for r in json.loads(capsys.readouterr().out)]
    context, page, _, _ = open_page(chromium, files["report"])
    try:
        assert _column(page, "list-at-risk", 1)[:10] == listed
    finally:
        context.close()


def test_model_versions_shown_are_those_in_crm_scores(chromium, files, state):
    scores = read_scores(state.crm)
    written = {(m, str(v)) for m, v in zip(scores["model"], scores["model_version"], strict=True)}
    context, page, _, _ = open_page(chromium, files["report"])
    try:
        shown = page.eval_on_selector_all("section.model[data-model]",
                                          "s => s.map(e => [e.dataset.model, e.dataset.version])")
        assert {tuple(x) for x in shown} == written
    finally:
        context.close()


def test_sorting_and_filtering_work(chromium, files):
    context, page, _, problems = open_page(chromium, files["report"])
    try:
        def values():
            return [float(v) for v in page.eval_on_selector_all(
                "#list-at-risk tbody tr:not([hidden])", "rows => rows.map(r => r.cells[6].dataset.sort)")]

        first = values()
        assert first == sorted(first, reverse=True)  # as written: ranked by value at risk
        button = page.locator("#list-at-risk th button", has_text="value at risk")
        button.click()
        assert values() == sorted(first)
        assert page.locator("#list-at-risk th", has_text="value at risk").get_attribute("aria-sort") == "ascending"
        button.click()
        assert values() == sorted(first, reverse=True)
        page.locator("#list-at-risk th button", has_text="account_id").click()
        ids = _column(page, "list-at-risk", 1)
        assert ids == sorted(ids, key=str.lower)
        page.fill('input[data-table="list-at-risk"]', "medium")
        bands = _column(page, "list-at-risk", 4)
        assert bands and set(bands) == {"medium"}
        assert problems == []
    finally:
        context.close()


def test_every_image_has_a_size(chromium, files):
    context, page, _, _ = open_page(chromium, files["report"])
    try:
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, "
                                          "i.naturalHeight, i.getBoundingClientRect().width, i.alt])")
        assert len(sizes) >= 4  # bands by segment, one chart per model
        assert all(ok and w > 0 and h > 0 and shown > 0 and alt for ok, w, h, shown, alt in sizes), sizes
    finally:
        context.close()


def test_the_gate_and_the_csp_probe_would_see_a_hostile_page(chromium, tmp_path, files):
    """Controls: the same harness reports a page that calls out (no CSP), and the report's CSP blocks and reports an
    unhashed script and a remote image."""
    body = "<body><img src='http://example.invalid/x.png'><script>window.__pwned = 1</script></body></html>"
    open_page_ = tmp_path / "no_csp.html"
    open_page_.write_text("<!DOCTYPE html><html><head><title>x</title></head>" + body)
    context, page, requested, _ = open_page(chromium, open_page_)
    try:
        assert any(u.startswith("http://example.invalid") for u in requested)
        assert page.evaluate("window.__pwned") == 1
    finally:
        context.close()
    pinned = tmp_path / "csp.html"
    pinned.write_text(files["report"].read_text().split("<style>", 1)[0] + "</head>" + body)  # the report's CSP
    context, page, requested, problems = open_page(chromium, pinned)
    try:
        assert not any(u.startswith("http:") for u in requested)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        violations = page.evaluate("window.__csp")
        assert any(v.startswith("script-src") for v in violations) and any(v.startswith("img-src") for v in violations)
        assert problems  # a blocked script is a console error: the harness would fail a report that had one
    finally:
        context.close()
