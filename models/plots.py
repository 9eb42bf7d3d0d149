"""Evaluation plots: calibration curve, decile lift chart, SHAP beeswarm and waterfall, global importance.

Each plot is a ``*_figure`` function returning a figure, written by the training flow as a PNG file (the MLflow
artifacts) and by the HTML report as deterministic inline SVG (:func:`svg_text`): one drawing code for both.
Every figure is a ``matplotlib.figure.Figure`` drawn on an Agg canvas and never registered with pyplot,
so nothing leaks into pyplot's global figure list and no GUI backend is needed (flows run headless).
matplotlib and shap are imported inside the functions: importing this module costs nothing.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.card import decile_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # attaches itself to fig; savefig then renders with Agg
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


#: Salt of the ids matplotlib writes into an SVG: fixed, so the same figure gives the same bytes on every run.
SVG_HASHSALT = "crmscore"


def svg_text(fig: Figure) -> str:
    """The figure as SVG text, byte-identical for the same figure: fixed id salt, no date or tool in the metadata."""
    import io

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASHSALT, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]  # without the XML prolog and doctype: the report embeds it


def _validate(y: np.ndarray, p: np.ndarray) -> None:
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {y.shape[0]} vs {p.shape[0]}.")
    if len(y) == 0:
        raise ValueError("Cannot plot an empty evaluation frame (0 rows).")


def calibration_curve_plot(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series, path: str | Path,
                           *, n_bins: int = 10) -> Path:
    """:func:`calibration_figure` written as a PNG file at ``path`` (parent folders are created); returns ``path``."""
    return _save(calibration_figure(y, p, n_bins=n_bins), path)


def calibration_figure(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series, *, n_bins: int = 10) -> Figure:
    """Reliability diagram: observed rate vs mean predicted probability per equal-count bin.

    Parameters
    ----------
    y
        Observed 0/1 labels of the held-out rows.
    p
        Predicted probabilities for the same rows.
    n_bins
        Number of equal-count bins.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    _validate(y, p)
    dec = decile_table(y, p, n_bins=n_bins)
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    hi = float(max(dec["mean_pred"].max(), dec["mean_true"].max(), 1e-9)) * 1.05
    ax.plot([0, hi], [0, hi], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.plot(dec["mean_pred"], dec["mean_true"], marker="o", color="tab:blue", label="model")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(f"Calibration ({n_bins} equal-count bins, n={len(y)})")
    ax.legend(loc="upper left")
    return fig


def lift_chart(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series, path: str | Path,
               *, n_bins: int = 10) -> Path:
    """:func:`lift_figure` written as a PNG file at ``path``; returns ``path``."""
    return _save(lift_figure(y, p, n_bins=n_bins), path)


def lift_figure(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series, *, n_bins: int = 10) -> Figure:
    """Decile chart: realized outcome by predicted decile (1 = highest predictions).

    For binary tasks the bars are the observed rate per decile; for regression (CLV) the realized mean
    value per decile. The predicted mean is drawn on top and the overall mean as a dashed line.

    Parameters
    ----------
    y
        Observed labels or values of the held-out rows.
    p
        Predictions for the same rows.
    n_bins
        Number of equal-count bins.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    _validate(y, p)
    dec = decile_table(y, p, n_bins=n_bins)
    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(dec["decile"], dec["mean_true"], color="tab:blue", alpha=0.8, label="realized mean")
    ax.plot(dec["decile"], dec["mean_pred"], marker="o", color="tab:orange", label="predicted mean")
    ax.axhline(float(y.mean()), linestyle="--", color="grey", linewidth=1, label="overall mean")
    ax.set_xticks(list(dec["decile"]))
    ax.set_xlabel("predicted decile (1 = highest)")
    ax.set_ylabel("realized outcome")
    top = dec.iloc[0]
    ax.set_title(f"Lift by decile (top decile lift {top['lift']:.2f}, captures {top['capture']:.0%})")
    ax.legend(loc="upper right")
    return fig


def _as_colour_values(column: pd.Series) -> np.ndarray:
    """Numeric view of a feature column for colouring: numbers as float, categories as codes, missing as NaN."""
    if pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype):
        return pd.to_numeric(column, errors="coerce").astype(float).to_numpy(na_value=np.nan)
    codes = pd.Categorical(column).codes.astype(float)
    codes[codes < 0] = np.nan
    return codes


def shap_summary_plot(contributions: np.ndarray, X: pd.DataFrame, labels: Sequence[str], path: str | Path,
                      *, max_display: int = 15) -> Path:
    """SHAP beeswarm of per-row contributions, with readable feature labels.

    Parameters
    ----------
    contributions
        ``Predictor.contributions(X)``: shape (rows, features + 1), the last column being the base value
        (LightGBM ``pred_contrib`` layout); a (rows, features) array is accepted too.
    X
        The feature frame the contributions were computed on (same rows and column order); categorical
        ``str`` columns are colour-coded by category code.
    labels
        Readable label per feature column, in column order (from the feature catalog).
    path
        PNG file to write.
    max_display
        Number of features shown (the rest are summed into one row).

    Returns
    -------
    Path
        ``path``.
    """
    import shap

    values = np.asarray(contributions, dtype=float)
    n_features = X.shape[1]
    if values.ndim != 2 or values.shape[0] != len(X) or values.shape[1] not in (n_features, n_features + 1):
        raise ValueError(
            f"contributions of shape {values.shape} do not match X of shape {X.shape}; expected "
            f"({len(X)}, {n_features + 1}) with the base value last, or ({len(X)}, {n_features})."
        )
    if len(labels) != n_features:
        raise ValueError(f"Got {len(labels)} labels for {n_features} feature columns.")
    base = values[:, -1] if values.shape[1] == n_features + 1 else np.zeros(len(X))
    values = values[:, :n_features]
    # The beeswarm colours points by feature value: it needs numbers, so categoricals become their codes.
    data = np.column_stack([_as_colour_values(X[c]) for c in X.columns]) if n_features else np.empty((len(X), 0))
    explanation = shap.Explanation(values=values, base_values=base, data=data, feature_names=list(labels))
    fig = _figure(8.0, 0.4 * min(max_display, n_features) + 1.5)
    ax = fig.add_subplot(1, 1, 1)
    shap.plots.beeswarm(explanation, max_display=max_display, ax=ax, show=False, plot_size=None)
    ax.set_title("Global drivers (SHAP, held-out rows)")
    return _save(fig, path)


def waterfall_plot(contributions: np.ndarray, values: pd.Series, labels: Sequence[str], path: str | Path,
                   *, title: str = "", max_display: int = 12) -> Path:
    """:func:`waterfall_figure` written as a PNG file at ``path`` (parent folders are created); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with waterfall_figure(contributions, values, labels, title=title, max_display=max_display) as fig:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


@contextlib.contextmanager
def waterfall_figure(contributions: np.ndarray, values: pd.Series, labels: Sequence[str], *, title: str = "",
                     max_display: int = 12) -> Iterator[Figure]:
    """SHAP waterfall of one record: from the base value to its raw score, feature by feature.

    ``contributions`` is one row of ``Predictor.contributions`` (features then the base value, raw space);
    ``values`` the record's feature values (same order); ``labels`` readable feature labels.
    shap's waterfall draws on pyplot's current figure, so this is a context manager: the figure is closed on exit.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    row = np.asarray(contributions, dtype=float).ravel()
    if row.shape[0] != len(labels) + 1:
        raise ValueError(f"one row of {len(labels) + 1} contributions (features + base) expected, got {row.shape[0]}")
    shown = [v if isinstance(v, (int, float, np.number)) and not pd.isna(v) else str(v) for v in values.to_numpy()]
    explanation = shap.Explanation(values=row[:-1], base_values=row[-1], data=np.array(shown, dtype=object),
                                   feature_names=list(labels))
    fig = plt.figure(figsize=(9, 0.45 * max_display + 1.5))
    try:
        shap.plots.waterfall(explanation, max_display=max_display, show=False)
        if title:
            fig.suptitle(title)
        yield fig
    finally:
        plt.close(fig)


def importance_figure(labels: Sequence[str], values: Sequence[float], *, title: str = "") -> Figure:
    """Horizontal bars of mean |SHAP| per feature (global importance), the largest on top."""
    fig = _figure(7.0, 0.35 * max(len(labels), 1) + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(labels))[::-1], list(values), color="tab:blue")
    ax.set_yticks(range(len(labels))[::-1])
    ax.set_yticklabels(list(labels))
    ax.set_xlabel("mean |SHAP contribution| (model's raw scale)")
    if title:
        ax.set_title(title)
    return fig


def stacked_share_figure(counts: pd.DataFrame, *, title: str = "", xlabel: str = "share of records") -> Figure:
    """Horizontal stacked bars: one bar per row of ``counts`` (e.g. a segment), its columns' shares (e.g. bands)."""
    fig = _figure(7.0, 0.4 * max(len(counts), 1) + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    totals = counts.sum(axis=1).replace(0, np.nan)
    left = np.zeros(len(counts))
    for col in counts.columns:
        share = (counts[col] / totals).fillna(0.0).to_numpy(dtype=float)
        ax.barh([str(i) for i in counts.index], share, left=left, label=str(col))
        left += share
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small", ncols=min(len(counts.columns), 4))
    return fig


def trend_figure(x: Sequence[str], series: dict[str, Sequence[float]], *, title: str = "", ylabel: str = "") -> Figure:
    """Lines over time (monitoring runs): one line per named series on the same x labels (missing values skip)."""
    fig = _figure(7.0, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for name, ys in series.items():
        ax.plot(list(x), [np.nan if v is None else float(v) for v in ys], marker="o", label=name)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    ax.tick_params(axis="x", labelrotation=30)
    return fig
