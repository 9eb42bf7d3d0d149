"""Reading what was written back: ranked lists for marketers and per-record explanations for auditors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from crm.errors import NoScoresError, RecordNotFoundError, UnknownSegmentError
from crm.extract import read_tables, redact
from crm.writeback import read_history, read_scores, read_value_at_risk
from models.tasks import ENTITIES, EntitySpec, get_task


def _segments(location: str, entity: EntitySpec) -> pd.DataFrame:
    """The segment column per entity (account segment, lead source), for filtering and display (contract columns)."""
    table = read_tables(location, tables=[entity.table]).get(entity.table)
    if table is None:
        return pd.DataFrame({"entity_id": pd.Series(dtype="str"), "segment": pd.Series(dtype="str")})
    return table[[entity.id_column, entity.segment_column]].rename(
        columns={entity.id_column: "entity_id", entity.segment_column: "segment"})


def _no_scores(location: str, task: str) -> NoScoresError:
    written = sorted(read_scores(location)["model"].unique())
    if not written:
        return NoScoresError(f"no scores were written to {redact(location)} yet; run `crmscore train`, then "
                             "`crmscore score`")
    return NoScoresError(f"no {task} scores in {redact(location)} (scored: {', '.join(written)}); "
                         f"`crmscore score` reports why a model was not scored (run `crmscore train` first if it has "
                         "no champion)")


def ranked_list(location: str, task: str, *, top: int, segment: str | None = None) -> pd.DataFrame:
    """The top ``top`` records of one model's current scores, ranked, with reasons.

    A task with a value-at-risk partner (churn x clv) is ranked by value at risk when it was written.

    Raises NoScoresError when that model has no current scores, UnknownSegmentError when ``segment`` is none of the
    values in the CRM (an existing segment with no scored record gives an empty frame).
    """
    spec = get_task(task)
    scores = read_scores(location, model=task)
    if scores.empty:
        raise _no_scores(location, task)
    groups = _segments(location, spec.entity_spec)
    frame = scores.merge(groups, on="entity_id", how="left")
    if segment is not None:
        known = sorted(groups["segment"].dropna().unique())
        if segment not in known:
            raise UnknownSegmentError(f"--segment {segment!r} is no {spec.entity} {spec.entity_spec.segment_column} in "
                                      f"{redact(location)}; possible values are {', '.join(known)}")
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


@dataclass(frozen=True)
class RecordHistory:
    """Which record is explained (type, id, its segment or source) and every score written for it, newest first."""

    entity_type: str
    entity_id: str
    group: str  # "segment" for an account, "source" for a lead
    group_value: str | None  # None when the record is no longer in the CRM's table (e.g. erased)
    history: pd.DataFrame

    @property
    def title(self) -> str:
        value = self.group_value if self.group_value is not None else "unknown: not in the CRM any more"
        return f"{self.entity_type} {self.entity_id} ({self.group} {value})"


def _find_entity(location: str, entity_id: str, entity_types: tuple[str, ...]) -> tuple[str, str | None] | None:
    for entity in entity_types:
        groups = _segments(location, ENTITIES[entity])
        hit = groups.loc[groups["entity_id"] == entity_id, "segment"]
        if len(hit):
            return entity, (None if pd.isna(hit.iloc[0]) else str(hit.iloc[0]))
    return None


def explain_record(location: str, entity_id: str) -> RecordHistory:
    """Every score ever written for ``entity_id`` (all models), newest first, with the record's type and group.

    Raises RecordNotFoundError when no score was ever written for this id, saying whether the id is an account, a
    lead or neither.
    """
    hist = read_history(location, entity_id=entity_id)
    if hist.empty:
        found = _find_entity(location, entity_id, tuple(ENTITIES))
        if found is None:
            raise RecordNotFoundError(f"no account or lead with id {entity_id!r} in {redact(location)}; pass an "
                                      "account_id or lead_id as `crmscore list` shows them")
        raise RecordNotFoundError(f"{found[0]} {entity_id!r} has no score in {redact(location)}: it was not eligible "
                                  "for any model (deleted, opted out or outside the population), or `crmscore score` "
                                  "has not run yet")
    hist = hist.sort_values(["as_of", "scored_at", "model"], ascending=[False, False, True]).reset_index(drop=True)
    entity = str(hist["entity_type"].iloc[0])
    found = _find_entity(location, entity_id, (entity,))
    return RecordHistory(entity_type=entity, entity_id=entity_id, group=ENTITIES[entity].segment_column,
                         group_value=found[1] if found else None, history=hist)


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
