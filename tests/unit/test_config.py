from __future__ import annotations

import pytest

from pipelines.config import ConfigError, load_settings


def test_horizons_default_to_the_registry():
    from pipelines.config import task_horizons

    s = load_settings(env={})
    assert dict(s.horizons) == {}
    assert task_horizons(s) == {"churn": 90, "clv": 365, "lead_mql": 60, "lead_sql": 90}
    assert s.crm_url.startswith("sqlite:///") and s.crm_url.endswith(".crmscore/crm.db")
    assert s.tracking_uri.endswith(".crmscore/mlflow.db")


def test_overlay_env_and_cli_precedence(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("horizons: {churn: 30}\ncrm: {url: sqlite:///from_file.db}\n")
    s = load_settings(f, env={})
    from pipelines.config import task_horizons

    assert task_horizons(s)["churn"] == 30 and task_horizons(s)["clv"] == 365
    assert s.crm_url == "sqlite:///from_file.db"
    s = load_settings(f, env={"CRMSCORE_CRM_URL": "postgresql+psycopg://u@h/db", "CRMSCORE_MLFLOW_URI": "sqlite:///m.db"})
    assert s.crm_url == "postgresql+psycopg://u@h/db" and s.tracking_uri == "sqlite:///m.db"
    s = load_settings(f, env={"CRMSCORE_CRM_URL": "x://y"}, crm="/data/folder")
    assert s.crm_url == "/data/folder"


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(Exception):
        s.horizons = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.horizons["churn"] = 5  # type: ignore[index]


@pytest.mark.parametrize("text, match", [
    ("horizons: {churn: -1}", r"horizons: Value error, horizons must be positive day counts, got \{'churn': -1\}"),
    ("horizons: {churn_days: 10}", r"horizons: Value error, \['churn_days'\] are not registered tasks; name one of"),
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
