"""Evaluation plots: PNG files written, headless, nothing left in pyplot's global state."""
from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from models.plots import calibration_curve_plot, lift_chart, shap_summary_plot

# shap 0.51 builds its colormaps with matplotlib calls that matplotlib 3.11 marks as pending deprecation.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:shap")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.fixture(scope="module")
def scored() -> dict[str, object]:
    """A tiny real LightGBM model on seeded rows: labels, probabilities, contributions, features."""
    rng = np.random.default_rng(7)
    n = 400
    X = pd.DataFrame({
        "eng__logins_30d": rng.poisson(6, n).astype(float),
        "sup__tickets_90d": rng.poisson(2, n).astype(float),
        "firm__region": pd.Series(rng.choice(["north", "south"], n), dtype="str"),
    })
    y = (rng.random(n) < 1 / (1 + np.exp(0.4 * X["eng__logins_30d"] - 0.7 * X["sup__tickets_90d"]))).astype(int)
    enc = X.assign(firm__region=pd.Categorical(X["firm__region"], categories=["north", "south"]))
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": 0, "num_threads": 1},
                        lgb.Dataset(enc, label=y), num_boost_round=20)
    return {"X": X, "y": y.to_numpy(), "p": booster.predict(enc), "contrib": booster.predict(enc, pred_contrib=True)}


def test_plots_write_pngs_without_touching_pyplot(scored, tmp_path):
    before = plt.get_fignums()
    y, p = scored["y"], scored["p"]
    cal = calibration_curve_plot(y, p, tmp_path / "a" / "calibration.png")
    lift = lift_chart(y, p, tmp_path / "lift.png")
    labels = ["Logins in the last 30 days", "Support tickets in the last 90 days", "Region"]
    shap_png = shap_summary_plot(scored["contrib"], scored["X"], labels, tmp_path / "shap.png")
    assert plt.get_fignums() == before  # no figure registered with pyplot (no leaks in long flows)
    for path in (cal, lift, shap_png):
        width, height = _png_size(path)
        assert width > 200 and height > 150
    assert cal == tmp_path / "a" / "calibration.png"


def test_lift_chart_for_regression_values(tmp_path):
    rng = np.random.default_rng(3)
    pred = rng.gamma(2.0, 50.0, 500)
    realized = np.where(rng.random(500) < 0.3, 0.0, pred * rng.lognormal(0, 0.5, 500))  # zero-heavy spend
    out = lift_chart(realized, pred, tmp_path / "clv_lift.png")
    assert _png_size(out)[0] > 200


def test_bad_inputs_fail_with_clear_messages(scored, tmp_path):
    with pytest.raises(ValueError, match=r"y and p differ in length: 3 vs 2"):
        calibration_curve_plot(np.array([0, 1, 0]), np.array([0.1, 0.2]), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"empty evaluation frame"):
        lift_chart(np.array([]), np.array([]), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"contributions of shape \(400, 2\) do not match X of shape \(400, 3\)"):
        shap_summary_plot(scored["contrib"][:, :2], scored["X"], ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"Got 2 labels for 3 feature columns"):
        shap_summary_plot(scored["contrib"], scored["X"], ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
