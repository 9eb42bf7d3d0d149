"""Reasons for a score, fast: SHAP contributions on the reported scale, top reasons, their texts on arrays.

This is the engine scoring uses. The words it writes are specified in :mod:`models.wording`, one value at a
time; :func:`explain_batch` must give byte for byte the texts that specification gives row by row, and
``tests/unit/test_explain.py`` (``test_explain_batch_texts_equal_the_per_row_reference``) proves it against
``tests/reference_reasons.py``, the per-row chain built on :mod:`models.wording`. A change of wording is made in
:mod:`models.wording` and the reference first; the engine follows until that test passes.

Inputs are plain arrays so this module does not depend on how a model is trained:

- ``contrib``: LightGBM ``predict(..., pred_contrib=True)`` output in *raw* space, shape
  ``(n_rows, n_features + 1)``; the last column is the base value (expected raw score), so each
  row sums to the raw model output (log-odds for binary models, log of the mean for Tweedie).
- ``calibrate``: a vectorised callable mapping raw scores to the reported score (a calibrated
  probability, or an amount for CLV), e.g. ``Predictor.calibrate_raw``.
- ``catalog``: feature column -> an object with attributes ``label``, ``family``, ``kind``
  (``"numeric"`` or ``"categorical"``) and ``unit`` (see :data:`models.wording.UNIT_FORMATS`). A plain
  mapping with those keys works too.

Grain: one output per input row, in input order. Nothing here reads a clock or does I/O.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import infer_dtype, is_bool_dtype, is_float_dtype, is_integer_dtype, is_unsigned_integer_dtype

from models.errors import ModelError
from models.wording import (
    CLAUSE_SEPARATOR,
    MISSING_TEXT,
    NOTHING_STANDS_OUT,
    UNIT_FORMATS,
    clause_head,
    clause_tail,
    feature_info,
    json_value,
    round_contribution,
    to_json,
    value_text,
)

# Below this |raw - base| the secant slope is numerically meaningless; use the derivative instead.
_EPS_RAW = 1e-9
_DERIV_STEP = 1e-5

#: Up to this many reasons per direction are found by arg-max sweeps (k passes over the matrix, cheaper than a
#: row-by-row argpartition for the usual 3 up / 1 down); more go through argpartition.
_SWEEP_MAX_K = 4
#: Rows per block where a whole matrix would otherwise be copied: a block (rows x features floats) stays in cache.
_BLOCK_ROWS = 4096
#: Rows per block when the texts are built: the buffers of a block stay small (a few MB) and are reused by the
#: next block, where buffers for the whole batch would have to be fresh memory (page faults) on every call.
_TEXT_BLOCK_ROWS = 16384


class ExplanationError(ModelError, ValueError):
    """Inputs to the explanation step do not fit together (shapes, names, options)."""


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
    scale, base_cal, _ = _calibration_scale(contrib, calibrate)
    # On flat rows the identity error is O((raw - base)^2) < 1e-18: no correction (it could flip a tiny reason).
    return contrib[:, :-1] * scale[:, None], base_cal


def _calibration_scale(
    contrib: np.ndarray, calibrate: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the slope ``s`` of :func:`calibrated_contributions`, ``f(base)`` and ``f(raw)``; ``contrib`` is float64."""
    if contrib.ndim != 2 or contrib.shape[1] < 2:
        raise ExplanationError(
            f"contrib must be a 2-D array (n_rows, n_features + 1) with the base value last; got shape {contrib.shape}."
        )
    n = contrib.shape[0]
    base = contrib[:, -1]
    raw = contrib[:, :-1].sum(axis=1) + base
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
    return scale, f_base, f_raw


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


def _top_k_partition(matrix: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries per row, sorted descending (argpartition, then sort k)."""
    n, p = matrix.shape
    if k < p:
        part = np.argpartition(-matrix, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(p), (n, p)).copy()
    vals = np.take_along_axis(matrix, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _top_k(matrix: np.ndarray, k: int, *, lowest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest entries per row (of ``-matrix`` when ``lowest``), sorted descending.

    For small k, k arg-max sweeps over blocks of rows copied into one small buffer (no second matrix in memory).
    Rows where equal positive values (the only ones that become reasons) make the choice or the order ambiguous
    are redone by :func:`_top_k_partition`, which has always picked the reasons: ties resolve as they did before
    the sweeps, and argpartition treats each row on its own.
    """
    n, p = matrix.shape
    k = min(k, p)
    sign = -1.0 if lowest else 1.0
    if k == 0:
        return np.empty((n, 0), dtype=np.int64), np.empty((n, 0))
    if k > _SWEEP_MAX_K:
        return _top_k_partition(sign * matrix, k)
    idx = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k + 1))  # the last column: the best value left out (the runner-up)
    vals[:, k] = -np.inf
    buffer = np.empty((min(n, _BLOCK_ROWS), p))
    for start in range(0, n, _BLOCK_ROWS):
        block = buffer[: min(_BLOCK_ROWS, n - start)]
        np.multiply(matrix[start:start + len(block)], sign, out=block)
        rows = np.arange(len(block))
        for j in range(k):
            best = block.argmax(axis=1)
            idx[start:start + len(block), j] = best
            vals[start:start + len(block), j] = block[rows, best]
            block[rows, best] = -np.inf
        if k < p:
            vals[start:start + len(block), k] = block.max(axis=1)
    tied = np.flatnonzero(((vals[:, :k] == vals[:, 1:]) & (vals[:, :k] > 0)).any(axis=1))
    vals = vals[:, :k]
    if tied.size:
        idx[tied], vals[tied] = _top_k_partition(sign * matrix[tied], k)
    return idx, vals


def select_reasons(contrib_cal: np.ndarray, *, n_up: int = 3, n_down: int = 1) -> ReasonIndex:
    """Pick per row the ``n_up`` largest positive and ``n_down`` most negative contributions.

    Vectorised per direction (see :func:`_top_k`); NaN counts as 0. Zero contributions are never reasons.
    """
    if n_up < 0 or n_down < 0:
        raise ExplanationError(f"n_up and n_down must be >= 0; got n_up={n_up}, n_down={n_down}.")
    m = np.asarray(contrib_cal, dtype=np.float64)
    if m.ndim != 2:
        raise ExplanationError(f"contrib_cal must be 2-D (n_rows, n_features); got shape {m.shape}.")
    if not np.isfinite(m).all():  # skip the copy in the usual all-finite case
        m = np.nan_to_num(m, nan=0.0)
    up_idx, up_val = _top_k(m, n_up)
    dn_idx, dn_val = _top_k(m, n_down, lowest=True)
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


def _check_inputs(shape: tuple[int, int], feature_names: list[str], values: pd.DataFrame) -> None:
    """The contributions (``shape`` without the base column), the feature names and the values must describe the
    same rows and columns."""
    if shape[1] != len(feature_names):
        raise ExplanationError(
            f"contrib has {shape[1]} feature columns before the base value but {len(feature_names)} feature names "
            "were given; pass one name per feature column, in the model's order."
        )
    if len(values) != shape[0]:
        raise ExplanationError(f"values has {len(values)} rows but contrib has {shape[0]}; they must align.")


def _check_columns(feature: np.ndarray, feature_names: list[str], values: pd.DataFrame) -> None:
    """Every feature chosen as a reason must have a column in ``values``."""
    used = np.flatnonzero(np.bincount(feature[feature >= 0], minlength=len(feature_names)))
    missing = [feature_names[j] for j in used if feature_names[j] not in values.columns]
    if missing:
        raise ExplanationError(f"values lacks feature columns selected as reasons: {missing[:10]}.")


def _at_chosen(matrix: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """``matrix`` at each row's chosen features, NaN in empty slots."""
    chosen = feature >= 0
    return np.where(chosen, matrix[np.arange(len(feature))[:, None], np.where(chosen, feature, 0)], np.nan)


# ---------------------------------------------------------------------------------------------
# Texts: the words of models.wording, built on arrays
# ---------------------------------------------------------------------------------------------
# Per-row dicts, json encoding and f-strings cost ~40 us a row, and nightly scoring explains millions of rows.
# Here values are formatted by vectorised arithmetic and pyarrow string kernels, a group of alike features at a
# time, and reasons and rows are assembled by element-wise concatenation. Each fast formatter knows where its
# arithmetic could disagree with Python's (exact decimal ties, huge or non-finite values, layouts pyarrow writes
# differently) and hands exactly those values to the Python expression models.wording uses: the texts are
# byte-identical to the specification's.

_STR = pa.large_string()  # 64-bit offsets: no size limit to think about, whatever the values hold

# Arrow buffers come from the system allocator. The blocks allocate and free the same few sizes over and over,
# which malloc serves from the heap that numpy and pandas keep warm; mimalloc, pyarrow's default, maps fresh pages
# of its own, and in a process that has not used it yet its first blocks cost ~70 ms more, more on a loaded host.
_POOL = pa.system_memory_pool()

#: Magnitudes below which the vectorised number formatting is exact: whole numbers and cents stay well inside
#: float64's exact integers (2**53); larger values are formatted in Python.
_MAX_WHOLE = 1e15
_MAX_CENTS_VALUE = 1e13
#: 10**0 .. 10**22, the powers of ten a float64 holds exactly (from Python ints, not from pow()).
_EXACT_POWERS_OF_TEN = np.array([float(10**k) for k in range(23)])


def _lit(text: str) -> pa.Scalar:
    """A literal for pyarrow string kernels, which want every operand in the same string type."""
    return pa.scalar(text, _STR)


def _texts(values: Sequence[str]) -> pa.Array:
    return pa.array(values, type=_STR, memory_pool=_POOL)


def _flags(mask: np.ndarray) -> pa.Array:
    return pa.array(mask, memory_pool=_POOL)


def _take(texts: pa.Array, index: np.ndarray) -> pa.Array:
    return pc.take(texts, pa.array(index), memory_pool=_POOL)


def _join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    return pc.binary_join_element_wise(*(_lit(p) if isinstance(p, str) else p for p in parts), _lit(""),
                                       memory_pool=_POOL)


def _choice(mask: np.ndarray, when: str, otherwise: str) -> pa.Array:
    return pc.if_else(_flags(mask), _lit(when), _lit(otherwise), memory_pool=_POOL)


def _digits(whole: np.ndarray) -> pa.Array:
    """Decimal digits of integer-valued numbers below 2**63, no separator."""
    return pc.cast(pa.array(whole.astype(np.int64)), _STR, memory_pool=_POOL)


def _is_whole(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x) & (x == np.floor(x))


def _patch(text: pa.Array, where: np.ndarray, exact: Callable[[np.ndarray], list[str]]) -> pa.Array:
    """``text`` with the positions ``where`` replaced by ``exact(positions)``."""
    if not where.any():
        return text
    return pc.replace_with_mask(text, _flags(where), _texts(exact(np.flatnonzero(where))), memory_pool=_POOL)


def _split(mask: np.ndarray, x: np.ndarray, when: Callable[[np.ndarray], pa.Array],
           otherwise: Callable[[np.ndarray], pa.Array]) -> pa.Array:
    """``when(x[mask])`` and ``otherwise(x[~mask])``, back in the order of ``x``; each formats only its own values."""
    if mask.all():
        return when(x)
    if not mask.any():
        return otherwise(x)
    first, second = when(x[mask]), otherwise(x[~mask])
    pos = np.empty(len(x), dtype=np.int64)
    pos[mask] = np.arange(len(first))
    pos[~mask] = len(first) + np.arange(len(second))
    return _take(pa.concat_arrays([first, second], memory_pool=_POOL), pos)


def _spread(text: pa.Array, present: np.ndarray, filler: str) -> pa.Array:
    """``text`` (one per present value) spread over all positions, ``filler`` at the others."""
    if present.all():
        return text
    index = pa.array(np.cumsum(present) - 1, mask=~present, memory_pool=_POOL)
    return pc.coalesce(pc.take(text, index, memory_pool=_POOL), _lit(filler), memory_pool=_POOL)


def _with_sign(text: pa.Array, negative: np.ndarray) -> pa.Array:
    if not negative.any():
        return text
    return _join(_choice(negative, "-", ""), text)


def _thousands(whole: np.ndarray) -> pa.Array:
    """``f"{int(w):,}"`` for integer-valued floats: the leading group of digits, then ``,ddd`` per lower group."""
    big = ~(np.abs(whole) < _MAX_WHOLE)  # also inf, where int() raises as in models.wording
    mag = np.abs(np.where(big, 0.0, whole)).astype(np.int64)
    groups = 1 + (mag >= 10**3) + (mag >= 10**6) + (mag >= 10**9) + (mag >= 10**12)
    text = _digits(mag // 1000 ** (groups - 1))
    for g in range(int(groups.max(initial=1)) - 2, -1, -1):
        lower = pc.utf8_lpad(_digits(mag // 1000**g % 1000), width=3, padding="0", memory_pool=_POOL)
        text = pc.if_else(_flags(groups > g + 1), _join(text, ",", lower), text, memory_pool=_POOL)
    return _patch(_with_sign(text, ~big & (whole < 0)), big, lambda i: [f"{int(v):,}" for v in whole[i].tolist()])


def _two_decimals(x: np.ndarray) -> pa.Array:
    """``f"{v:,.2f}"``, from the whole cents ``rint(|v| * 100)``.

    The product is rounded once, so it can round to another cent than Python (which rounds the exact binary value,
    ties to even) only within an ulp of a half cent: those values, and huge or non-finite ones, go to Python.
    """
    fits = np.abs(x) < _MAX_CENTS_VALUE
    cents = np.where(fits, np.abs(x), 0.0) * 100
    unsure = ~fits | (np.abs(cents - np.floor(cents) - 0.5) <= 2 * np.spacing(cents))
    units, hundredths = np.divmod(np.rint(cents), 100)
    text = _join(_thousands(units), ".", pc.utf8_lpad(_digits(hundredths), width=2, padding="0", memory_pool=_POOL))
    return _patch(_with_sign(text, np.signbit(x)), unsure, lambda i: [f"{v:,.2f}" for v in x[i].tolist()])


def _no_decimals(x: np.ndarray) -> pa.Array:
    """``f"{v:.0f}"``: ``rint`` rounds a float to an integer exactly as Python does (ties to even); keeps "-0"."""
    whole = np.rint(x)
    big = ~(np.abs(whole) < _MAX_WHOLE)
    text = _with_sign(_digits(np.abs(np.where(big, 0.0, whole))), np.signbit(x))
    return _patch(text, big, lambda i: [f"{v:.0f}" for v in x[i].tolist()])


def _number_texts(x: np.ndarray, unit: str | None) -> pa.Array:
    """Sentence texts of present numeric values, as :func:`models.wording.value_text` writes them."""
    if unit in ("count", "days"):
        whole = np.rint(x)
        text = _thousands(whole)
        return _join(text, _choice(whole == 1, " day", " days")) if unit == "days" else text
    if unit == "currency":
        return _two_decimals(x)
    if unit == "share":
        return _join(_no_decimals(x * 100), "%")
    if unit == "percent":
        return _join(_no_decimals(x), "%")
    return _split(_is_whole(x), x, _thousands, _two_decimals)


def _has_byte(text: pa.Array, byte: bytes) -> np.ndarray:
    """Which strings of a large-string array hold ``byte``, by one scan of the data buffer (no per-string call)."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + len(text) + 1]
    found = np.zeros(len(text), dtype=bool)
    if len(text) and offsets[-1] > offsets[0]:
        data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
        found[np.searchsorted(offsets, np.flatnonzero(data == byte[0]) + offsets[0], side="right") - 1] = True
    return found


def _float_json(x: np.ndarray) -> pa.Array:
    """``repr(v)``, which is how json writes a float.

    pyarrow prints the same shortest round-trip digits but lays some out differently: inside repr's fixed-notation
    range a whole number only lacks the ``.0``; texts with an exponent there, and all values outside the range, are
    written by the json encoder itself (so non-finite values raise its error, as :data:`models.wording.to_json` does).
    """
    text = pc.cast(pa.array(x), _STR, memory_pool=_POOL)
    mag = np.abs(x)
    unsure = ~(((mag >= 1e-4) & (mag < 1e15)) | (x == 0)) | _has_byte(text, b"e")
    point = ~unsure & (x == np.floor(x))
    if point.any():
        text = pc.if_else(_flags(point), _join(text, ".0"), text, memory_pool=_POOL)
    return _patch(text, unsure, lambda i: [to_json(v) for v in x[i].tolist()])


def _int_json(x: np.ndarray) -> pa.Array:
    """JSON of ``int(v)`` for integer-valued floats."""
    big = ~(np.abs(x) < 2.0**63)
    return _patch(_digits(np.where(big, 0.0, x)), big, lambda i: [to_json(int(v)) for v in x[i].tolist()])


def _six_significant(c: np.ndarray) -> np.ndarray:
    """:func:`models.wording.round_contribution` vectorised: the 6 leading digits as ``rint(|c| * 10**s)``, then
    scaled back.

    The power of ten is exact up to 1e22, so the scaling rounds once and can round the digits differently from
    Python's exact decimal rounding only within an ulp of a half; scaling back is one correctly rounded operation
    on exact operands, which gives the float nearest the 6-digit decimal, as ``float()`` does. Those near-ties,
    zeros and values outside the range are rounded in Python.
    """
    mag = np.abs(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = 5 - np.floor(np.log10(mag))
    usable = np.isfinite(shift) & (np.abs(shift) < len(_EXACT_POWERS_OF_TEN))
    shift = np.where(usable, shift, 0).astype(np.int64)
    power = _EXACT_POWERS_OF_TEN[np.abs(shift)]
    mag = np.where(usable, mag, 1e5)  # zeros, NaN and the like are rounded in Python below
    scaled = np.where(shift >= 0, mag * power, mag / power)
    digits = np.rint(scaled)
    near_half = np.abs(scaled - np.floor(scaled) - 0.5) <= 2 * np.spacing(scaled)
    unsure = ~usable | (scaled < 1e5) | (scaled >= 1e6) | near_half
    out = np.copysign(np.where(shift >= 0, digits / power, digits * power), c)
    out[unsure] = [round_contribution(v) for v in c[unsure].tolist()]
    return out


def _spec_texts(vals: np.ndarray, kind: str, unit: str | None) -> tuple[pa.Array, pa.Array]:
    """JSON and sentence texts of raw values, one at a time by :mod:`models.wording` itself."""
    safe = [json_value(v, kind, unit) for v in vals]
    return _texts([to_json(v) for v in safe]), _texts([value_text(v, kind, unit) for v in safe])


def _numeric_class(dtype: Any) -> str | None:
    """``"bool"``, ``"int"``, ``"uint"`` or ``"float"`` for numeric dtypes (numpy, nullable or arrow), else None."""
    if isinstance(dtype, pd.CategoricalDtype):  # is_bool_dtype says True for categories of bools
        return None
    if is_bool_dtype(dtype):
        return "bool"
    if is_unsigned_integer_dtype(dtype):
        return "uint"
    if is_integer_dtype(dtype):
        return "int"
    if is_float_dtype(dtype):
        return "float"
    return None


#: numpy type and missing-value placeholder per numeric class (in floats NaN marks a missing value anyway).
_NUMERIC_ARRAYS: dict[str, tuple[type, Any]] = {
    "bool": (np.bool_, False), "int": (np.int64, 0), "uint": (np.uint64, 0), "float": (np.float64, np.nan),
}


def _numeric_data(col: pd.Series, numeric: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric column as a numpy array of its class, and which values are missing beyond NaN (None: none are).

    A numpy-backed column is returned without copying: only the rows chosen as reasons are ever read.
    """
    dtype, placeholder = _NUMERIC_ARRAYS[numeric]
    if isinstance(col.dtype, np.dtype):
        return col.to_numpy().astype(dtype, copy=False), None
    return col.to_numpy(dtype=dtype, na_value=placeholder), col.isna().to_numpy()


def _numeric_texts(data: np.ndarray, present: np.ndarray, unit: str | None) -> tuple[pa.Array, pa.Array]:
    """JSON and sentence texts of bool, int64, uint64 or float64 values (``present`` marks the non-missing)."""
    x = data[present]
    if x.dtype == np.bool_:
        json_text = _choice(x, "true", "false")
    elif x.dtype.kind in "iu":
        json_text = pc.cast(pa.array(x), _STR, memory_pool=_POOL)
    elif unit in ("count", "days"):  # a whole count is written as an int
        json_text = _split(_is_whole(x), x, _int_json, _float_json)
    else:
        json_text = _float_json(x)
    # The sentence reads integers and bools (1 or 0) as floats, as models.wording.value_text does.
    sentence = _number_texts(x.astype(np.float64), unit)
    return _spread(json_text, present, "null"), _spread(sentence, present, MISSING_TEXT)


def _spec_table(
    col: pd.Series, rows: np.ndarray, kind: str, unit: str | None
) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """A non-numeric feature's texts (or a numeric one's read as categorical), by :mod:`models.wording` itself.

    ``rows`` are the rows that chose the feature. Returns a code for each row of ``col`` (meaningful at ``rows``)
    and the JSON and sentence texts per code. Where distinct values cannot share a text (unlike 1, 1.0 and True in
    an object column) each distinct value is formatted once, otherwise each row.
    """
    chosen = col.iloc[rows]
    dtype = col.dtype
    if isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype)) or is_integer_dtype(dtype) or is_bool_dtype(dtype) or (
        dtype == object and infer_dtype(chosen, skipna=True) in ("string", "empty")
    ):
        codes, uniques = pd.factorize(chosen)
        codes[codes < 0] = len(uniques)  # missing values: the None appended below
        distinct = np.append(np.asarray(uniques, dtype=object), None)
    else:
        codes, distinct = np.arange(len(rows)), chosen.to_numpy(dtype=object)
    at_row = np.zeros(len(col), dtype=np.int64)
    at_row[rows] = codes
    return (at_row, *_spec_texts(distinct, kind, unit))


@dataclass(frozen=True)
class _FeatureText:
    """What the texts need from one feature chosen as a reason somewhere in the batch."""

    json_head: str  # '{"feature":...,"label":...,"value":'
    text_head: str  # 'Label: '
    unit: str | None
    group: tuple  # features of one group have their values formatted in one pass
    numeric: tuple[np.ndarray, np.ndarray | None] | None  # numeric groups: see _numeric_data
    table: tuple[np.ndarray, pa.Array, pa.Array] | None  # the others: see _spec_table


def _feature_text(
    j: int, name: str, column: pd.Series, catalog: Mapping[str, Any], feature: np.ndarray
) -> _FeatureText:
    """Feature ``j`` (``name``) of the batch whose chosen features are ``feature`` (see :class:`ReasonIndex`).

    Numeric features read as numbers are grouped by class and unit (their texts depend on nothing else) and
    formatted block by block; any other feature is a group of its own, formatted once per distinct value.
    """
    label, kind, unit = feature_info(catalog, name)
    numeric = None if kind == "categorical" else _numeric_class(column.dtype)
    return _FeatureText(
        json_head=f'{{"feature":{to_json(name)},"label":{to_json(label)},"value":',
        text_head=clause_head(label),
        unit=unit,
        group=(numeric, unit if unit in UNIT_FORMATS else None) if numeric else (None, j),
        numeric=_numeric_data(column, numeric) if numeric else None,
        table=None if numeric else _spec_table(column, np.flatnonzero((feature == j).any(axis=1)), kind, unit),
    )


def _value_texts(members: list[tuple[_FeatureText, np.ndarray]]) -> tuple[pa.Array, pa.Array]:
    """JSON and sentence texts of one group's features at the given rows, one feature after the other."""
    head = members[0][0]
    if head.table is not None:
        ((feature, rows),) = members
        codes, json_text, sentence = feature.table
        return _take(json_text, codes[rows]), _take(sentence, codes[rows])
    data = np.concatenate([feature.numeric[0][rows] for feature, rows in members])
    missing = np.concatenate([np.zeros(len(rows), dtype=bool) if feature.numeric[1] is None
                              else feature.numeric[1][rows] for feature, rows in members])
    if data.dtype == np.float64:
        missing |= np.isnan(data)
    return _numeric_texts(data, ~missing, head.unit)


def _row_texts(entries: pa.Array, bounds: np.ndarray) -> list[str]:
    """Row ``r``'s text is the bytes of ``entries[bounds[r]:bounds[r + 1]]`` (entries carry their separators)."""
    entry_offsets = np.frombuffer(entries.buffers()[1], dtype=np.int64)[entries.offset:]
    rows = pa.LargeStringArray.from_buffers(len(bounds) - 1, pa.py_buffer(entry_offsets[bounds]), entries.buffers()[2])
    return rows.to_pylist()


def _render(idx: ReasonIndex, feature_names: list[str], values: pd.DataFrame, catalog: Mapping[str, Any], *,
            outcome: str, n_up: int) -> tuple[list[str], list[str]]:
    """Per row, the JSON text and the sentence of its chosen reasons, as :mod:`models.wording` specifies them
    (slots before ``n_up`` raise the outcome, the others lower it).

    Works in blocks of rows (see :data:`_TEXT_BLOCK_ROWS`); what depends only on a feature is prepared once.
    """
    used = np.flatnonzero(np.bincount(idx.feature[idx.feature >= 0], minlength=len(feature_names)))
    features = {j: _feature_text(j, feature_names[j], values[feature_names[j]], catalog, idx.feature)
                for j in used.tolist()}
    # Indexed by 2 * raises + last: a clause's tail, then the separator unless it is the row's last.
    suffixes = _texts([clause_tail(raises, outcome) + end for raises in (False, True)
                       for end in (CLAUSE_SEPARATOR, "")])
    json_out: list[str] = []
    text_out: list[str] = []
    for start in range(0, len(idx.feature), _TEXT_BLOCK_ROWS):
        block = slice(start, start + _TEXT_BLOCK_ROWS)
        json_rows, text_rows = _render_block(idx.feature[block], idx.contribution[block], start, features,
                                             suffixes, n_up)
        json_out += json_rows
        text_out += text_rows
    return json_out, text_out


def _render_block(feature: np.ndarray, contribution: np.ndarray, first_row: int,
                  features: dict[int, _FeatureText], suffixes: pa.Array, n_up: int) -> tuple[list[str], list[str]]:
    """The texts of a block of rows that starts at ``first_row`` (``feature`` and ``contribution`` as in
    :class:`ReasonIndex`).

    Each reason becomes one entry that carries its own punctuation (``[`` before a row's first, ``,`` or ``]``
    after) and a row without reasons one entry with its whole text, so that a row's text is a slice of the
    entries' bytes: no per-row join. ``suffixes`` are the sentence endings: lowering then raising, each without
    and with the last-reason mark.
    """
    chosen = feature >= 0
    rows, slots = np.nonzero(chosen)  # row-major: each row's reasons stay together and in slot order
    count = chosen.sum(axis=1)
    reason_end = np.cumsum(count)
    first = np.zeros(len(rows), dtype=np.int64)
    first[(reason_end - count)[count > 0]] = 1
    last = np.zeros(len(rows), dtype=np.int64)
    last[reason_end[count > 0] - 1] = 1
    chosen_feature = feature[rows, slots]
    per_feature = np.bincount(chosen_feature, minlength=max(features, default=-1) + 1)
    used = np.flatnonzero(per_feature)
    code = (np.cumsum(per_feature > 0) - 1)[chosen_feature]  # position of each reason's feature in ``used``
    # A stable sort on 16-bit keys is a radix sort: grouping by feature costs little, unlike a comparison sort.
    by_feature = np.argsort(code.astype(np.int16 if len(used) < 2**15 else np.int32), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(per_feature[used])])
    groups: dict[tuple, list[tuple[_FeatureText, np.ndarray]]] = {}
    for u, j in enumerate(used.tolist()):
        reasons = by_feature[bounds[u]:bounds[u + 1]]
        groups.setdefault(features[j].group, []).append((features[j], reasons))
    json_values, text_values = [], []
    for members in groups.values():
        json_value, text_value = _value_texts([(f, first_row + rows[reasons]) for f, reasons in members])
        json_values.append(json_value)
        text_values.append(text_value)
    in_formatted_order = np.empty(len(rows), dtype=np.int64)  # where each reason's value texts ended up
    if groups:
        in_formatted_order[np.concatenate([reasons for members in groups.values() for _, reasons in members])] = (
            np.arange(len(rows)))

    def in_row_order(parts: list[pa.Array]) -> pa.Array:
        return _take(pa.concat_arrays(parts, memory_pool=_POOL), in_formatted_order) if parts else _texts([])

    json_heads = _texts([h for j in used.tolist() for h in (features[j].json_head, "[" + features[j].json_head)])
    json_entries = _join(_take(json_heads, 2 * code + first), in_row_order(json_values), ',"contribution":',
                         _float_json(_six_significant(contribution[rows, slots])), _choice(last == 1, "}]", "},"))
    text_heads = _texts([features[j].text_head for j in used.tolist()])
    text_entries = _join(_take(text_heads, code), in_row_order(text_values),
                         _take(suffixes, 2 * (slots < n_up) + last))
    entry_bounds = np.concatenate([[0], np.cumsum(np.maximum(count, 1))])
    is_reason = np.ones(entry_bounds[-1], dtype=bool)
    is_reason[entry_bounds[:-1][count == 0]] = False
    return (_row_texts(_spread(json_entries, is_reason, "[]"), entry_bounds),
            _row_texts(_spread(text_entries, is_reason, NOTHING_STANDS_OUT), entry_bounds))


@dataclass(frozen=True)
class Explained:
    """Everything the write-back needs from one scoring batch, row-aligned with the input.

    ``score`` is the calibrated score f(raw), computed from raw directly, so rows on one flat calibration step tie
    exactly (the calibrated contributions plus f(base) reproduce it to rounding); ``raw`` the raw model output
    (contributions + base);
    ``reasons_json`` and ``reason_text`` are the texts :mod:`models.wording` specifies for each row's reasons.
    """

    raw: np.ndarray
    score: np.ndarray
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
    """The whole chain after ``pred_contrib``: calibrate, pick top reasons, sentences, JSON.

    Parameters
    ----------
    contrib : ndarray, shape (n_rows, n_features + 1)
        Raw-space contributions, base value last.
    calibrate : callable
        Vectorised map from raw scores to reported scores (see :func:`calibrated_contributions`).
    feature_names : sequence of str
        Feature column names, one per column of ``contrib`` before the base.
    values : DataFrame
        The feature values the model saw, one row per row of ``contrib`` (read by position); must hold every
        feature that is selected as a reason.
    catalog : mapping
        Feature -> FeatureInfo (label, family, kind, unit).
    outcome : str
        The words after "raises"/"lowers": the task's ``TaskSpec.reason_outcome``.
    n_up, n_down : int
        How many raising / lowering reasons per row (config keys ``reasons_up`` / ``reasons_down``).

    Reasons are chosen and signed by the raw contributions (:func:`select_reasons`) and report the calibrated
    ones. Calibrated contributions are the raw ones times a positive per-row constant, so the choice is the same
    wherever that constant is positive; where a flat calibrator step makes it zero (the calibrated score equals
    the calibrated base) the raw contributions still name the drivers. The texts are those :mod:`models.wording`
    specifies, byte for byte, built on arrays rather than per-row dicts.
    """
    contrib = np.asarray(contrib, dtype=np.float64)
    scale, _, f_raw = _calibration_scale(contrib, calibrate)
    raw = contrib[:, :-1]
    feature_names = list(feature_names)
    _check_inputs(raw.shape, feature_names, values)
    idx = select_reasons(raw, n_up=n_up, n_down=n_down)
    _check_columns(idx.feature, feature_names, values)
    # The calibrated contributions only where chosen: the same products as calibrated_contributions, no matrix.
    idx = ReasonIndex(feature=idx.feature, contribution=_at_chosen(raw, idx.feature) * scale[:, None])
    reasons, sentences = _render(idx, feature_names, values, catalog, outcome=outcome, n_up=n_up)
    return Explained(
        raw=contrib.sum(axis=1),
        score=f_raw,
        reasons_json=reasons,
        reason_text=sentences,
    )
