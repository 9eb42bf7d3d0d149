"""Reasons for a score: SHAP contributions mapped to the reported scale, top reasons, readable sentences.

Inputs are plain arrays so this module does not depend on how a model is trained:

- ``contrib``: LightGBM ``predict(..., pred_contrib=True)`` output in *raw* space, shape
  ``(n_rows, n_features + 1)``; the last column is the base value (expected raw score), so each
  row sums to the raw model output (log-odds for binary models, log of the mean for Tweedie).
- ``calibrate``: a vectorised callable mapping raw scores to the reported score (a calibrated
  probability, or an amount for CLV), e.g. ``TrainedModel.calibrate_raw``.
- ``catalog``: feature column -> an object with attributes ``label``, ``family``, ``kind``
  (``"numeric"`` or ``"categorical"``) and ``unit`` (see :data:`UNIT_FORMATS`). A plain mapping
  with those keys works too.

Grain: one output per input row, in input order. Nothing here reads a clock or does I/O.
"""
from __future__ import annotations

from models.errors import ModelError

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


#: Units understood by the value formatter; any other unit (or None) prints as a plain number.
#: count -> integer; days -> "45 days"; currency -> 2 decimals with thousands separator;
#: share -> a fraction in [0, 1] shown as a percentage; percent -> already in 0..100.
UNIT_FORMATS: tuple[str, ...] = ("count", "days", "currency", "share", "percent")

#: Default outcome words per task, used as "raises <outcome>" / "lowers <outcome>".
OUTCOME_WORDS: dict[str, str] = {
    "churn": "churn risk",
    "clv": "expected value",
    "lead_mql": "the chance of reaching SQL",
    "lead_sql": "the chance of winning",
}

MISSING_TEXT = "none recorded"

# Below this |raw - base| the secant slope is numerically meaningless; use the derivative instead.
_EPS_RAW = 1e-9
_DERIV_STEP = 1e-5


class ExplanationError(ModelError, ValueError):
    """Inputs to the explanation step do not fit together (shapes, names, options).

    Defined here so this module stands alone; the integrator may re-base it on ``models.errors.ModelError``.
    """


# ---------------------------------------------------------------------------------------------
# Calibration of contributions
# ---------------------------------------------------------------------------------------------
def calibrated_contributions(
    contrib: np.ndarray, calibrate: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Map raw-space SHAP contributions onto the calibrated (reported) scale.

    Choice: each row's contributions are scaled by the secant slope of the calibration between
    the base value and the row's raw score,
    ``s = (f(raw) - f(base)) / (raw - base)``, so that the scaled contributions sum exactly to
    ``f(raw) - f(base)``: the reasons explain the score the CRM shows, not log-odds. Scaling is
    per row and uniform across features, so the ranking and signs of the reasons are those of
    exact TreeSHAP (a monotone calibration keeps ``s >= 0``). When ``raw == base`` (up to 1e-9)
    the secant is replaced by the derivative ``f'(base)`` (central difference), the limit of the
    secant. The exact raw contributions are not modified; keep them for audits
    (``contrib.sum(axis=1)`` reproduces the raw model output).

    Parameters
    ----------
    contrib : ndarray, shape (n_rows, n_features + 1)
        Raw-space contributions; last column is the base value.
    calibrate : callable
        Vectorised map from raw scores (1-D float array) to reported scores (same shape).

    Returns
    -------
    contrib_cal : ndarray, shape (n_rows, n_features)
        Contributions on the reported scale (base column dropped).
    base_cal : ndarray, shape (n_rows,)
        ``f(base)``, the calibrated base value per row; ``contrib_cal.sum(1) + base_cal == f(raw)``.
    """
    contrib = np.asarray(contrib, dtype=np.float64)
    if contrib.ndim != 2 or contrib.shape[1] < 2:
        raise ExplanationError(
            f"contrib must be a 2-D array (n_rows, n_features + 1) with the base value last; got shape {contrib.shape}."
        )
    n = contrib.shape[0]
    base = contrib[:, -1]
    feats = contrib[:, :-1]
    raw = feats.sum(axis=1) + base
    # One calibrate call for raw and base together: calibrators often have per-call overhead.
    mapped = np.asarray(calibrate(np.concatenate([raw, base])), dtype=np.float64)
    if mapped.shape != (2 * n,):
        raise ExplanationError(
            f"calibrate returned shape {mapped.shape} for an input of shape {(2 * n,)}; it must be elementwise."
        )
    f_raw, f_base = mapped[:n], mapped[n:]
    delta = raw - base
    flat = np.abs(delta) < _EPS_RAW
    scale = np.empty(n, dtype=np.float64)
    np.divide(f_raw - f_base, delta, out=scale, where=~flat)
    if flat.any():
        b = base[flat]
        up = np.asarray(calibrate(b + _DERIV_STEP), dtype=np.float64)
        down = np.asarray(calibrate(b - _DERIV_STEP), dtype=np.float64)
        scale[flat] = (up - down) / (2 * _DERIV_STEP)
    contrib_cal = feats * scale[:, None]
    # On flat rows the identity error is O((raw - base)^2) < 1e-18: no correction (it could flip a tiny reason).
    return contrib_cal, f_base


# ---------------------------------------------------------------------------------------------
# Top reasons
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReasonIndex:
    """The selected reasons as arrays: per row, ``n_up`` raising slots then ``n_down`` lowering slots.

    ``feature[i, j]`` is a column index into the feature list, or -1 when the slot is empty (a row
    with fewer than ``n_up`` positive contributions); ``contribution[i, j]`` is the calibrated
    contribution (NaN for empty slots). Raising slots are in decreasing order, lowering slots in
    increasing order (most negative first).
    """

    feature: np.ndarray
    contribution: np.ndarray


def _top_k(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries per row, sorted descending (argpartition, then sort k)."""
    n, p = matrix.shape
    k = min(k, p)
    if k == 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0))
    if k < p:
        part = np.argpartition(-matrix, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(p), (n, p)).copy()
    vals = np.take_along_axis(matrix, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def select_reasons(contrib_cal: np.ndarray, *, n_up: int = 3, n_down: int = 1) -> ReasonIndex:
    """Pick per row the ``n_up`` largest positive and ``n_down`` most negative contributions.

    Vectorised: one ``argpartition`` over the whole matrix per direction, then a sort of the k
    selected columns only. Zero contributions are never reasons.
    """
    if n_up < 0 or n_down < 0:
        raise ExplanationError(f"n_up and n_down must be >= 0; got n_up={n_up}, n_down={n_down}.")
    m = np.asarray(contrib_cal, dtype=np.float64)
    if m.ndim != 2:
        raise ExplanationError(f"contrib_cal must be 2-D (n_rows, n_features); got shape {m.shape}.")
    m = np.nan_to_num(m, nan=0.0)
    up_idx, up_val = _top_k(m, n_up)
    dn_idx, dn_val = _top_k(-m, n_down)
    dn_val = -dn_val
    feature = np.concatenate([up_idx, dn_idx], axis=1)
    contribution = np.concatenate([up_val, dn_val], axis=1)
    valid = np.concatenate([up_val > 0, dn_val < 0], axis=1)
    feature = np.where(valid, feature, -1)
    contribution = np.where(valid, contribution, np.nan)
    # Pad to the requested width when there are fewer features than slots.
    want = n_up + n_down
    if feature.shape[1] < want:
        n = feature.shape[0]
        pad_up = n_up - up_idx.shape[1]
        pad_dn = n_down - dn_idx.shape[1]
        f_up, f_dn = feature[:, : up_idx.shape[1]], feature[:, up_idx.shape[1]:]
        c_up, c_dn = contribution[:, : up_idx.shape[1]], contribution[:, up_idx.shape[1]:]
        feature = np.concatenate(
            [f_up, np.full((n, pad_up), -1), f_dn, np.full((n, pad_dn), -1)], axis=1
        )
        contribution = np.concatenate(
            [c_up, np.full((n, pad_up), np.nan), c_dn, np.full((n, pad_dn), np.nan)], axis=1
        )
    return ReasonIndex(feature=feature.astype(np.int64), contribution=contribution)


def _info(catalog: Mapping[str, Any], feature: str) -> tuple[str, str, str | None]:
    """(label, kind, unit) of a feature; attribute or mapping access; unknown features fall back to their name."""
    info = catalog.get(feature)
    if info is None:
        return feature, "numeric", None
    if isinstance(info, Mapping):
        return info.get("label", feature), info.get("kind", "numeric"), info.get("unit")
    return getattr(info, "label", feature), getattr(info, "kind", "numeric"), getattr(info, "unit", None)


def _json_value(v: Any, kind: str, unit: str | None) -> Any:
    """A JSON-safe raw value: None for missing, int for counts/days, str for categoricals, float otherwise."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    if kind == "categorical":
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if unit in ("count", "days") and f.is_integer():
        return int(f)
    return f


def top_reasons(
    contrib_cal: np.ndarray,
    feature_names: Sequence[str],
    values: pd.DataFrame,
    catalog: Mapping[str, Any],
    *,
    n_up: int = 3,
    n_down: int = 1,
    rank_by: np.ndarray | None = None,
) -> list[list[dict]]:
    """Per row, the top raising and top lowering reasons.

    Parameters
    ----------
    contrib_cal : ndarray, shape (n_rows, n_features)
        Calibrated contributions (from :func:`calibrated_contributions`), columns in
        ``feature_names`` order.
    feature_names : sequence of str
        Feature column names, one per column of ``contrib_cal``.
    values : DataFrame
        The feature values the model saw, one row per row of ``contrib_cal`` (same order); must
        hold every feature that is selected as a reason.
    catalog : mapping
        Feature -> FeatureInfo (label, family, kind, unit).
    n_up, n_down : int
        How many raising / lowering reasons per row (config keys ``reasons_up`` / ``reasons_down``).
    rank_by : ndarray, optional
        The raw-space contributions, same shape. Reasons are then chosen and signed by them, and each reason also
        carries its ``raw_contribution``. Calibrated contributions are the raw ones times a positive per-row
        constant, so the choice is the same wherever that constant is positive; where a flat calibrator step makes
        it zero (the calibrated score equals the calibrated base) the raw contributions still name the drivers.

    Returns
    -------
    list of list of dict
        One list per row: raising reasons (largest first) then lowering reasons (most negative
        first), each ``{"feature", "label", "value", "contribution"}``. Rows may hold fewer
        reasons when fewer contributions are non-zero.
    """
    feature_names = list(feature_names)
    m = np.asarray(contrib_cal)
    if m.ndim != 2 or m.shape[1] != len(feature_names):
        raise ExplanationError(
            f"contrib_cal has shape {m.shape} but {len(feature_names)} feature names were given; "
            "pass the calibrated matrix without the base column."
        )
    if len(values) != m.shape[0]:
        raise ExplanationError(f"values has {len(values)} rows but contrib_cal has {m.shape[0]}; they must align.")
    raw = None if rank_by is None else np.asarray(rank_by, dtype=np.float64)
    if raw is not None and raw.shape != m.shape:
        raise ExplanationError(f"rank_by has shape {raw.shape} but contrib_cal has {m.shape}; they must align.")
    idx = select_reasons(m if raw is None else raw, n_up=n_up, n_down=n_down)
    if raw is not None:  # report calibrated values of the features the raw contributions chose
        rows_all = np.arange(m.shape[0])[:, None]
        safe = np.where(idx.feature >= 0, idx.feature, 0)
        raw_sel = np.where(idx.feature >= 0, raw[rows_all, safe], np.nan)
        idx = ReasonIndex(feature=idx.feature, contribution=np.where(idx.feature >= 0, m[rows_all, safe], np.nan))
    used = np.unique(idx.feature[idx.feature >= 0])
    missing = [feature_names[j] for j in used if feature_names[j] not in values.columns]
    if missing:
        raise ExplanationError(f"values lacks feature columns selected as reasons: {missing[:10]}.")
    n, k = idx.feature.shape
    # Per used feature, its JSON-safe values for the rows that selected it (column-wise, not row-wise).
    val_grid = np.empty((n, k), dtype=object)
    for j in used:
        name = feature_names[j]
        _, kind, unit = _info(catalog, name)
        rows, slots = np.nonzero(idx.feature == j)
        col = values[name].to_numpy(dtype=object)[rows]
        val_grid[rows, slots] = [_json_value(v, kind, unit) for v in col]
    labels = {j: _info(catalog, feature_names[j])[0] for j in used}
    feat_l = idx.feature.tolist()
    con_l = idx.contribution.tolist()
    val_l = val_grid.tolist()
    out: list[list[dict]] = []
    if raw is None:
        for fr, cr, vr in zip(feat_l, con_l, val_l):
            out.append([{"feature": feature_names[j], "label": labels[j], "value": v, "contribution": c}
                        for j, c, v in zip(fr, cr, vr) if j >= 0])
        return out
    for fr, cr, rr, vr in zip(feat_l, con_l, raw_sel.tolist(), val_l):
        out.append([{"feature": feature_names[j], "label": labels[j], "value": v, "contribution": c,
                     "raw_contribution": r} for j, c, r, v in zip(fr, cr, rr, vr) if j >= 0])
    return out


# ---------------------------------------------------------------------------------------------
# Sentences and JSON
# ---------------------------------------------------------------------------------------------
def _format_values(vals: np.ndarray, kind: str, unit: str | None) -> list[str]:
    """Format a column of raw values for a sentence, vectorised per feature (one kind/unit)."""
    s = pd.Series(vals, dtype=object)
    miss = s.isna().to_numpy()
    out = np.full(len(s), MISSING_TEXT, dtype=object)
    ok = ~miss
    if not ok.any():
        return out.tolist()
    if kind == "categorical":
        out[ok] = s[ok].astype(str).str.replace("_", " ").to_numpy()
        return out.tolist()
    x = pd.to_numeric(s[ok], errors="coerce").astype(np.float64).to_numpy()
    if unit == "count":
        txt = [f"{int(round(v)):,}" for v in x]
    elif unit == "days":
        txt = [f"{int(round(v)):,} day" if round(v) == 1 else f"{int(round(v)):,} days" for v in x]
    elif unit == "currency":
        txt = [f"{v:,.2f}" for v in x]
    elif unit == "share":
        txt = [f"{v * 100:.0f}%" for v in x]
    elif unit == "percent":
        txt = [f"{v:.0f}%" for v in x]
    else:
        txt = [f"{int(v):,}" if float(v).is_integer() else f"{v:,.2f}" for v in x]
    out[ok] = txt
    return out.tolist()


def _direction(contribution: float, outcome: str) -> str:
    return f"raises {outcome}" if contribution > 0 else f"lowers {outcome}"


def reason_sentence(reasons: list[dict], catalog: Mapping[str, Any], *, outcome: str = "churn risk") -> str:
    """One plain sentence for one row's reasons, e.g.
    ``"Logins in the last 30 days: 2 (raises churn risk); Open support tickets: 3 (raises churn risk)"``.

    Values are formatted by the feature's unit (counts as integers, days, currency with 2
    decimals, shares as %, categoricals as their label value, missing as "none recorded").
    ``outcome`` is the words after "raises"/"lowers" (see :data:`OUTCOME_WORDS`). A row without
    reasons gives "No single factor stands out".
    """
    return reason_sentences([reasons], catalog, outcome=outcome)[0]


def reason_sentences(
    reasons_rows: Sequence[list[dict]], catalog: Mapping[str, Any], *, outcome: str = "churn risk"
) -> list[str]:
    """Batch :func:`reason_sentence`: values are formatted once per feature over all rows (vectorised).

    Returns one sentence per row, in input order.
    """
    flat_row: list[int] = []
    flat_feat: list[str] = []
    flat_val: list[Any] = []
    flat_con: list[float] = []
    for i, rs in enumerate(reasons_rows):
        for r in rs:
            flat_row.append(i)
            flat_feat.append(r["feature"])
            flat_val.append(r["value"])
            flat_con.append(r.get("raw_contribution", r["contribution"]))
    m = len(flat_feat)
    text = np.empty(m, dtype=object)
    if m:
        feats = np.asarray(flat_feat, dtype=object)
        vals = np.asarray(flat_val + [None], dtype=object)[:-1]  # keep a 1-D object array even for list values
        con = np.asarray(flat_con, dtype=np.float64)
        for name in pd.unique(feats):
            sel = np.nonzero(feats == name)[0]
            label, kind, unit = _info(catalog, name)
            formatted = _format_values(vals[sel], kind, unit)
            up, down = f" (raises {outcome})", f" (lowers {outcome})"
            text[sel] = [f"{label}: {v}{up if c > 0 else down}" for v, c in zip(formatted, con[sel])]
    out: list[list[str]] = [[] for _ in range(len(reasons_rows))]
    for i, t in zip(flat_row, text.tolist()):
        out[i].append(t)
    return ["; ".join(parts) if parts else "No single factor stands out" for parts in out]


def reasons_json(reasons_rows: Sequence[list[dict]]) -> list[str]:
    """Compact JSON text per row (``[{"feature":..,"label":..,"value":..,"contribution":..}, ...]``).

    Contributions are rounded to 6 significant digits: the CRM shows them, the audit trail keeps
    the raw model in MLflow.
    """
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
    out = []
    for rs in reasons_rows:
        out.append(
            dumps(
                [
                    {
                        "feature": r["feature"],
                        "label": r["label"],
                        "value": r["value"],
                        "contribution": float(f"{r['contribution']:.6g}"),
                    }
                    for r in rs
                ]
            )
        )
    return out


@dataclass(frozen=True)
class Explained:
    """Everything the write-back needs from one scoring batch, row-aligned with the input.

    ``score`` is the calibrated score f(raw); ``raw`` the raw model output (contributions + base).
    """

    raw: np.ndarray
    score: np.ndarray
    reasons: list[list[dict]]
    reasons_json: list[str]
    reason_text: list[str]


def explain_batch(
    contrib: np.ndarray,
    calibrate: Callable[[np.ndarray], np.ndarray],
    feature_names: Sequence[str],
    values: pd.DataFrame,
    catalog: Mapping[str, Any],
    *,
    outcome: str,
    n_up: int = 3,
    n_down: int = 1,
) -> Explained:
    """The whole chain after ``pred_contrib``: calibrate, pick top reasons, sentences, JSON."""
    contrib = np.asarray(contrib, dtype=np.float64)
    contrib_cal, base_cal = calibrated_contributions(contrib, calibrate)
    raw = contrib.sum(axis=1)
    score = contrib_cal.sum(axis=1) + base_cal
    reasons = top_reasons(contrib_cal, feature_names, values, catalog, n_up=n_up, n_down=n_down,
                          rank_by=contrib[:, :-1])
    return Explained(
        raw=raw,
        score=score,
        reasons=reasons,
        reasons_json=reasons_json(reasons),
        reason_text=reason_sentences(reasons, catalog, outcome=outcome),
    )
