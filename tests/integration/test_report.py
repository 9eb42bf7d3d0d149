"""The HTML report and the per-record page on a small stored state (no browser: tests/browser drives Chromium)."""
from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
import re

import pytest

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.report import NO_MONITORING, build_report, external_references, record_page
from tests.report_state import AS_OF, EARLIER, MARKUPS, build_state, pii_count, tree_snapshot


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return build_state(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def settings(state):
    return load_settings(state.config, crm=state.crm, env={})


@pytest.fixture(scope="module")
def page(settings):
    return build_report(settings)


@pytest.fixture(scope="module")
def record(settings, state):
    return record_page(settings, state.markup_account)


@pytest.fixture(scope="module")
def lead_record(settings, state):
    """The page of the lead whose id holds ``</script><script>...``: the id goes into the page's script data."""
    return record_page(settings, state.markup_lead)


def _scripts(text: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", text, flags=re.S)


def _table_ids(text: str, table_id: str) -> list[str]:
    body = text.split(f'<table id="{table_id}"', 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr><td[^>]*>[^<]*</td><td data-sort=\"([^\"]*)\"", body)
    return [html_lib.unescape(r) for r in rows]


def test_markup_in_the_crm_is_text_in_both_pages(page, record, lead_record):
    for text, shown in ((page, MARKUPS[0]), (record, MARKUPS[0]), (lead_record, MARKUPS[2])):
        for markup in MARKUPS:
            assert markup not in text  # never as markup
        assert html_lib.escape(shown, quote=True) in text or html_lib.escape(shown) in text
        # one inline script, closed once: a "</script>" from the data cannot end it early
        assert text.count("<script") == 1 and text.count("</script>") == 1
        assert _event_handlers(text) == []  # no element got an on...= attribute from the data


def _event_handlers(text: str) -> list[str]:
    from html.parser import HTMLParser

    found = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(f"<{tag} {k}>" for k, _ in attrs if k.startswith("on"))

    P().feed(text)
    return found


def test_script_data_goes_through_tojson(page, lead_record, state):
    for text, hostile in ((page, lambda d: any("</script>" in s for s in d["segments"])),
                          (lead_record, lambda d: d["entity_id"] == state.markup_lead)):
        (script,) = _scripts(text)
        data = json.loads(re.search(r"var DATA = (.*?);\n", script).group(1))
        assert hostile(data)  # the hostile lead source (report) or lead id (its page) is in the data...
        assert "</script>" not in script and "<" not in script.split("var DATA = ", 1)[1].split(";\n", 1)[0]  # escaped


def test_no_pii_value_appears(page, record, lead_record, state):
    assert pii_count(state.crm) > 0 and len(state.pii_values) > 100
    leaked = [v for v in state.pii_values for text in (page, record, lead_record)
              if v in text or html_lib.escape(v) in text]
    assert leaked == []


def test_page_references_nothing_outside_itself(page, record, lead_record):
    assert external_references(page) == []
    assert external_references(record) == [] and external_references(lead_record) == []
    assert "http://" not in page.replace("http://www.w3.org/", "")  # xmlns of the SVGs are names, not fetches


def test_csp_pins_the_one_script_and_style_by_hash(page):
    csp = html_lib.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    (script,) = _scripts(page)
    style = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)

    def h(t):
        return "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"

    assert f"script-src {h(script)}" in csp and f"style-src {h(style)}" in csp
    assert "default-src 'none'" in csp and "img-src data:" in csp and "unsafe-inline" not in csp


def test_same_stored_state_gives_byte_identical_pages(settings, page, state):
    assert build_report(settings) == page
    assert record_page(settings, state.markup_account) == record_page(settings, state.markup_account)


def test_lists_are_bounded_and_ranked_like_crmscore_list(page, state, capsys):
    ids = _table_ids(page, "list-at-risk")
    assert len(ids) == 25  # report.list_rows of the state's config, not the 300 accounts scored
    assert main(["list", "at-risk", "--crm", state.crm, "--config", str(state.config), "--top", "25",
                 "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert ids == [r["entity_id"] for r in listed]


def test_tiles_and_sections(page):
    for words in ("Customers scored", "Leads scored", "Expected churners", "Total value at risk", "Customer equity",
                  "Last refresh", "Data quality", "Model health", NO_MONITORING, "crmscore list at-risk --format csv",
                  "CLV tiers by segment", "churn bands by segment"):
        assert words in page, words
    # without a registry the auditor part says why, for every model that produced current scores
    assert page.count("no MLflow registry at") == 4
    assert 'data-model="churn" data-version="2"' in page  # the version of the current scores, not the earlier run


def test_as_of_shows_the_earlier_run(settings):
    earlier = build_report(settings, as_of=EARLIER + (AS_OF - EARLIER) / 2)
    assert "scores as of 2026-09-01" in earlier and 'data-version="1"' in earlier and 'data-version="2"' not in earlier


def test_monitoring_runs_render_from_a_plain_argument(settings):
    runs = [{"model": "churn", "model_version": "2", "as_of": "2026-09-01", "status": "ok",
             "feature_psi": {"Tenure": 0.02, "Logins in the last 30 days": 0.31},
             "realized": {"roc_auc": 0.71}, "estimated": {"roc_auc": 0.73}},
            {"model": "churn", "model_version": "2", "as_of": "2026-10-01", "status": "drift",
             "feature_psi": {"Tenure": 0.05}, "realized": {"roc_auc": None}, "estimated": {"roc_auc": 0.70}}]
    text = build_report(settings, monitoring=runs)
    assert 'id="monitoring-churn"' in text and "Logins in the last 30 days 0.310" in text
    assert "churn: drift" in text  # the model-health tile shows the latest run's status
    assert "No monitoring run yet for clv" in text


def test_report_command_writes_only_out(state, tmp_path):
    before = tree_snapshot(state.root)
    out = tmp_path / "r.html"
    assert main(["report", "--crm", state.crm, "--config", str(state.config), "--out", str(out)]) == 0
    assert tree_snapshot(state.root) == before and out.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    page = tmp_path / "p.html"
    assert main(["explain", state.markup_lead, "--crm", state.crm, "--config", str(state.config),
                 "--html", str(page)]) == 0
    assert tree_snapshot(state.root) == before and page.is_file()


def test_report_command_refuses_a_missing_folder_in_one_line(state, tmp_path, capsys):
    assert main(["report", "--crm", state.crm, "--config", str(state.config),
                 "--out", str(tmp_path / "nope" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and not (tmp_path / "nope").exists()


def test_report_without_scores_says_what_to_do(tmp_path, capsys):
    import sqlalchemy as sa

    db = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()
    assert main(["report", "--crm", f"sqlite:///{db}", "--out", str(tmp_path / "r.html")]) == 1
    assert "run `crmscore train`, then `crmscore score`" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_record_page_lists_every_score(record, state):
    assert record.count("<tr><td") >= 4  # churn and clv at two dates, plus no waterfall without a registry
    assert "2026-09-01" in record and "2026-10-01" in record and "run-20261001" in record
    assert "No MLflow registry" in record
