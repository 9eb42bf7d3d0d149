"""`crmscore report` and `crmscore explain --html` through the CLI on the e2e session world (real models, registry,
validation runs), opened in headless Chromium: the auditor part is there for every champion, read-only."""
from __future__ import annotations

import json
import re

import pytest

from crm.writeback import read_scores
from tests.browser.test_report_browser import open_page
from pipelines.cli import main
from tests.report_state import tree_snapshot


@pytest.fixture(scope="module")
def pages(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-pages")
    before = tree_snapshot(world["root"])
    report = out / "report.html"
    assert main(["report", *world["common"], "--out", str(report)]) == 0  # in-process: it only reads
    account = read_scores(world["crm"], model="churn").sort_values("entity_id")["entity_id"].iloc[0]
    record = out / "record.html"
    assert main(["explain", account, *world["common"], "--html", str(record)]) == 0
    return {"report": report, "record": record, "before": before, "account": account}


def test_report_and_record_page_change_nothing_stored(pages, world):
    assert tree_snapshot(world["root"]) == pages["before"]


def test_the_nightly_score_run_wrote_the_report(world):
    assert re.search(r"Report: .*reports/report_2026-10-01\.html", world["score"].stdout), world["score"].stdout
    assert list((world["root"] / "wd" / "reports").glob("report_*.html"))


def test_auditor_part_of_every_champion(pages, world):
    text = pages["report"].read_text()
    scores = read_scores(world["crm"])
    for model, version in sorted({(m, str(v)) for m, v in zip(scores["model"], scores["model_version"])}):
        section = text.split(f'data-model="{model}" data-version="{version}"', 1)[1].split('<section class="model"')[0]
        for words in ("Provenance of", "training window", "extract fingerprint", "code version", "MLflow run",
                      "Held-out metrics", "intervals in brackets", "Global SHAP importance",
                      "champion-gate decisions", "Limit: "):
            assert words in section, (model, words)
        if model in ("churn", "clv"):  # 2,500 accounts give slices of evaluation.slice_min_size rows; leads do not
            assert "Held-out metrics by slice" in section, model
    assert "Data-contract results of the scored extract" in text and "passed" in text
    assert len(pages["report"].read_bytes()) < 3_000_000


def test_pages_in_the_browser(chromium, pages):
    for which in ("report", "record"):
        context, page, requested, problems = open_page(chromium, pages[which])
        try:
            assert problems == [] and page.evaluate("window.__csp") == []
            assert all(u.startswith(("file:", "data:")) for u in requested), requested
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.naturalWidth, "
                                              "i.getBoundingClientRect().width])")
            assert sizes and all(w > 0 and shown > 0 for w, shown in sizes), (which, sizes)
        finally:
            context.close()
    record = pages["record"].read_text()
    assert "SHAP waterfall of" in record and "What would move this churn score most" in record
    assert json.dumps(pages["account"])[1:-1] in record
