"""Model cards: one Markdown page per registered model version, written from the trained model's own record.

The card is what a CRM admin or analyst reads before trusting a score: which data and cutoffs it was
trained on, who is scored (eligibility), how it compares with simple baselines on out-of-time data,
whether its probabilities are calibrated, where it is weak (slices), what drives it, and known limits.
Pure: no I/O, no clock; the registry logs the returned text as ``model_card.md``.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.evaluate import slices_long
from models.champion import total_not_judged
from models.metrics import metric_label, metric_order, metric_spec


def decile_table(y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series, n_bins: int = 10) -> pd.DataFrame:
    """Realized outcome by predicted decile.

    Parameters
    ----------
    y_true
        Observed labels (0/1) or values (e.g. margin), one per scored row.
    y_pred
        Predictions for the same rows.
    n_bins
        Number of equal-count bins.

    Returns
    -------
    pd.DataFrame
        One row per bin, ``decile`` 1 = highest predictions: ``n``, ``mean_pred``, ``mean_true``,
        ``lift`` (bin mean over overall mean) and ``capture`` (share of the total outcome in the bin).
        Ties are broken by position so bins have equal counts (±1).
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y.shape[0]} vs {p.shape[0]}.")
    n = len(p)
    if n == 0:
        return pd.DataFrame(columns=["decile", "n", "mean_pred", "mean_true", "lift", "capture"])
    # Stable descending order: rank 0 is the highest prediction.
    order = np.argsort(-p, kind="stable")
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    decile = rank * n_bins // n + 1
    frame = pd.DataFrame({"decile": decile, "y": y, "p": p})
    out = frame.groupby("decile").agg(n=("y", "size"), mean_pred=("p", "mean"), mean_true=("y", "mean"),
                                      sum_true=("y", "sum")).reset_index()
    overall = y.mean()
    total = y.sum()
    out["lift"] = out["mean_true"] / overall if overall != 0 else np.nan
    out["capture"] = out["sum_true"] / total if total != 0 else np.nan
    return out.drop(columns="sum_true")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ts(value: Any) -> str:
    return pd.Timestamp(value).isoformat() if value is not None else "n/a"


def _cutoff_line(name: str, cutoffs: Sequence[Any]) -> list[Any]:
    stamps = sorted(pd.Timestamp(c) for c in cutoffs)
    if not stamps:
        return [name, 0, "n/a", "n/a"]
    return [name, len(stamps), stamps[0].date().isoformat(), stamps[-1].date().isoformat()]


def _spec_fields(spec: Any) -> dict[str, Any]:
    if hasattr(spec, "to_dict"):
        return spec.to_dict()
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    return {k: getattr(spec, k) for k in ("name", "entity", "primary_metric") if hasattr(spec, k)}


def render_model_card(
    model: Any,
    spec: Any,
    *,
    version: int | str | None,
    data_window: tuple[Any, Any],
    eligibility_text: str,
    extract_fingerprint: Mapping[str, Any],
    top_drivers: Sequence[tuple[str, float]],
    known_limits: Sequence[str],
    max_total_error: float | None,
) -> str:
    """Render the model card of one trained model as Markdown.

    Parameters
    ----------
    model
        A ``models.train.TrainingReport`` (uses ``task``, ``feature_names``, ``params``, ``best_iteration``,
        ``train/valid/test_cutoffs``, ``metrics``, ``baseline_metrics``, ``slice_metrics``, ``evaluation_frame``).
    spec
        The task spec (frozen dataclass with at least ``name``, ``entity``, ``primary_metric``).
    version
        Registered model version, or ``None`` before registration.
    data_window
        ``(first_ts, last_ts)`` of the extract events the model saw (UTC timestamps).
    eligibility_text
        Who is scored, in plain words (from the contract's eligibility rules).
    extract_fingerprint
        Fingerprint of the extract (row counts, hashes, contract versions); shown as a key/value table.
    top_drivers
        ``(readable feature label, mean |SHAP|)`` pairs, most important first.
    known_limits
        Plain sentences, one bullet each.
    max_total_error
        The gate's tolerance on the held-out total (``gate.max_total_error``); amount tasks show whether their
        predicted total passes it. ``None``: the total is not judged.

    Returns
    -------
    str
        The Markdown text (ends with a newline). All metrics are held-out, out-of-time test metrics.
    """
    fields = _spec_fields(spec)
    task = fields.get("name", getattr(model, "task", "?"))
    primary = fields.get("primary_metric", "")
    title_version = f" v{version}" if version is not None else " (unregistered)"
    out: list[str] = [f"# Model card: crmscore-{task}{title_version}", ""]

    out += ["## Task", ""]
    out.append(_table(["field", "value"], [[k, v] for k, v in fields.items() if not isinstance(v, dict | list)]))
    out += ["", f"Features: {len(model.feature_names)}; boosting rounds (best iteration): {model.best_iteration}.", ""]

    out += ["## Data window and cutoffs", ""]
    out.append(f"Extract events from {_ts(data_window[0])} to {_ts(data_window[1])} (UTC). "
               "Features use events strictly before each cutoff; labels use the horizon after it.")
    out.append("")
    out.append(_table(
        ["split", "cutoffs", "first", "last"],
        [_cutoff_line("train", model.train_cutoffs), _cutoff_line("validation", model.valid_cutoffs),
         _cutoff_line("test (held out)", model.test_cutoffs)],
    ))
    out += ["", "## Eligibility", "", eligibility_text.strip(), ""]

    out += ["## Metrics vs baselines (held-out test cutoffs)", ""]
    metrics = dict(model.metrics)
    baselines = dict(model.baseline_metrics)
    header = ["metric", "model", *baselines.keys()]
    rows = []
    for m in metric_order(metrics):
        spec = metric_spec(m)
        arrow = " (lower is better)" if spec is not None and spec.higher_is_better is False else ""
        name = metric_label(m) + arrow + (" **primary**" if m == primary else "")
        rows.append([name, float(metrics[m]), *[float(b.get(m, np.nan)) for b in baselines.values()]])
    out += [_table(header, rows), ""]

    out += ["## Calibration", ""]
    ev = model.evaluation_frame
    if "ece" in metrics:
        out.append(f"Expected calibration error {_cell(float(metrics['ece']))}"
                   + (f", Brier score {_cell(float(metrics['brier']))}" if "brier" in metrics else "")
                   + ". Mean predicted vs observed rate by predicted decile (1 = highest risk):")
    else:
        ratio = metrics.get("total_ratio")
        out.append("Mean predicted vs realized value by predicted decile (1 = highest)"
                   + (f"; predicted total / realized total = {_cell(float(ratio))}" if ratio is not None else "")
                   + ":")
        if ratio is not None and max_total_error is not None:
            se = float(metrics.get("total_rel_se", float("nan")))
            passed = bool(np.isfinite(float(ratio)) and abs(float(ratio) - 1) <= max_total_error)
            verdict = ("not judged: the realized total's relative standard error is "
                       f"{se:.1%}, too noisy to tell a {max_total_error:.0%} error" if total_not_judged(se, max_total_error)
                       else "passed" if passed else "failed, so this model cannot become champion")
            out += ["", f"Gate on the total: the predicted total must be within {max_total_error:.0%} of the realized "
                    f"total (`gate.max_total_error`): {verdict}."]
    out.append("")
    dec = decile_table(ev["y"], ev["score"])
    out += [_table(["decile", "n", "mean predicted", "mean observed", "lift", "capture"],
                   dec[["decile", "n", "mean_pred", "mean_true", "lift", "capture"]].itertuples(index=False)), ""]

    out += ["## Slices", ""]
    sm = slices_long(model.slice_metrics)
    if sm is None or len(sm) == 0:
        out += ["No slice metrics were computed.", ""]
    else:
        wide = (sm.pivot_table(index=["slice_column", "slice_value", "n"], columns="metric", values="value",
                               aggfunc="first", observed=True)
                .reset_index())
        metric_cols = metric_order(c for c in wide.columns if c not in ("slice_column", "slice_value", "n"))
        out += [_table(["slice", "value", "n", *[metric_label(m) for m in metric_cols]],
                       [[r["slice_column"], r["slice_value"], int(r["n"]), *[float(r[m]) for m in metric_cols]]
                        for _, r in wide.iterrows()]), ""]

    out += ["## Top global drivers", "", "Mean absolute SHAP contribution on the held-out rows.", ""]
    out += [_table(["rank", "feature", "mean abs SHAP"],
                   [[i + 1, label, float(v)] for i, (label, v) in enumerate(top_drivers)]), ""]

    out += ["## Extract fingerprint", ""]
    out += [_table(["key", "value"], [[k, _short(v)] for k, v in extract_fingerprint.items()]), ""]

    out += ["## Known limits", ""]
    out += [f"- {line}" for line in known_limits] or ["- None recorded."]
    return "\n".join(out).rstrip() + "\n"


def _short(value: Any, width: int = 80) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."
