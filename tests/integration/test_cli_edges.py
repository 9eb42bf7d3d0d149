"""The CLI's edges, in-process: every error a user can cause is one line naming what to do, with a non-zero exit;
commands that only read the CRM never create or change it; progress goes through the `crmscore` logger."""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from crm.extract import read_tables, write_extract
from crm.synthetic import generate_world
from pipelines.render import progress_shown

AS_OF = "2026-10-01"
READ_COMMANDS = {
    "list": ["list", "at-risk"],
    "explain": ["explain", "acc_1"],
    "features": ["features", "--entity", "account", "--out", "f.parquet"],
    "validate": ["validate"],
    "monitor": ["monitor"],  # writes its own tables, but never into a CRM that does not exist
    "report": ["report", "--out", "r.html"],
    "explain --html": ["explain", "acc_1", "--html", "p.html"],
}


@pytest.fixture(scope="module")
def unscored_crm(tmp_path_factory) -> str:
    """A CRM with accounts and leads but no score written yet."""
    db = tmp_path_factory.mktemp("crm") / "crm.db"
    write_extract(f"sqlite:///{db}", generate_world(300, 200, 3, pd.Timestamp(AS_OF, tz="UTC")).tables)
    return f"sqlite:///{db}"


def _sha(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text and "unexpected error" not in text and "please report" not in text
    return lines[0]


@pytest.mark.parametrize("cmd", sorted(READ_COMMANDS))
def test_read_commands_refuse_a_missing_sqlite_crm_and_create_nothing(cmd, crmscore, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = crmscore(*READ_COMMANDS[cmd], "--crm", "sqlite:///typo.db")
    assert res.code == 1
    line = _one_line(res.err)
    assert line.startswith("error: no CRM at sqlite:///typo.db: the file does not exist; check --crm")
    assert "crmscore generate" in line
    assert list(tmp_path.iterdir()) == []  # no empty typo.db, no working folder, no output file


@pytest.mark.parametrize("cmd", sorted(READ_COMMANDS))
def test_read_commands_refuse_a_missing_folder_crm(cmd, crmscore, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = crmscore(*READ_COMMANDS[cmd], "--crm", "no_such_folder")
    assert res.code == 1 and "no CRM at no_such_folder" in _one_line(res.err)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_postgres_is_one_line_without_password(crmscore, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = crmscore("list", "at-risk", "--crm", "postgresql+psycopg://bob:s3cret@127.0.0.1:1/crm")
    assert res.code == 1
    line = _one_line(res.err)
    assert "cannot open the CRM at postgresql+psycopg://bob:***@127.0.0.1:1/crm" in line and "s3cret" not in line


def test_list_before_any_scoring_says_to_score(crmscore, unscored_crm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _sha(unscored_crm)
    res = crmscore("list", "at-risk", "--crm", unscored_crm)
    assert res.code == 1 and res.out == ""
    assert "no scores were written to sqlite:///" in _one_line(res.err) and "`crmscore score`" in res.err
    assert _sha(unscored_crm) == before


def test_explain_unknown_id_is_one_line(crmscore, unscored_crm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _sha(unscored_crm)
    res = crmscore("explain", "nobody_42", "--crm", unscored_crm)
    assert res.code == 1
    assert "no account or lead with id 'nobody_42'" in _one_line(res.err)
    account = read_tables(unscored_crm, tables=["accounts"])["accounts"]["account_id"].iloc[0]
    res = crmscore("explain", account, "--crm", unscored_crm)  # a real account, never scored
    assert res.code == 1 and f"account {account!r} has no score" in _one_line(res.err)
    assert _sha(unscored_crm) == before


def test_validate_writes_only_its_results_and_leaves_the_crm(crmscore, unscored_crm, tmp_path):
    before = _sha(unscored_crm)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workdir: {tmp_path / 'wd'}\n")
    res = crmscore("validate", "--crm", unscored_crm, "--config", cfg, "--as-of", AS_OF)
    assert res.code in (0, 1) and "Validation" in res.out, res.err
    assert _sha(unscored_crm) == before
    assert sorted(p.name for p in (tmp_path / "wd").iterdir()) == ["validation"]


@pytest.mark.parametrize(("args", "expected"), [
    (["features", "--entity", "account", "--out", "f.parquet", "--as-of", "31/13/2026"], "is not a date"),
    (["list", "at-risk", "--format", "xml"], "'xml'; possible values are table, csv, json"),
    (["monitor", "--format", "csv"], "'csv'; possible values are table, json"),
    (["list", "hot-leads"], "possible values are at-risk"),
    (["features", "--entity", "shop", "--out", "f.parquet"], "'shop'; possible values are account, lead"),
    (["list", "at-risk", "--top", "0"], "--top"),
    (["list", "at-risk", "--bogus"], "No such option: --bogus"),
    (["bogus-command"], "No such command 'bogus-command'"),
    (["import-transactions", "nofile.csv", "--customer-col", "c", "--date-col", "d", "--amount-col", "a"],
     "'nofile.csv' does not exist"),
])
def test_usage_errors_are_one_line_with_exit_2(args, expected, crmscore, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = crmscore(*args)
    assert res.code == 2
    line = _one_line(res.err)
    assert expected in line and "--help`)" in line  # says where the help is
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("config", "expected"), [
    ("workdir: [unclosed\n", "is not valid YAML"),
    ("no_such_setting: 1\n", "invalid configuration"),
    (None, "no such file"),
])
def test_bad_config_is_one_line_with_exit_1(config, expected, crmscore, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    if config is not None:
        path.write_text(config)
    res = crmscore("list", "at-risk", "--config", path)
    assert res.code == 1 and expected in _one_line(res.err)


def test_no_arguments_shows_the_help(crmscore):
    res = crmscore()
    assert res.code == 2 and "Usage" in res.out and "error" not in res.err


def test_progress_lines_show_only_while_the_cli_listens():
    log = logging.getLogger("crmscore.flows")
    target = Console(file=io.StringIO(), width=120)
    parent = logging.getLogger("crmscore")
    before = (parent.level, parent.propagate, list(parent.handlers))
    log.info("not shown: nobody listens")
    with progress_shown(target):
        log.info("Reading the extract at [sqlite:///x.db]")
        log.debug("not shown: below INFO")
    log.info("not shown: the CLI stopped listening")
    assert target.file.getvalue() == "- Reading the extract at [sqlite:///x.db]\n"
    assert (parent.level, parent.propagate, list(parent.handlers)) == before


def test_no_module_level_mutable_state():
    root = Path(__file__).resolve().parents[2]
    users = [str(p.relative_to(root)) for pkg in ("features", "models", "data_contracts", "crm", "pipelines")
             for p in (root / pkg).rglob("*.py") if any(line.lstrip().startswith("global ")
                                                         for line in p.read_text().splitlines())]
    assert users == []
