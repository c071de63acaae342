"""The tensor states of an import: quantized constants and the activation, and helpers on them.

Every tensor of the model is, during the import, a constant (a NumPy array), a quantized constant
(:class:`QConst`, codes and scales) or the activation (:class:`Act`). Layout: the integer graph
streams images as ``(H, W, C)`` and vectors in that flattened order; each activation carries
``idx``, an array with the ONNX (logical) shape holding the physical position of every element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ..streamline import Affine, is_quantizer

__all__ = ["QConst", "Act", "copy_act", "image_idx", "stored", "weight_dtype", "detect_codes"]


@dataclass
class QConst:
    """A quantized constant: ``value = scale * codes`` (codes exact integers), with the source's type."""

    codes: np.ndarray
    scale: np.ndarray
    dtype: DataType | None

    @property
    def value(self):
        return self.codes * self.scale


@dataclass
class Act:
    kind: str  # "raw", "codes", "pending"
    idx: np.ndarray
    phys: tuple
    origin: str
    dtype: DataType | None = None
    scale: np.ndarray | None = None  # codes: per physical channel
    offset: np.ndarray | None = None
    mm: dict | None = None  # pending: name, input_dtype, w (MH, MW) values, wdtype, S, O, xnor
    chain: list = field(default_factory=list)
    pools: list = field(default_factory=list)  # pending max-pools (name, kernel, stride)
    tensor: str | None = None  # raw: the ONNX tensor holding the quantized input

    @property
    def channels(self) -> int:
        return self.phys[-1]

    def last_quantizer(self) -> int | None:
        for i in range(len(self.chain) - 1, -1, -1):
            if is_quantizer(self.chain[i]):
                return i
            if not isinstance(self.chain[i], Affine):
                return None
        return None


def copy_act(act: Act) -> Act:
    return Act(act.kind, act.idx, act.phys, act.origin, act.dtype, act.scale, act.offset, act.mm, list(act.chain),
               list(act.pools), act.tensor)


def image_idx(c, h, w, nchw=True) -> np.ndarray:
    pos = np.arange(h * w * c).reshape(h, w, c)
    return np.transpose(pos, (2, 0, 1)).copy() if nchw else pos


def stored(w: np.ndarray, dtype: DataType) -> np.ndarray:
    """Weight values to the graph's storage (bits for BIPOLAR)."""
    return ((w + 1) // 2).astype(np.uint8) if dtype.kind is Kind.BIPOLAR else w.astype(np.int64)


def weight_dtype(codes: np.ndarray) -> DataType:
    u = set(np.unique(codes).tolist())
    if u <= {-1, 1}:
        return BIPOLAR
    if u <= {-1, 0, 1}:
        return TERNARY
    a = np.abs(codes[codes != 0])
    if a.size and ((a & (a - 1)) == 0).all() and len(u) > 3:
        j = int(a.max()).bit_length() - 1
        for b in range(3, 7):
            if DataType.pow2(b).max_exponent >= j:
                return DataType.pow2(b)
    lo, hi = int(codes.min()), int(codes.max())
    return DataType.for_range(min(lo, -1), max(hi, 1))


def detect_codes(w: np.ndarray, out_axis: int):
    """Float weights that are exact multiples of one scale per output channel: (codes, scale) or (None, None)."""
    if (w == np.round(w)).all() and np.abs(w).max(initial=0) < 2 ** 24:
        return w.astype(np.int64), np.ones(w.shape)
    moved = np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], -1)
    codes = np.zeros(moved.shape, dtype=np.int64)
    scales = np.ones(moved.shape[0])
    for r, row in enumerate(moved):
        nz = np.abs(row[row != 0])
        if nz.size == 0:
            continue
        a = nz.min()
        q = row / a
        if not (q == np.round(q)).all() or np.abs(q).max() > 2 ** 15:
            return None, None
        codes[r], scales[r] = np.round(q).astype(np.int64), a
    shape = (w.shape[out_axis],) + tuple(np.delete(np.array(w.shape), out_axis))
    codes = np.moveaxis(codes.reshape(shape), 0, out_axis)
    scale = np.moveaxis(np.broadcast_to(scales.reshape((-1,) + (1,) * (w.ndim - 1)), shape), 0, out_axis)
    return codes, np.asarray(scale, dtype=np.float64)
