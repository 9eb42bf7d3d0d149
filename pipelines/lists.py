"""Reading what was written back: ranked lists for marketers and per-record explanations for auditors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm.errors import NoScoresError, RecordNotFoundError, UnknownSegmentError
from crm.extract import read_tables, redact
from crm.writeback import read_history, read_scores, read_value_at_risk
from models.tasks import ENTITIES, EntitySpec, get_task


def _segments(location: str, entity: EntitySpec) -> pd.DataFrame:
    """The segment column per entity (account segment, lead source), for filtering and display (contract columns)."""
    table = read_tables(location, tables=[entity.table],
                        columns={entity.table: [entity.id_column, entity.segment_column]}).get(entity.table)
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
    if segment is not None:
        known = sorted(groups["segment"].dropna().unique())
        if segment not in known:
            raise UnknownSegmentError(f"--segment {segment!r} is no {spec.entity} {spec.entity_spec.segment_column} in "
                                      f"{redact(location)}; possible values are {', '.join(known)}")
    var = read_value_at_risk(location) if spec.value_at_risk_with else None
    return rank_scores(scores, groups, var, task, top=top, segment=segment)


def rank_scores(scores: pd.DataFrame, groups: pd.DataFrame, var: pd.DataFrame | None, task: str, *, top: int,
                segment: str | None = None) -> pd.DataFrame:
    """Rank one model's scores (the rows of ``scores`` whose model is ``task``) as ``crmscore list`` shows them.

    ``groups`` maps entity_id to segment; ``var`` is ``crm_value_at_risk`` (ranks by value at risk when the task has
    a value-at-risk partner and it is not empty). Pure: the list command and the HTML report both rank through it.
    """
    spec = get_task(task)
    frame = scores[scores["model"] == task].merge(groups, on="entity_id", how="left")
    if segment is not None:
        frame = frame[frame["segment"] == segment]
    order = "score"
    if spec.value_at_risk_with and var is not None and not var.empty:
        frame = frame.merge(var[["entity_id", "clv", "value_at_risk"]], on="entity_id", how="left")
        order = "value_at_risk"
    frame = frame.sort_values([order, "entity_id"], ascending=[False, True]).head(top).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    keep = ["rank", "entity_type", "entity_id", "segment", "model", "score", "score_percentile", "band",
            "clv", "value_at_risk", "reason_text", "reasons", "model_version", "as_of", "scored_at"]
    return frame[[c for c in keep if c in frame.columns]]


def segments_of(location: str, entity: str) -> pd.DataFrame:
    """entity_id -> segment (account segment, lead source) of one entity type, from the CRM's contract columns."""
    return _segments(location, ENTITIES[entity])


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


@dataclass(frozen=True)
class RecordContribution:
    """The latest score of one model for one record, recomputed with the model version that made it."""

    row: pd.Series  # the crm_scores_history row
    feature_names: list[str]
    labels: list[str]
    values: pd.Series  # the record's feature values, in feature order
    contributions: np.ndarray  # features then the base value (raw model scale)
    predictor: Any

    @property
    def title(self) -> str:
        r = self.row
        return f"{r['entity_id']} - {r['model']} v{r['model_version']} as of {pd.Timestamp(r['as_of']).date()}"


def record_contributions(settings, history: pd.DataFrame, registry) -> list[RecordContribution]:
    """SHAP contributions of the latest score per model of one record, with the very model version that made it.

    Features are point-in-time, so rebuilding them at the score's as-of date from the extract gives the values
    the model saw (unless rows before that date were changed in the CRM since). A model whose version is no longer
    in ``registry`` (or a record no longer in the extract) is left out.
    """
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from models.dataset import build_scoring_features
    from models.errors import ModelError
    from pipelines.model_config import feature_options

    tables = profiling_view(read_extract(settings.crm_url).tables)
    options = feature_options(settings)
    out = []
    for _, row in history.drop_duplicates("model").iterrows():
        spec = get_task(row["model"])
        fs = build_scoring_features(tables, spec, as_of=pd.Timestamp(row["as_of"]), options=options)
        rec = fs.frame[fs.frame["entity_id"] == row["entity_id"]]
        if rec.empty:
            continue
        try:
            model = registry.load_version(spec.name, int(row["model_version"]))
        except ModelError:
            continue
        names = list(model.feature_names)
        out.append(RecordContribution(row=row, feature_names=names, labels=[model.catalog[c].label for c in names],
                                      values=rec.iloc[0][names], contributions=model.contributions(rec)[0],
                                      predictor=model))
    return out


def waterfall_for(settings, history: pd.DataFrame, target: Path) -> list[Path]:
    """SHAP waterfall PNG of the latest score per model (see :func:`record_contributions`)."""
    from models.plots import waterfall_plot
    from models.registry import Registry

    registry = Registry.open_existing(settings.tracking_uri, settings.artifact_root, settings.mlflow.experiment)
    found = record_contributions(settings, history, registry) if registry is not None else []
    paths = []
    for rc in found:
        name = rc.row["model"]
        path = Path(str(target).replace("{model}", name))
        if "{model}" not in str(target) and len(found) > 1:
            path = target.with_name(f"{target.stem}_{name}{target.suffix or '.png'}")
        paths.append(waterfall_plot(rc.contributions, rc.values, rc.labels, path, title=rc.title))
    return paths
