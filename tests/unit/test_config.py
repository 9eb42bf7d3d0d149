from __future__ import annotations

import pytest

from pipelines.config import ConfigError, load_settings


def test_defaults_match_the_contract_horizons():
    s = load_settings(env={})
    assert s.horizons.model_dump() == {"churn_days": 90, "clv_days": 365, "lead_mql_days": 60, "lead_sql_days": 90}
    assert s.crm_url.startswith("sqlite:///") and s.crm_url.endswith(".crmscore/crm.db")
    assert s.tracking_uri.endswith(".crmscore/mlflow.db")


def test_overlay_env_and_cli_precedence(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("horizons: {churn_days: 30}\ncrm: {url: sqlite:///from_file.db}\n")
    s = load_settings(f, env={})
    assert s.horizons.churn_days == 30 and s.horizons.clv_days == 365
    assert s.crm_url == "sqlite:///from_file.db"
    s = load_settings(f, env={"CRMSCORE_CRM_URL": "postgresql+psycopg://u@h/db", "CRMSCORE_MLFLOW_URI": "sqlite:///m.db"})
    assert s.crm_url == "postgresql+psycopg://u@h/db" and s.tracking_uri == "sqlite:///m.db"
    s = load_settings(f, env={"CRMSCORE_CRM_URL": "x://y"}, crm="/data/folder")
    assert s.crm_url == "/data/folder"


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(Exception):
        s.horizons.churn_days = 5  # type: ignore[misc]


@pytest.mark.parametrize("text, match", [
    ("horizons: {churn_days: -1}", r"horizons.churn_days: Input should be greater than 0"),
    ("horizons: {churn_dayz: 10}", r"horizons.churn_dayz: Extra inputs are not permitted"),
    ("- a list", r"must hold a mapping"),
    ("a: [", r"not valid YAML"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(f, env={})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml", env={})
