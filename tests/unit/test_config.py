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
    ("model: {max_tree: 100}", r"model.max_tree: Extra inputs are not permitted"),
    ("model: {search: []}", r"model.search: .*at least 1 item"),
    ("evaluation: {collapse_min_n: 0}", r"evaluation.collapse_min_n: Input should be greater than 0"),
    ("gate: {min_primary: {auc: 0.6}}", r"gate.min_primary: .*no quality metric called \['auc'\]"),
    ("monitoring: {thresholds: {psi_warn: 0.3}}", r"monitoring.thresholds: .*psi_warn=0.3, psi_alert=0.25"),
    ("monitoring: {thresholds: {psi_warm: 0.3}}", r"monitoring.thresholds: .*unknown \['psi_warm'\]"),
    ("monitoring: {estimate_draws: 0}", r"monitoring.estimate_draws: Input should be greater than 0"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(f, env={})


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_the_model_evaluation_and_gate_defaults_live_only_in_the_packaged_yaml():
    import dataclasses

    import pydantic

    from models.champion import GateConfig
    from models.train import EvaluationSettings, LightGBMParams, SearchConfig
    from pipelines.config import EvaluationConfig, GateSettings, ModelSettings

    for cls in (ModelSettings, EvaluationConfig, GateSettings):
        assert [n for n, f in cls.model_fields.items() if not f.is_required()] == [], cls.__name__
        with pytest.raises(pydantic.ValidationError):
            cls()
    for cls in (LightGBMParams, SearchConfig, EvaluationSettings, GateConfig):
        assert [f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING] == [], cls.__name__
    # The packaged search is the 4-point search models were trained with before it moved into the YAML.
    s = load_settings(env={})
    assert [tuple(p.model_dump().values()) for p in s.model.search] == [
        (15, 50, 0.1, 0.8), (15, 100, 0.05, 0.8), (7, 20, 0.1, 1.0), (7, 50, 0.15, 0.7)]
    assert s.model.selection_standard_errors == 0.0  # the best validation score wins


def test_a_partial_overlay_of_the_model_sections_keeps_the_packaged_rest(tmp_path):
    from models.train import SearchConfig
    from pipelines.model_config import evaluation_settings, gate_config, lightgbm_params

    f = tmp_path / "my.yaml"
    f.write_text("model:\n  max_trees: 120\n  search: [{num_leaves: 7, min_child_samples: 20, learning_rate: 0.1, "
                 "feature_fraction: 1.0}]\nevaluation: {calibration: platt}\n"
                 "gate: {max_ece: null, min_primary: {roc_auc: 0.6}}\n")
    s = load_settings(f, env={})
    p = lightgbm_params(s)
    assert p.max_trees == 120 and p.search == (SearchConfig(7, 20, 0.1, 1.0),)
    assert (p.max_leaves, p.max_total_leaves) == (load_settings(env={}).model.max_leaves, 3000)  # from the package
    e = evaluation_settings(s)
    assert e.calibration == "platt" and e.slice_min_size == 200
    g = gate_config(s, "roc_auc")
    assert (g.max_ece, g.min_primary, g.min_slice_n, g.min_ece_n) == (None, 0.6, e.collapse_min_n, 500)
    assert gate_config(s, "normalized_gini").min_primary is None  # no floor listed for it



def test_monitoring_thresholds_come_from_the_packaged_yaml(tmp_path):
    from pipelines.model_config import monitor_thresholds

    t = monitor_thresholds(load_settings(env={}))
    assert (t.min_rows, t.alpha, t.correction, t.psi_alert, t.level) == (500, 0.01, "holm", 0.25, 0.95)
    assert isinstance(t.min_rows, int)
    f = tmp_path / "m.yaml"
    f.write_text("monitoring: {thresholds: {psi_alert: 0.1}}\n")  # overlays one threshold, keeps the others
    assert monitor_thresholds(load_settings(f, env={})).psi_alert == 0.1

