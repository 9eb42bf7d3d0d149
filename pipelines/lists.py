"""Reading what was written back: ranked lists for marketers and per-record explanations for auditors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from crm.extract import read_tables
from crm.writeback import read_history, read_scores, read_value_at_risk
from models.tasks import EntitySpec, get_task


def _segments(location: str, entity: EntitySpec) -> pd.DataFrame:
    """The segment column per entity (account segment, lead source), for filtering and display (contract columns)."""
    table = read_tables(location, tables=[entity.table]).get(entity.table)
    if table is None:
        return pd.DataFrame({"entity_id": pd.Series(dtype="str"), "segment": pd.Series(dtype="str")})
    return table[[entity.id_column, entity.segment_column]].rename(
        columns={entity.id_column: "entity_id", entity.segment_column: "segment"})


def ranked_list(location: str, task: str, *, top: int, segment: str | None = None) -> pd.DataFrame:
    """The top ``top`` records of one model's current scores, ranked, with reasons.

    A task with a value-at-risk partner (churn x clv) is ranked by value at risk when it was written.
    """
    spec = get_task(task)
    scores = read_scores(location, model=task)
    if scores.empty:
        return pd.DataFrame(columns=["rank", "entity_id", "segment", "score", "band", "reason_text"])
    frame = scores.merge(_segments(location, spec.entity_spec), on="entity_id", how="left")
    if segment is not None:
        frame = frame[frame["segment"] == segment]
    order = "score"
    if spec.value_at_risk_with:
        var = read_value_at_risk(location)
        if not var.empty:
            frame = frame.merge(var[["entity_id", "clv", "value_at_risk"]], on="entity_id", how="left")
            order = "value_at_risk"
    frame = frame.sort_values([order, "entity_id"], ascending=[False, True]).head(top).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    keep = ["rank", "entity_type", "entity_id", "segment", "model", "score", "score_percentile", "band",
            "clv", "value_at_risk", "reason_text", "reasons", "model_version", "as_of", "scored_at"]
    return frame[[c for c in keep if c in frame.columns]]


def explain_record(location: str, entity_id: str) -> pd.DataFrame:
    """Every score ever written for ``entity_id`` (all models), newest first."""
    hist = read_history(location, entity_id=entity_id)
    return hist.sort_values(["as_of", "scored_at", "model"], ascending=[False, False, True]).reset_index(drop=True)


def waterfall_for(settings, history: pd.DataFrame, target: Path) -> list[Path]:
    """SHAP waterfall of the latest score per model, recomputed with the very model version that made it.

    Features are point-in-time, so rebuilding them at the score's as-of date from the extract gives the values
    the model saw (unless rows before that date were changed in the CRM since).
    """
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from models.dataset import build_scoring_features
    from models.plots import waterfall_plot
    from models.registry import Registry

    registry = Registry(settings.tracking_uri, settings.artifact_root, settings.mlflow.experiment)
    tables = profiling_view(read_extract(settings.crm_url).tables)
    from pipelines.model_config import feature_options

    options = feature_options(settings)
    latest = history.drop_duplicates("model")
    paths = []
    for _, row in latest.iterrows():
        spec = get_task(row["model"])
        fs = build_scoring_features(tables, spec, as_of=pd.Timestamp(row["as_of"]), options=options)
        rec = fs.frame[fs.frame["entity_id"] == row["entity_id"]]
        if rec.empty:
            continue
        model = registry.load_version(spec.name, int(row["model_version"]))
        contrib = model.contributions(rec)[0]
        names = list(model.feature_names)
        path = Path(str(target).replace("{model}", spec.name))
        if "{model}" not in str(target) and len(latest) > 1:
            path = target.with_name(f"{target.stem}_{spec.name}{target.suffix or '.png'}")
        labels = [model.catalog[c].label for c in names]
        title = f"{row['entity_id']} - {spec.name} v{row['model_version']} as of {pd.Timestamp(row['as_of']).date()}"
        paths.append(waterfall_plot(contrib, rec.iloc[0][names], labels, path, title=title))
    return paths
