"""The tensor states of an import: quantized constants and the activation, and helpers on them.

Every tensor of the model is, during the import, a constant (a NumPy array), a quantized constant
(:class:`QConst`, codes and scales) or the activation (:class:`Act`). Layout: the integer graph
streams images as ``(H, W, C)``, sequences (1-D convolutions) as ``(L, C)`` and vectors in that
flattened order; each activation carries
``idx``, an array with the ONNX (logical) shape holding the physical position of every element.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ..streamline import Affine, is_quantizer

__all__ = [
    "QConst",
    "Layer",
    "Pool",
    "Act",
    "Codes",
    "Raw",
    "Pending",
    "image_idx",
    "seq_idx",
    "stored",
    "weight_dtype",
    "detect_codes",
]


@dataclass(frozen=True, eq=False)
class QConst:
    """A quantized constant: ``value = scale * codes`` (codes exact integers), with the source's
    type (``None`` when the quantizer's zero point is not 0)."""

    codes: np.ndarray
    scale: np.ndarray
    dtype: DataType | None

    @property
    def value(self) -> np.ndarray:
        return self.codes * self.scale


@dataclass(frozen=True, eq=False)
class Layer:
    """A matrix product not yet emitted: the dot product ``a`` of output ``c`` has the value
    ``scale[c] * d + offset[c]``, with ``d = 2 a - MW`` for XNOR-popcount layers and ``d = a``
    otherwise.

    Parameters
    ----------
    name : str
        The graph node's name.
    input_dtype, weight_dtype : DataType
        Types of the input codes and of the weights.
    weights : numpy.ndarray
        ``(MH, MW)`` integer weight values (``-1``/``+1`` for bipolar weights), columns in the
        input's physical order.
    scale, offset : numpy.ndarray
        One exact :class:`~fractions.Fraction` per output (object arrays).
    xnor : bool
        Bipolar inputs and weights: the accumulator counts agreeing bits.
    node : tuple
        The graph node the solved thresholds go to: ``()`` a ``MatMulThreshold``;
        ``("depthwise", weight_dtype)`` a ``DepthwiseConv`` (``weights`` is the block-diagonal
        matrix, one non-zero per tap); ``("gap",)`` a ``GlobalAvgPool`` (``weights`` the tiled
        identity summing every pixel); ``("threshold",)`` a ``Threshold`` (``weights`` the
        identity); ``("add", src_a, src_b, dtype_a, dtype_b)`` an ``Add`` of the outputs of graph
        nodes ``src_a`` and ``src_b`` (``weights`` ``[diag(p) | diag(q)]``).
    """

    name: str
    input_dtype: DataType
    weights: np.ndarray
    weight_dtype: DataType
    scale: np.ndarray
    offset: np.ndarray
    xnor: bool
    node: tuple = ()


@dataclass(frozen=True)
class Pool:
    """A max-pool to emit after a pending layer's thresholds (``kernel`` and ``stride`` square):
    a ``MaxPool`` of an image (``dims`` 2) or a ``MaxPool1D`` of a sequence (``dims`` 1)."""

    name: str
    kernel: int
    stride: int
    dims: int = 2


@dataclass(frozen=True, eq=False)
class Act:
    """The activation: its layout (``idx``: the physical position of every element, in the ONNX
    logical shape without the batch axis; ``phys``: the physical shape, channels last) and the name
    of what produced it, for messages."""

    idx: np.ndarray
    phys: tuple[int, ...]
    origin: str
    src: str = field(default="", kw_only=True)
    """The graph node whose output this activation is or (pending) reads; ``""``: the graph
    input."""

    @property
    def channels(self) -> int:
        """The number of physical channels (the last physical axis)."""
        return self.phys[-1]


class _Chained:
    """A float activation: a value followed by a chain of exact element-wise functions."""

    chain: tuple

    def last_quantizer(self) -> int | None:
        """The position in ``chain`` of the last quantizer followed only by affine maps, or
        ``None``."""
        for i in range(len(self.chain) - 1, -1, -1):
            if is_quantizer(self.chain[i]):
                return i
            if not isinstance(self.chain[i], Affine):
                return None
        return None

    def then(self, op):
        """This activation followed by the element-wise function ``op``."""
        return replace(self, chain=self.chain + (op,))


@dataclass(frozen=True, eq=False)
class Codes(Act):
    """Integer codes of type ``dtype``; element ``code`` of physical channel ``c`` has the value
    ``scale[c] * values(code) + offset[c]`` (exact Fractions)."""

    dtype: DataType
    scale: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True, eq=False)
class Raw(Act, _Chained):
    """The float model input, before its quantizer: ``chain`` holds the functions applied since,
    ``tensor`` the ONNX tensor holding the latest value (what ``ImportResult.encode`` reads)."""

    chain: tuple = ()
    tensor: str | None = None


@dataclass(frozen=True, eq=False)
class Pending(Act, _Chained):
    """A matrix product (:class:`Layer`) not yet emitted, followed by the exact functions ``chain``
    and the max-pools ``pools``: thresholds fold them when a consumer needs integer codes."""

    layer: Layer
    chain: tuple = ()
    pools: tuple[Pool, ...] = ()


def image_idx(c, h, w, nchw=True) -> np.ndarray:
    """The layout of an ``(H, W, C)`` image as ``idx``: in the logical shape ``(C, H, W)`` (NCHW)
    or ``(H, W, C)`` (``nchw=False``), the physical position of every element."""
    pos = np.arange(h * w * c).reshape(h, w, c)
    return np.transpose(pos, (2, 0, 1)).copy() if nchw else pos


def seq_idx(c, length) -> np.ndarray:
    """The layout of a sequence ``(L, C)`` as ``idx``: in the logical shape ``(C, L)`` (ONNX's
    ``(N, C, L)`` without the batch axis), the physical position of every element."""
    return np.arange(length * c).reshape(length, c).T.copy()


def stored(w: np.ndarray, dtype: DataType) -> np.ndarray:
    """Weight values to the graph's storage (bits for BIPOLAR)."""
    return ((w + 1) // 2).astype(np.uint8) if dtype.kind is Kind.BIPOLAR else w.astype(np.int64)


def weight_dtype(codes: np.ndarray) -> DataType:
    """The narrowest weight type of integer weight values: BIPOLAR, TERNARY, a power-of-two type
    (more than three distinct values, all powers of two) or an integer type."""
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
    """Float weights that are exact multiples of one scale per output channel: ``(codes, scale)``,
    or ``(None, None)``."""
    if (w == np.round(w)).all() and np.abs(w).max(initial=0) < 2**24:
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
        if not (q == np.round(q)).all() or np.abs(q).max() > 2**15:
            return None, None
        codes[r], scales[r] = np.round(q).astype(np.int64), a
    shape = (w.shape[out_axis],) + tuple(np.delete(np.array(w.shape), out_axis))
    weight_codes: np.ndarray = np.moveaxis(codes.reshape(shape), 0, out_axis)  # back to w's axes
    per_row = np.broadcast_to(scales.reshape((-1,) + (1,) * (w.ndim - 1)), shape)
    scale = np.moveaxis(per_row, 0, out_axis)
    return weight_codes, np.asarray(scale, dtype=np.float64)
