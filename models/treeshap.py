"""Exact TreeSHAP for a LightGBM booster, computed once per distinct decision pattern of each tree.

Why: LightGBM's ``predict(pred_contrib=True)`` (exact, path-dependent TreeSHAP) costs about 100x a
prediction, because it walks every root-to-leaf path of every tree for every row. But a tree's SHAP values
for a row depend on the row only through the *decisions* it takes at that tree's internal nodes (TreeSHAP's
"hot" child at each node): the cover counts and leaf values are the model's. A tree of 15 leaves has 14
internal nodes, so at most 2**14 decision patterns, and in practice a few hundred occur among any number of
rows. This module evaluates every internal node's decision for all rows with vectorised numpy (the cost of a
prediction), groups rows by pattern, asks LightGBM's own ``pred_contrib`` for ONE row per pattern and tree
(``start_iteration=t, num_iteration=1``), and scatters the results back. The numbers are LightGBM's
TreeSHAP, bit for bit up to the order of the per-tree sums (differences ~1e-15).

The decision rules replicate ``LightGBM/tree.h`` (``NumericalDecision``, ``CategoricalDecision``) for
LightGBM 4.x; :meth:`PatternTreeShap.check` compares with a direct ``pred_contrib`` call on sample rows
and the scoring path runs it on every call, so a rule that ever drifted would stop a run rather than write
wrong reasons.

Pure: no I/O, no clock. Input is the frame LightGBM would get (``Predictor.matrix``: float64 columns and
``category`` columns with the training categories).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.errors import ModelError

# LightGBM reads |x| <= kZeroThreshold as zero (input conversion, and missing_type "Zero").
_ZERO = float(np.float32(1e-35))  # kZeroThreshold is the C++ float 1e-35f
# Patterns of up to this many internal nodes are grouped with a dense lookup table (2**bits entries);
# larger trees fall back to np.unique (a sort).
_DENSE_BITS = 20
_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


class TreeShapError(ModelError):
    """The booster cannot be explained this way, or the pattern TreeSHAP disagrees with LightGBM's own."""


@dataclass(frozen=True)
class _Tree:
    """One tree's internal nodes in a flat layout (node j is bit j of the pattern)."""

    feature: np.ndarray  # int, per internal node
    threshold: np.ndarray  # float, numeric nodes (NaN for categorical)
    categorical: np.ndarray  # bool
    default_left: np.ndarray  # bool
    missing: np.ndarray  # 0 None, 1 Zero, 2 NaN
    categories: tuple[np.ndarray | None, ...]  # left-going category codes of categorical nodes
    used: np.ndarray  # sorted distinct features the tree splits on

    @property
    def n_nodes(self) -> int:
        return len(self.feature)


def _flatten(structure: dict) -> _Tree:
    feats, thr, cat, dleft, miss, cats = [], [], [], [], [], []
    stack = [structure]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:  # a leaf
            continue
        feats.append(int(node["split_feature"]))
        is_cat = node["decision_type"] == "=="
        cat.append(is_cat)
        if is_cat:
            thr.append(np.nan)
            cats.append(np.array([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64))
        else:
            if node["decision_type"] != "<=":
                raise TreeShapError(f"Unknown LightGBM decision type {node['decision_type']!r}.")
            thr.append(float(node["threshold"]))
            cats.append(None)
        dleft.append(bool(node["default_left"]))
        miss.append(_MISSING[str(node["missing_type"])])
        stack.append(node["left_child"])
        stack.append(node["right_child"])
    feature = np.asarray(feats, dtype=np.int64)
    return _Tree(feature=feature, threshold=np.asarray(thr, dtype=np.float64), categorical=np.asarray(cat, bool),
                 default_left=np.asarray(dleft, bool), missing=np.asarray(miss, np.int8), categories=tuple(cats),
                 used=np.unique(feature))


def _goes_left(x: np.ndarray, nan: np.ndarray, tree: _Tree, j: int) -> np.ndarray:
    """LightGBM's decision at internal node ``j`` for column ``x`` (float64, ``nan`` its NaN mask): True = left.

    ``x <= threshold`` is False for NaN, so each missing-value rule only has to add or remove the NaN (or zero)
    rows from it.
    """
    if tree.categorical[j]:
        # NaN and negative codes go right; otherwise left iff the integer code is in the node's set.
        code = np.where(nan, -1.0, x).astype(np.int64)
        return np.isin(code, tree.categories[j]) & (code >= 0)
    left = x <= tree.threshold[j]
    missing, default_left = tree.missing[j], tree.default_left[j]
    if missing == 2:  # NaN is the missing marker: it takes the default direction
        return left | nan if default_left else left
    if missing == 1:  # zero is the missing marker, and NaN is read as zero
        zero = (np.abs(x) <= _ZERO) | nan
        return left | zero if default_left else left & ~zero
    # no missing marker: NaN is read as 0.0 and compared with the threshold
    return left | nan if 0.0 <= tree.threshold[j] else left


def _column(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A feature column as LightGBM's predictor sees it, and its NaN mask.

    LightGBM's input conversion (``c_api.cpp``) keeps only values with ``|x| > kZeroThreshold`` (or NaN), so a
    tiny value is read as exactly 0.0 and may fall on the other side of a split near zero.
    """
    tiny = np.abs(x) <= _ZERO
    if tiny.any():
        x = np.where(tiny, 0.0, x)
    return x, np.isnan(x)


def _group(pattern: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(one representative row per distinct pattern, each row's pattern index)."""
    if bits <= _DENSE_BITS:
        present = np.bincount(pattern.astype(np.intp, copy=False), minlength=1 << bits)
        uniq = np.flatnonzero(present)
        lookup = np.empty(1 << bits, dtype=np.int64)
        lookup[uniq] = np.arange(len(uniq))
        inverse = lookup.take(pattern)
    else:
        uniq, inverse = np.unique(pattern, return_inverse=True)
    rep = np.empty(len(uniq), dtype=np.int64)
    rep[inverse] = np.arange(len(pattern))  # any row of the pattern will do (the last one wins)
    return rep, inverse


def _predict_contrib(booster: lgb.Booster, M: np.ndarray, t: int) -> np.ndarray:
    """LightGBM's exact TreeSHAP of tree ``t`` alone (one thread: the caller parallelises over trees)."""
    return booster.predict(M, pred_contrib=True, start_iteration=t, num_iteration=1, num_threads=1)


class PatternTreeShap:
    """Exact TreeSHAP of a LightGBM booster, per distinct decision pattern of each tree.

    Parameters
    ----------
    booster : lightgbm.Booster
        A binary or regression booster (one tree per iteration); linear trees are not supported.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1:
            raise TreeShapError("Pattern TreeSHAP supports one tree per iteration (binary or regression boosters); "
                                f"this booster has {dump['num_tree_per_iteration']} (multiclass).")
        self.booster = booster
        self.n_features = booster.num_feature()
        self.trees = tuple(_flatten(t["tree_structure"]) for t in dump["tree_info"])
        # every feature some tree splits on: the only columns whose decisions are evaluated
        self._used = sorted({int(f) for tree in self.trees for f in tree.used})
        self._pandas_categorical = booster.pandas_categorical or []
        self._model_str = booster.model_to_string()
        self._copies: list[lgb.Booster] = []

    # -----------------------------------------------------------------------------------------
    def to_numpy(self, X: pd.DataFrame) -> np.ndarray:
        """The float64 matrix LightGBM predicts from: categorical columns as codes of the training categories."""
        if X.shape[1] != self.n_features:
            raise TreeShapError(f"The frame has {X.shape[1]} columns; the booster expects {self.n_features}.")
        cat_cols = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
        if len(cat_cols) != len(self._pandas_categorical):
            raise TreeShapError(f"The frame has {len(cat_cols)} categorical columns; the booster was trained with "
                                f"{len(self._pandas_categorical)}. Build the matrix with Predictor.matrix.")
        out = np.empty(X.shape, dtype=np.float64, order="F")
        cats = dict(zip(cat_cols, self._pandas_categorical))
        for j, col in enumerate(X.columns):
            s = X[col]
            if col in cats:  # the frame's codes, renumbered to the training categories; unseen -> NaN
                position = pd.Index(cats[col]).get_indexer(s.cat.categories).astype(np.float64)
                position[position < 0] = np.nan
                codes = s.cat.codes.to_numpy()
                mapped = np.full(len(codes), np.nan)
                mapped[codes >= 0] = position[codes[codes >= 0]]
                out[:, j] = mapped
            else:
                out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def contributions(self, X: pd.DataFrame | np.ndarray, *, num_threads: int = 0) -> np.ndarray:
        """Exact TreeSHAP in raw space, shape ``(n, n_features + 1)``, the last column the base value.

        Same layout and values as ``booster.predict(X, pred_contrib=True)``. ``num_threads`` splits the trees
        between that many threads (0 = every core); numpy and LightGBM release the GIL for the heavy parts.
        """
        M = self.to_numpy(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64, order="F")
        n = M.shape[0]
        workers = max(1, min(num_threads or os.cpu_count() or 1, len(self.trees)))
        if n == 0:
            return np.zeros((0, self.n_features + 1))
        cols = {f: _column(M[:, f]) for f in self._used}
        groups = np.array_split(np.arange(len(self.trees)), workers)
        boosters = self._boosters(workers)
        if workers == 1:
            out_t = self._accumulate(M, cols, groups[0], boosters[0])
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(lambda w: self._accumulate(M, cols, groups[w], boosters[w]), range(workers)))
            out_t = parts[0]
            for part in parts[1:]:
                out_t += part
        return np.ascontiguousarray(out_t.T)

    def _boosters(self, workers: int) -> list[lgb.Booster]:
        """One booster per thread: a LightGBM predict call sets the booster's iteration range, so two threads asking
        one booster for different trees would race."""
        while len(self._copies) < workers:
            self._copies.append(lgb.Booster(model_str=self._model_str))
        return self._copies[:workers]

    def _accumulate(self, M: np.ndarray, cols: dict[int, tuple[np.ndarray, np.ndarray]], trees: np.ndarray,
                    booster: lgb.Booster) -> np.ndarray:
        """The summed contributions of ``trees`` (indices), feature-major: shape ``(n_features + 1, n)``."""
        n = M.shape[0]
        bias = self.n_features
        out_t = np.zeros((bias + 1, n), dtype=np.float64)  # feature-major, so each add is contiguous
        M_rows = None  # row-major copy, made only if a tree has to be explained row by row
        for t in trees:
            tree = self.trees[t]
            if tree.n_nodes == 0:  # a single leaf: its whole value is base value
                out_t[bias] += _predict_contrib(booster, M[:1], t)[0, bias]
                continue
            dtype = np.uint16 if tree.n_nodes <= 16 else np.uint32 if tree.n_nodes <= 32 else np.uint64
            pattern = np.zeros(n, dtype=dtype)
            for j in range(tree.n_nodes):
                x, nan = cols[int(tree.feature[j])]
                pattern |= _goes_left(x, nan, tree, j).astype(dtype) << dtype(j)
            rep, inverse = _group(pattern, tree.n_nodes)
            if len(rep) > n // 2:  # hardly any repetition: LightGBM on every row costs less than the scatter
                M_rows = np.ascontiguousarray(M) if M_rows is None else M_rows
                table_t = _predict_contrib(booster, M_rows, t).T
                for f in tree.used:
                    out_t[f] += table_t[f]
            else:
                table_t = np.ascontiguousarray(_predict_contrib(booster, M[rep], t).T)
                for f in tree.used:
                    out_t[f] += table_t[f].take(inverse)
            out_t[bias] += table_t[bias, 0]  # the tree's expected value: the same for every row
        return out_t

    def check(self, X: pd.DataFrame | np.ndarray, contrib: np.ndarray, rows: np.ndarray, *,
              atol: float = 1e-9) -> float:
        """Compare ``contrib[rows]`` with LightGBM's own ``pred_contrib`` on those rows; raise on a mismatch.

        Returns the largest absolute difference.
        """
        M = self.to_numpy(X) if isinstance(X, pd.DataFrame) else np.asarray(X, dtype=np.float64)
        direct = self.booster.predict(M[rows], pred_contrib=True)
        err = float(np.max(np.abs(direct - contrib[rows]))) if len(rows) else 0.0
        if not err <= atol:
            raise TreeShapError(
                f"Pattern TreeSHAP differs from LightGBM's pred_contrib by {err:.3g} (tolerance {atol:g}) on "
                f"{len(rows)} sample rows; the booster uses a split this module does not replicate. Set "
                "scoring.treeshap: lightgbm to use LightGBM's pred_contrib directly, and report the model.")
        return err
