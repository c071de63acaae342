"""The typed integer graph: what training or import produces and what the hardware implements.

A graph is a chain of nodes from an integer input tensor to integer class scores:

* :class:`MatMulThreshold` — multiplies the last axis (``MW`` values) by an integer weight matrix
  ``(MH, MW)`` and compares the accumulator with per-channel integer thresholds (MultiThreshold)
  or, for the last node, emits integer class scores. On an image ``(H, W, C)`` it acts on every
  pixel when ``MW == C`` (a convolution after a :class:`SlidingWindow`) and on the flattened image
  (row-major, channels last) when ``MW == H * W * C``.
* :class:`SlidingWindow` — the convolution windows (im2col) of an image, ``(OH, OW, K * K * C)``.
* :class:`MaxPool` — max-pool of ``BIPOLAR`` or unsigned activations (OR on bits).
* :class:`GlobalAccPool` — the exact sum over all pixels, ``(C,)``.
* :class:`Threshold` — a MultiThreshold of integer values on the last axis (as the first node: the
  input threshold unit that turns fixed-point pixels on the wire into the model's input codes,
  :meth:`IntegerGraph.with_input_wire`).

Weight types (``weight_dtype``): ``BIPOLAR`` weights are stored as bits (1 = +1, 0 = -1);
``TERNARY``, ``POW2_b`` and ``INTk`` weights are stored as the signed integers they stand for.

Accumulator semantics (``ARITHMETIC.md`` sections 1 to 5):

* bipolar inputs and bipolar weights: ``acc = popcount(XNOR(x, w))`` in ``[0, MW]``; the scores are
  ``2 * acc - MW``;
* otherwise: ``acc = sum_j x_j * w_j`` on values (a bipolar bit ``b`` is the value ``2b - 1``);
  the scores are ``acc``.

Thresholded outputs are ``sum_i [acc >= T[c, i]]``: one threshold gives a bipolar output (as bits),
``2^k - 1`` thresholds give a ``UINTk`` output.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import LowbitError
from .._io import atomic_write
from ..limits import LIMITS, check
from ..sw_reference import (
    add_threshold,
    argmax_lowest,
    concat,
    depthwise_int,
    depthwise_xnor,
    int_matmul,
    maxpool1d,
    maxpool2d,
    multithreshold,
    sliding_window,
    sliding_window_1d,
    sum_pool,
    xnor_popcount,
)
from .boundary import ClassMap, InputQuant
from .datatypes import BIPOLAR, DataType, Kind
from .mac import WEIGHT_KINDS, WEIGHT_TYPES, MacKind, mac_kind
from .npz import NpzReader, header_dtypes, header_shape, node_where, thresholds_fit, weights_fit

__all__ = [
    "MatMulThreshold",
    "SlidingWindow",
    "MaxPool",
    "GlobalAccPool",
    "Threshold",
    "DepthwiseConv",
    "SlidingWindow1D",
    "MaxPool1D",
    "GlobalAvgPool",
    "Add",
    "Concat",
    "GRAPH_INPUT",
    "IntegerGraph",
    "FORMAT_VERSION",
    "values",
]

FORMAT_VERSION = 5
"""Version 3 adds the input quantizer and the last node's class map, version 4 the
:class:`Threshold` node, version 5 the nodes beyond chains (:data:`DAG_OPS`) and the inputs of
every node of a graph that is not a chain; a file is written with the lowest version that holds it
(3 without a threshold node, 4 without version 5's), and versions 1 to 5 load."""


def values(x: np.ndarray, dtype: DataType) -> np.ndarray:
    """The integer values of stored data: bipolar bits ``b`` become ``2b - 1``; others are
    unchanged."""
    x = np.asarray(x).astype(np.int64)
    return 2 * x - 1 if dtype.kind is Kind.BIPOLAR else x


def _dtype_range(dtype: DataType) -> tuple[int, int]:
    return dtype.min, dtype.max


@dataclass(frozen=True, eq=False)
class MatMulThreshold:
    """``out = threshold(W x)`` with integer weights ``W`` of shape ``(MH, MW)`` and type
    ``weight_dtype``."""

    name: str
    input_dtype: DataType
    weights: np.ndarray
    thresholds: np.ndarray | None
    output_dtype: DataType = field(default=BIPOLAR)
    weight_dtype: DataType = field(default=BIPOLAR)
    class_map: ClassMap | None = None
    """Scores only (``thresholds=None``): the exact per-class map the class decision applies
    (:class:`~lowbit.ir.boundary.ClassMap`); ``None`` when the raw scores decide."""

    def __post_init__(self):
        w = _checked_weights(self, "(MH, MW)")
        if not self.weight_dtype.contains(w):
            what = (
                "bits (1 = +1, 0 = -1)"
                if self.weight_dtype is BIPOLAR
                else f"values of {self.weight_dtype} in "
                f"[{self.weight_dtype.min}, {self.weight_dtype.max}]"
                + (" (0 or +-2^j)" if self.weight_dtype.kind is Kind.POW2 else "")
            )
            raise ValueError(f"node {self.name!r}: weights must be {what}")
        object.__setattr__(
            self, "weights", w.astype(np.uint8 if self.weight_dtype is BIPOLAR else np.int64)
        )
        if self.thresholds is not None:
            t = np.asarray(self.thresholds)
            if t.dtype.kind not in "iu" or t.ndim != 2 or t.shape[0] != w.shape[0]:
                raise ValueError(
                    f"node {self.name!r}: thresholds must be integers of shape "
                    f"(MH={w.shape[0]}, k), not {t.dtype} {t.shape}"
                )
            t = t.astype(np.int64)
            if (np.diff(t, axis=1) < 0).any():
                raise ValueError(
                    f"node {self.name!r}: each row of thresholds must be sorted ascending"
                )
            lo, hi = self.acc_range
            if t.size and (t.min() < lo or t.max() > hi + 1):
                raise ValueError(
                    f"node {self.name!r}: thresholds must lie in the accumulator range "
                    f"[{lo}, {hi + 1}], found [{t.min()}, {t.max()}]"
                )
            expected = (
                BIPOLAR if t.shape[1] == 1 else DataType.uint((t.shape[1] + 1).bit_length() - 1)
            )
            if (1 << expected.bits) - 1 != t.shape[1] and expected is not BIPOLAR:
                raise ValueError(
                    f"node {self.name!r}: a k-bit output needs 2^k - 1 thresholds, not {t.shape[1]}"
                )
            if self.output_dtype != expected:
                raise ValueError(
                    f"node {self.name!r}: {t.shape[1]} thresholds give {expected}, "
                    f"not output_dtype {self.output_dtype}"
                )
            object.__setattr__(self, "thresholds", t)
            if self.class_map is not None:
                raise ValueError(
                    f"node {self.name!r}: a class_map applies to scores only (thresholds=None)"
                )
        else:
            if self.class_map is not None and (
                not isinstance(self.class_map, ClassMap) or self.class_map.classes != w.shape[0]
            ):
                raise ValueError(
                    f"node {self.name!r}: class_map must be a ClassMap with MH={w.shape[0]} "
                    f"classes, not {self.class_map!r}"
                )
            lo, hi = self.score_range
            if self.output_dtype != DataType.for_range(lo, hi):
                object.__setattr__(self, "output_dtype", DataType.for_range(lo, hi))

    @property
    def mh(self) -> int:
        return self.weights.shape[0]

    @property
    def mw(self) -> int:
        return self.weights.shape[1]

    @property
    def binary_input(self) -> bool:
        return self.input_dtype.kind is Kind.BIPOLAR

    @property
    def mac_kind(self) -> MacKind:
        """The MAC kind, from the input and weight types (:func:`lowbit.ir.mac.mac_kind`)."""
        return mac_kind(self)

    @property
    def xnor(self) -> bool:
        """True for bipolar inputs and weights (:attr:`MacKind.XNOR`): the accumulator is an XNOR
        popcount."""
        return self.mac_kind is MacKind.XNOR

    @property
    def weight_values(self) -> np.ndarray:
        """The weights as signed integer values ``(MH, MW)``."""
        return values(self.weights, self.weight_dtype)

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact range of the accumulator over all inputs of ``input_dtype`` and weights of
        ``weight_dtype``."""
        if self.xnor:
            return 0, self.mw
        xl, xh = _dtype_range(self.input_dtype)
        wl, wh = _dtype_range(self.weight_dtype)
        products = (xl * wl, xl * wh, xh * wl, xh * wh)
        return self.mw * min(products), self.mw * max(products)

    @property
    def acc_bits(self) -> int:
        """Bits of a register holding the accumulator and the thresholds (which reach ``hi + 1``):
        ``DataType.for_range(lo, hi + 1).bits`` of :attr:`acc_range`, unsigned when the accumulator
        is never negative. The bit-parallel MVTU's accumulator width."""
        lo, hi = self.acc_range
        return DataType.for_range(lo, hi + 1).bits

    @property
    def score_range(self) -> tuple[int, int]:
        lo, hi = self.acc_range
        return (2 * lo - self.mw, 2 * hi - self.mw) if self.xnor else (lo, hi)

    def infer(self, shape: tuple[int, ...], dtype: DataType) -> tuple[tuple[int, ...], DataType]:
        """Output shape and type for an input of ``shape`` and ``dtype``; errors name the node."""
        if dtype != self.input_dtype:
            raise ValueError(
                f"node {self.name!r}: input_dtype is {self.input_dtype}, "
                f"but the previous stage produces {dtype}"
            )
        if shape[-1] == self.mw:
            return tuple(shape[:-1]) + (self.mh,), self.output_dtype
        if math.prod(shape) == self.mw:
            return (self.mh,), self.output_dtype
        raise ValueError(
            f"node {self.name!r}: MW is {self.mw}, but the previous stage produces {shape} "
            f"(MW must equal its last axis or its size)"
        )

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """The accumulator for a batch of inputs ``x`` of shape ``(..., MW)``."""
        x = np.asarray(x)
        flat = x.reshape(-1, self.mw)
        if self.xnor:
            acc = xnor_popcount(flat, self.weights)
        else:
            acc = int_matmul(values(flat, self.input_dtype), self.weight_values)
        return acc.reshape(x.shape[:-1] + (self.mh,))

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Output of the node for a batch ``x``: bits, unsigned levels or integer scores."""
        x = np.asarray(x)
        if x.shape[-1] != self.mw:
            x = x.reshape(x.shape[0], self.mw)
        acc = self.accumulate(x)
        if self.thresholds is None:
            return 2 * acc - self.mw if self.xnor else acc
        return multithreshold(acc, self.thresholds)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """The class decision of scores ``(..., MH)`` of this (last) node: the argmax of the
        class map's values, ties to the lowest index."""
        if self.class_map is None:
            return argmax_lowest(scores)
        return self.class_map.decide(scores)

    def _meta(self) -> dict:
        meta = {
            "weight_dtype": self.weight_dtype.name,
            "input_dtype": self.input_dtype.name,
            "output_dtype": self.output_dtype.name,
            "has_thresholds": self.thresholds is not None,
        }
        if self.class_map is not None:
            meta["class_map"] = self.class_map.to_json()
        return meta


def _checked_weights(node, shape: str) -> np.ndarray:
    """``node.weights`` as an array, after checking the node's ``weight_dtype`` and
    ``input_dtype`` and that the weights are a 2-D integer array (``shape`` names its axes in the
    message)."""
    wd = node.weight_dtype
    if not isinstance(wd, DataType) or wd.kind not in WEIGHT_KINDS:
        raise ValueError(f"node {node.name!r}: weight_dtype must be {WEIGHT_TYPES}, not {wd!r}")
    if not isinstance(node.input_dtype, DataType) or node.input_dtype.kind not in (
        Kind.BIPOLAR,
        Kind.UINT,
        Kind.INT,
    ):
        raise ValueError(
            f"node {node.name!r}: input_dtype must be BIPOLAR, UINT<k> or INT<k>, "
            f"not {node.input_dtype!r}"
        )
    w = np.asarray(node.weights)
    if w.ndim != 2 or w.dtype.kind not in "biu":
        raise ValueError(
            f"node {node.name!r}: weights must be a 2-D integer array {shape}, "
            f"not {w.dtype} {w.shape}"
        )
    return w


def _check_geometry(node, **params):
    for key, (v, lo) in params.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            raise ValueError(f"node {node.name!r}: {key} must be an integer >= {lo}, not {v!r}")


def _check_image(node, shape) -> None:
    if len(shape) != 3:
        raise ValueError(
            f"node {node.name!r}: needs an image (H, W, C), but the previous stage produces {shape}"
        )


@dataclass(frozen=True, eq=False)
class SlidingWindow:
    """Convolution windows of an image ``(H, W, C)``: ``(OH, OW, K * K * C)`` in ``(ky, kx, c)``
    order.

    ``pad_value`` is a stored value of the input type (a bit for ``BIPOLAR`` inputs).
    """

    name: str
    kernel: int
    stride: int = 1
    pad: int = 0
    pad_value: int = 0

    def __post_init__(self):
        _check_geometry(self, kernel=(self.kernel, 1), stride=(self.stride, 1), pad=(self.pad, 0))

    def out_dim(self, dim: int) -> int:
        return (dim + 2 * self.pad - self.kernel) // self.stride + 1

    def infer(self, shape, dtype):
        _check_image(self, shape)
        h, w, c = shape
        if self.kernel > h + 2 * self.pad or self.kernel > w + 2 * self.pad:
            raise ValueError(
                f"node {self.name!r}: kernel {self.kernel} exceeds the padded input {shape}"
            )
        if self.pad and not dtype.contains([self.pad_value]):
            raise ValueError(
                f"node {self.name!r}: pad_value {self.pad_value} is not a value of {dtype}"
            )
        return (self.out_dim(h), self.out_dim(w), self.kernel * self.kernel * c), dtype

    def reference(self, x: np.ndarray) -> np.ndarray:
        return sliding_window(x, self.kernel, self.stride, self.pad, self.pad_value)

    def _meta(self) -> dict:
        return {
            "kernel": self.kernel,
            "stride": self.stride,
            "pad": self.pad,
            "pad_value": self.pad_value,
        }


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Max-pool over ``kernel x kernel`` windows (stride ``kernel`` by default) of bits or unsigned
    values."""

    name: str
    kernel: int
    stride: int | None = None

    def __post_init__(self):
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)
        _check_geometry(self, kernel=(self.kernel, 1), stride=(self.stride, 1))

    def infer(self, shape, dtype):
        _check_image(self, shape)
        if dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
            raise ValueError(
                f"node {self.name!r}: max-pool needs BIPOLAR or UINT inputs, not {dtype}"
            )
        h, w, c = shape
        if self.kernel > h or self.kernel > w:
            raise ValueError(f"node {self.name!r}: kernel {self.kernel} exceeds the input {shape}")
        return (
            (h - self.kernel) // self.stride + 1,
            (w - self.kernel) // self.stride + 1,
            c,
        ), dtype

    def reference(self, x: np.ndarray) -> np.ndarray:
        return maxpool2d(x, self.kernel, self.stride)

    def _meta(self) -> dict:
        return {"kernel": self.kernel, "stride": self.stride}


@dataclass(frozen=True, eq=False)
class GlobalAccPool:
    """Global accumulate-pool: the exact sum of each channel over all pixels (values; bits are
    +-1)."""

    name: str
    input_dtype: DataType

    def infer(self, shape, dtype):
        _check_image(self, shape)
        if dtype != self.input_dtype:
            raise ValueError(
                f"node {self.name!r}: input_dtype is {self.input_dtype}, "
                f"but the previous stage produces {dtype}"
            )
        n = shape[0] * shape[1]
        return (shape[2],), DataType.for_range(n * dtype.min, n * dtype.max)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return sum_pool(values(x, self.input_dtype))

    def _meta(self) -> dict:
        return {"input_dtype": self.input_dtype.name}


@dataclass(frozen=True, eq=False)
class Threshold:
    """MultiThreshold of integer values on the last axis:
    ``out = lo + sum_i [x[..., c] >= T[c, i]]``, ``lo`` the lowest stored value of
    ``output_dtype`` (a bit for ``BIPOLAR``, ``0`` for ``UINTk``, ``-2^(k-1)`` for ``INTk``).

    ``thresholds`` is ``(C, n)`` (one row per channel of the last axis) or ``(1, n)`` (shared),
    rows sorted ascending, every value in ``[input min, input max + 1]``; ``n`` is ``1`` for a
    ``BIPOLAR`` output and ``2^k - 1`` for a ``k``-bit one, so every output value is reachable.
    """

    name: str
    thresholds: np.ndarray
    input_dtype: DataType
    output_dtype: DataType

    def __post_init__(self):
        for key in ("input_dtype", "output_dtype"):
            if not isinstance(getattr(self, key), DataType):
                raise ValueError(f"node {self.name!r}: {key} must be a DataType")
        if self.input_dtype.kind not in (Kind.UINT, Kind.INT):
            raise ValueError(
                f"node {self.name!r}: input_dtype must be UINT<k> or INT<k>, not {self.input_dtype}"
            )
        out = self.output_dtype
        if out.kind not in (Kind.BIPOLAR, Kind.UINT, Kind.INT):
            raise ValueError(
                f"node {self.name!r}: output_dtype must be BIPOLAR, UINT<k> or INT<k>, not {out}"
            )
        t = np.asarray(self.thresholds)
        if t.ndim != 2 or t.dtype.kind not in "iu" or t.shape[0] < 1:
            raise ValueError(
                f"node {self.name!r}: thresholds must be integers of shape (C, n), "
                f"not {t.dtype} {t.shape}"
            )
        n = 1 if out.kind is Kind.BIPOLAR else (1 << out.bits) - 1
        if t.shape[1] != n:
            raise ValueError(
                f"node {self.name!r}: a {out} output needs {n} thresholds per channel, "
                f"not {t.shape[1]}"
            )
        if (np.diff(t, axis=1) < 0).any():
            raise ValueError(f"node {self.name!r}: each row of thresholds must be sorted ascending")
        lo, hi = self.input_dtype.min, self.input_dtype.max + 1
        if t.min() < lo or t.max() > hi:
            raise ValueError(
                f"node {self.name!r}: thresholds must lie in [{lo}, {hi}] "
                f"({self.input_dtype} inputs), found [{t.min()}, {t.max()}]"
            )
        object.__setattr__(self, "thresholds", t.astype(np.int64))

    def infer(self, shape, dtype):
        if dtype != self.input_dtype:
            raise ValueError(
                f"node {self.name!r}: input_dtype is {self.input_dtype}, "
                f"but the previous stage produces {dtype}"
            )
        if self.thresholds.shape[0] not in (1, shape[-1]):
            raise ValueError(
                f"node {self.name!r}: {self.thresholds.shape[0]} threshold rows; expected 1 or "
                f"one per channel ({shape[-1]})"
            )
        return tuple(shape), self.output_dtype

    def reference(self, x: np.ndarray) -> np.ndarray:
        return multithreshold(x, self.thresholds, self.output_dtype.stored_range[0])

    def _meta(self) -> dict:
        return {"input_dtype": self.input_dtype.name, "output_dtype": self.output_dtype.name}


def _thresholded_dtype(node, t: np.ndarray, acc_lo: int, acc_hi: int) -> np.ndarray:
    """Checked thresholds ``(C, k)`` of ``node`` on accumulators in ``[acc_lo, acc_hi]``: integers,
    rows sorted, in ``[acc_lo, acc_hi + 1]``, ``k`` giving ``node.output_dtype`` (one threshold: a
    ``BIPOLAR`` output as bits; ``2^b - 1``: ``UINTb``), as int64."""
    t = np.asarray(t)
    if t.dtype.kind not in "iu" or t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(
            f"node {node.name!r}: thresholds must be integers of shape (C, k), "
            f"not {t.dtype} {t.shape}"
        )
    t = t.astype(np.int64)
    if (np.diff(t, axis=1) < 0).any():
        raise ValueError(f"node {node.name!r}: each row of thresholds must be sorted ascending")
    if t.size and (t.min() < acc_lo or t.max() > acc_hi + 1):
        raise ValueError(
            f"node {node.name!r}: thresholds must lie in the accumulator range "
            f"[{acc_lo}, {acc_hi + 1}], found [{t.min()}, {t.max()}]"
        )
    k = t.shape[1]
    expected = BIPOLAR if k == 1 else DataType.uint((k + 1).bit_length() - 1)
    if expected is not BIPOLAR and (1 << expected.bits) - 1 != k:
        raise ValueError(f"node {node.name!r}: a k-bit output needs 2^k - 1 thresholds, not {k}")
    if node.output_dtype != expected:
        raise ValueError(
            f"node {node.name!r}: {k} thresholds give {expected}, "
            f"not output_dtype {node.output_dtype}"
        )
    return t


def _rows_fit(node, t: np.ndarray, channels: int) -> None:
    if t.shape[0] not in (1, channels):
        raise ValueError(
            f"node {node.name!r}: {t.shape[0]} threshold rows; expected 1 or one per channel "
            f"({channels})"
        )


def _same_dtype(node, dtype: DataType, expected: DataType) -> None:
    if dtype != expected:
        raise ValueError(
            f"node {node.name!r}: input_dtype is {expected}, "
            f"but the previous stage produces {dtype}"
        )


@dataclass(frozen=True, eq=False)
class DepthwiseConv:
    """A depthwise convolution (``groups == channels``, one ``K x K`` filter per channel) on the
    windows of a :class:`SlidingWindow` (or :class:`SlidingWindow1D`): for inputs
    ``(..., K * K * C)`` in ``(ky, kx, c)`` order, ``acc[c]`` is the dot product of channel ``c``'s
    ``K * K`` taps with row ``c`` of the weights ``(C, K * K)``, thresholded per channel to
    ``(..., C)``.

    The MAC kinds are the MVTU's (:attr:`mac_kind`): bipolar inputs and weights count agreeing bits
    (``acc`` in ``[0, K * K]``, :func:`~lowbit.sw_reference.depthwise_xnor`); otherwise ``acc`` is
    the exact sum of values times ternary, power-of-two or ``INTk`` weights
    (:func:`~lowbit.sw_reference.depthwise_int`). Weights are stored as for
    :class:`MatMulThreshold` (bits for ``BIPOLAR``, values otherwise). Thresholds ``(C, k)`` give a
    ``BIPOLAR`` (one) or ``UINTb`` (``2^b - 1``) output: ``sum_i [acc >= T[c, i]]``.
    """

    name: str
    input_dtype: DataType
    weights: np.ndarray
    thresholds: np.ndarray
    output_dtype: DataType = field(default=BIPOLAR)
    weight_dtype: DataType = field(default=BIPOLAR)

    def __post_init__(self):
        w = _checked_weights(self, "(C, K * K)")
        wd = self.weight_dtype
        if not wd.contains(w):
            raise ValueError(f"node {self.name!r}: weights must be stored values of {wd}")
        object.__setattr__(self, "weights", w.astype(np.uint8 if wd is BIPOLAR else np.int64))
        lo, hi = self.acc_range
        t = _thresholded_dtype(self, self.thresholds, lo, hi)
        _rows_fit(self, t, self.channels)
        object.__setattr__(self, "thresholds", t)

    @property
    def channels(self) -> int:
        return self.weights.shape[0]

    @property
    def taps(self) -> int:
        """``K * K``: the length of each channel's dot product."""
        return self.weights.shape[1]

    @property
    def mac_kind(self) -> MacKind:
        return mac_kind(self)

    @property
    def xnor(self) -> bool:
        return self.mac_kind is MacKind.XNOR

    @property
    def weight_values(self) -> np.ndarray:
        return values(self.weights, self.weight_dtype)

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact range of the accumulator over every input and weight of the types."""
        if self.xnor:
            return 0, self.taps
        xl, xh = _dtype_range(self.input_dtype)
        wl, wh = _dtype_range(self.weight_dtype)
        products = (xl * wl, xl * wh, xh * wl, xh * wh)
        return self.taps * min(products), self.taps * max(products)

    @property
    def acc_bits(self) -> int:
        lo, hi = self.acc_range
        return DataType.for_range(lo, hi + 1).bits

    def infer(self, shape, dtype):
        _same_dtype(self, dtype, self.input_dtype)
        if shape[-1] != self.taps * self.channels:
            raise ValueError(
                f"node {self.name!r}: {self.channels} channels of {self.taps} taps read windows "
                f"of {self.taps * self.channels} values, but the previous stage produces {shape}"
            )
        return tuple(shape[:-1]) + (self.channels,), self.output_dtype

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        if self.xnor:
            return depthwise_xnor(x, self.weights)
        return depthwise_int(values(x, self.input_dtype), self.weight_values)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return multithreshold(self.accumulate(x), self.thresholds)

    def _meta(self) -> dict:
        return {
            "weight_dtype": self.weight_dtype.name,
            "input_dtype": self.input_dtype.name,
            "output_dtype": self.output_dtype.name,
        }


@dataclass(frozen=True, eq=False)
class SlidingWindow1D:
    """1-D convolution windows of a sequence ``(L, C)``: ``(OL, K * C)`` in ``(k, c)`` order
    (:func:`~lowbit.sw_reference.sliding_window_1d`); a :class:`MatMulThreshold` on them is a 1-D
    convolution, a :class:`DepthwiseConv` a depthwise one. ``pad_value`` is a stored value of the
    input type."""

    name: str
    kernel: int
    stride: int = 1
    pad: int = 0
    pad_value: int = 0

    def __post_init__(self):
        _check_geometry(self, kernel=(self.kernel, 1), stride=(self.stride, 1), pad=(self.pad, 0))

    def out_dim(self, dim: int) -> int:
        return (dim + 2 * self.pad - self.kernel) // self.stride + 1

    def infer(self, shape, dtype):
        if len(shape) != 2:
            raise ValueError(
                f"node {self.name!r}: needs a sequence (L, C), but the previous stage produces "
                f"{shape}"
            )
        length, c = shape
        if self.kernel > length + 2 * self.pad:
            raise ValueError(
                f"node {self.name!r}: kernel {self.kernel} exceeds the padded input {shape}"
            )
        if self.pad and not dtype.contains([self.pad_value]):
            raise ValueError(
                f"node {self.name!r}: pad_value {self.pad_value} is not a value of {dtype}"
            )
        return (self.out_dim(length), self.kernel * c), dtype

    def reference(self, x: np.ndarray) -> np.ndarray:
        return sliding_window_1d(x, self.kernel, self.stride, self.pad, self.pad_value)

    def _meta(self) -> dict:
        return {
            "kernel": self.kernel,
            "stride": self.stride,
            "pad": self.pad,
            "pad_value": self.pad_value,
        }


@dataclass(frozen=True, eq=False)
class MaxPool1D:
    """1-D max-pool of a sequence ``(L, C)`` of bits or unsigned values over windows of
    ``kernel`` (stride ``kernel`` by default)."""

    name: str
    kernel: int
    stride: int | None = None

    def __post_init__(self):
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)
        _check_geometry(self, kernel=(self.kernel, 1), stride=(self.stride, 1))

    def infer(self, shape, dtype):
        if len(shape) != 2:
            raise ValueError(
                f"node {self.name!r}: needs a sequence (L, C), but the previous stage produces "
                f"{shape}"
            )
        if dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
            raise ValueError(
                f"node {self.name!r}: max-pool needs BIPOLAR or UINT inputs, not {dtype}"
            )
        length, c = shape
        if self.kernel > length:
            raise ValueError(f"node {self.name!r}: kernel {self.kernel} exceeds the input {shape}")
        assert self.stride is not None
        return ((length - self.kernel) // self.stride + 1, c), dtype

    def reference(self, x: np.ndarray) -> np.ndarray:
        return maxpool1d(x, self.kernel, self.stride)

    def _meta(self) -> dict:
        return {"kernel": self.kernel, "stride": self.stride}


@dataclass(frozen=True, eq=False)
class GlobalAvgPool:
    """Global average pool with exact rounding: the sum ``S[c]`` of each channel's values over all
    pixels of an image ``(H, W, C)`` (or positions of a sequence ``(L, C)``), thresholded per
    channel, ``(C,)``: ``sum_i [S[c] >= T[c, i]]``.

    Any rounding of the mean that is a non-decreasing function of the sum is such thresholds
    (Brevitas' ``TruncAvgPool2d``: :func:`~lowbit.sw_reference.trunc_avg_pool`; the thresholds of
    a function: :func:`~lowbit.sw_reference.monotone_thresholds`). ``thresholds`` ``(C, k)`` or
    ``(1, k)``; one gives a ``BIPOLAR`` output, ``2^b - 1`` a ``UINTb`` one.
    """

    name: str
    input_dtype: DataType
    thresholds: np.ndarray
    output_dtype: DataType

    def __post_init__(self):
        if not isinstance(self.input_dtype, DataType) or not isinstance(
            self.output_dtype, DataType
        ):
            raise ValueError(f"node {self.name!r}: input_dtype and output_dtype must be DataTypes")
        t = _thresholded_dtype(self, self.thresholds, -(2**62), 2**62)
        object.__setattr__(self, "thresholds", t)

    def infer(self, shape, dtype):
        if len(shape) not in (2, 3):
            raise ValueError(
                f"node {self.name!r}: needs an image (H, W, C) or a sequence (L, C), but the "
                f"previous stage produces {shape}"
            )
        _same_dtype(self, dtype, self.input_dtype)
        _rows_fit(self, self.thresholds, shape[-1])
        n = math.prod(shape[:-1])
        lo, hi = n * dtype.min, n * dtype.max
        t = self.thresholds
        if t.min() < lo or t.max() > hi + 1:
            raise ValueError(
                f"node {self.name!r}: thresholds must lie in the sum's range [{lo}, {hi + 1}], "
                f"found [{t.min()}, {t.max()}]"
            )
        return (shape[-1],), self.output_dtype

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        v = values(x, self.input_dtype)
        return v.reshape(v.shape[0], -1, v.shape[-1]).sum(axis=1)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return multithreshold(self.accumulate(x), self.thresholds)

    def _meta(self) -> dict:
        return {"input_dtype": self.input_dtype.name, "output_dtype": self.output_dtype.name}


@dataclass(frozen=True, eq=False)
class Add:
    """The elementwise join of two quantized tensors of one shape with exact requantization: on
    their values, ``acc[c] = wa[c] * a + wb[c] * b``, then ``sum_i [acc >= T[c, i]]``
    (:func:`~lowbit.sw_reference.add_threshold`).

    ``wa`` and ``wb`` fold the two branches' scales into integers
    (:func:`~lowbit.sw_reference.join_coefficients`: ``s_a x_a + s_b x_b = u (p x_a + q x_b)``), so
    one set of integer thresholds requantizes the sum exactly. ``input_dtypes`` are the types of
    the two inputs, in order; ``thresholds`` ``(C, k)`` or ``(1, k)``, one giving a ``BIPOLAR``
    output, ``2^b - 1`` a ``UINTb`` one. A join node: the graph gives it two inputs
    (:attr:`IntegerGraph.inputs`).
    """

    name: str
    input_dtypes: tuple[DataType, DataType]
    wa: np.ndarray
    wb: np.ndarray
    thresholds: np.ndarray
    output_dtype: DataType

    arity = 2

    def __post_init__(self):
        dts = tuple(self.input_dtypes)
        if len(dts) != 2 or not all(
            isinstance(d, DataType) and d.kind in (Kind.BIPOLAR, Kind.UINT, Kind.INT) for d in dts
        ):
            raise ValueError(
                f"node {self.name!r}: input_dtypes must be two of BIPOLAR, UINT<k> or INT<k>, "
                f"not {self.input_dtypes!r}"
            )
        object.__setattr__(self, "input_dtypes", dts)
        for key in ("wa", "wb"):
            w = np.asarray(getattr(self, key))
            if w.ndim != 1 or w.dtype.kind not in "iu" or w.size < 1:
                raise ValueError(
                    f"node {self.name!r}: {key} must be a 1-D integer array (C,), "
                    f"not {w.dtype} {w.shape}"
                )
            object.__setattr__(self, key, w.astype(np.int64))
        if self.wa.shape != self.wb.shape:
            raise ValueError(
                f"node {self.name!r}: wa {self.wa.shape} and wb {self.wb.shape} must have one shape"
            )
        lo, hi = self.acc_range
        t = _thresholded_dtype(self, self.thresholds, lo, hi)
        _rows_fit(self, t, self.channels)
        object.__setattr__(self, "thresholds", t)

    @property
    def channels(self) -> int:
        return self.wa.shape[0]

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact range of the accumulator over all inputs of the types (over every channel)."""
        lo = hi = 0
        for w, d in ((self.wa, self.input_dtypes[0]), (self.wb, self.input_dtypes[1])):
            ends = np.stack([w * d.min, w * d.max])
            lo, hi = lo + int(ends.min(axis=0).min()), hi + int(ends.max(axis=0).max())
        return lo, hi

    @property
    def acc_bits(self) -> int:
        lo, hi = self.acc_range
        return DataType.for_range(lo, hi + 1).bits

    def infer_join(self, shapes, dtypes):
        """Output shape and type for inputs of ``shapes`` and ``dtypes`` (two of each)."""
        if tuple(dtypes) != self.input_dtypes:
            raise ValueError(
                f"node {self.name!r}: input_dtypes are {', '.join(map(str, self.input_dtypes))}, "
                f"but its inputs produce {', '.join(map(str, dtypes))}"
            )
        if shapes[0] != shapes[1] or shapes[0][-1] != self.channels:
            raise ValueError(
                f"node {self.name!r}: adds two tensors of {self.channels} channels and one shape, "
                f"not {shapes[0]} and {shapes[1]}"
            )
        return tuple(shapes[0]), self.output_dtype

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return add_threshold(
            values(a, self.input_dtypes[0]),
            values(b, self.input_dtypes[1]),
            self.wa,
            self.wb,
            self.thresholds,
        )

    def _meta(self) -> dict:
        return {
            "input_dtypes": [d.name for d in self.input_dtypes],
            "output_dtype": self.output_dtype.name,
        }


@dataclass(frozen=True, eq=False)
class Concat:
    """``Concat`` along the channels (last axis) of two or more inputs of one type and one shape
    but the last axis (:func:`~lowbit.sw_reference.concat`). A join node: the graph gives it its
    inputs, in order."""

    name: str

    arity = None  # any number from two

    def infer_join(self, shapes, dtypes):
        if len(shapes) < 2 or len(set(dtypes)) != 1:
            raise ValueError(
                f"node {self.name!r}: concatenates two or more inputs of one type, not "
                f"{', '.join(map(str, dtypes))}"
            )
        if len({tuple(s[:-1]) for s in shapes}) != 1:
            raise ValueError(
                f"node {self.name!r}: its inputs must agree on every axis but the last, not "
                f"{', '.join(map(str, shapes))}"
            )
        return tuple(shapes[0][:-1]) + (sum(s[-1] for s in shapes),), dtypes[0]

    def reference(self, *xs: np.ndarray) -> np.ndarray:
        return concat(*xs)

    def _meta(self) -> dict:
        return {}


DAG_OPS = (DepthwiseConv, SlidingWindow1D, MaxPool1D, GlobalAvgPool, Add, Concat)
"""The node types of format version 5: the mapper and the hardware take chains of the others."""

_OPS = {
    cls.__name__: cls
    for cls in (MatMulThreshold, SlidingWindow, MaxPool, GlobalAccPool, Threshold, *DAG_OPS)
}

GRAPH_INPUT = ""
"""The name by which :attr:`IntegerGraph.inputs` refers to the graph's input."""


def arity(node) -> int | None:
    """How many inputs ``node`` reads: 1, 2 (:class:`Add`) or ``None`` for any from two
    (:class:`Concat`)."""
    return getattr(type(node), "arity", 1)


def _check_inputs(nodes: tuple, inputs) -> tuple[tuple[str, ...], ...] | None:
    """``inputs`` checked against ``nodes`` (see :attr:`IntegerGraph.inputs`); ``None`` for a
    chain."""
    chain = tuple((n,) for n in [GRAPH_INPUT] + [m.name for m in nodes[:-1]])
    if inputs is None:
        for n in nodes:
            if arity(n) != 1:
                raise ValueError(
                    f"node {n.name!r} ({type(n).__name__}) joins two or more inputs; give the "
                    "graph its inputs (IntegerGraph.inputs)"
                )
        return None
    ins = tuple(tuple(i) for i in inputs)
    if len(ins) != len(nodes):
        raise ValueError(f"inputs must name the inputs of each of the {len(nodes)} nodes")
    seen = {GRAPH_INPUT}
    for n, names in zip(nodes, ins):
        if n.name == GRAPH_INPUT:
            raise ValueError("a node of a graph with inputs needs a non-empty name")
        if not all(isinstance(i, str) for i in names):
            raise ValueError(f"node {n.name!r}: inputs must be node names, not {names!r}")
        a = arity(n)
        if (a is None and len(names) < 2) or (a is not None and len(names) != a):
            want = "two or more" if a is None else str(a)
            raise ValueError(
                f"node {n.name!r} ({type(n).__name__}) reads {want} inputs, not {len(names)}"
            )
        for i in names:
            if i not in seen:
                raise ValueError(
                    f"node {n.name!r} reads {i!r}, which is not an earlier node (nodes must be "
                    "in topological order: IntegerGraph.from_dag sorts them)"
                )
        seen.add(n.name)
    read = {i for names in ins for i in names}
    for n in nodes[:-1]:
        if n.name not in read:
            raise ValueError(f"node {n.name!r}: its output is never read (only the last node's is "
                             "the graph's output)")
    if GRAPH_INPUT not in read:
        raise ValueError("no node reads the graph input")
    return None if ins == chain else ins


@dataclass(frozen=True, eq=False)
class IntegerGraph:
    """A graph of nodes from an integer input tensor to the class scores of a
    :class:`MatMulThreshold`: a chain, or a DAG when :attr:`inputs` is given.

    ``input_shape`` defaults to ``(MW,)`` of the first node; images are ``(H, W, C)``. Inputs may
    be given as ``(B, *input_shape)`` or flattened row-major, channels last, as
    ``(B, input_size)``: the order in which the hardware streams them.
    """

    input_dtype: DataType
    nodes: tuple
    input_shape: tuple[int, ...] | None = None
    input_quant: InputQuant | None = None
    """How float inputs become input codes (:meth:`encode`); ``None`` when the graph takes codes
    only."""
    inputs: tuple[tuple[str, ...], ...] | None = None
    """For each node, the names of the nodes whose outputs it reads (:data:`GRAPH_INPUT`, ``""``,
    for the graph's input), in order: a fork is a node read by two, a join (:class:`Add`,
    :class:`Concat`) reads two or more. Nodes are in topological order (every input an earlier
    node), every node but the last is read, and the last node's output is the graph's.
    ``None`` for a chain (each node reads the one before it); a given ``inputs`` that is a chain
    is stored as ``None``, so a chain has one form."""

    if TYPE_CHECKING:
        # output shape of every node, set by __post_init__ (not a dataclass field)
        @property
        def _shapes(self) -> tuple[tuple[int, ...], ...]: ...

        @property
        def _dtypes(self) -> tuple[DataType, ...]: ...

    def __post_init__(self):
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        if not nodes:
            raise ValueError("an integer graph needs at least one node")
        for node in nodes:
            if type(node) not in _OPS.values():
                raise TypeError(
                    f"graph nodes must be one of {', '.join(_OPS)}, not {type(node).__name__}"
                )
        if len({n.name for n in nodes}) != len(nodes):
            raise ValueError("node names must be unique")
        inputs = _check_inputs(nodes, self.inputs)
        object.__setattr__(self, "inputs", inputs)
        if self.input_shape is None:
            if not isinstance(nodes[0], MatMulThreshold):
                raise ValueError(
                    f"node {nodes[0].name!r}: a graph starting with {type(nodes[0]).__name__} "
                    "needs an input_shape (H, W, C)"
                )
            object.__setattr__(self, "input_shape", (nodes[0].mw,))
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be positive dimensions, not {self.input_shape!r}")
        object.__setattr__(self, "input_shape", shape)
        shapes: dict[str, tuple[int, ...]] = {GRAPH_INPUT: shape}
        dtypes: dict[str, DataType] = {GRAPH_INPUT: self.input_dtype}
        for node, ins in zip(nodes, self.edges):
            if arity(node) == 1:
                out = node.infer(shapes[ins[0]], dtypes[ins[0]])
            else:
                out = node.infer_join([shapes[i] for i in ins], [dtypes[i] for i in ins])
            shapes[node.name], dtypes[node.name] = out
        shape = shapes[nodes[-1].name]
        object.__setattr__(self, "_shapes", tuple(shapes[n.name] for n in nodes))
        object.__setattr__(self, "_dtypes", tuple(dtypes[n.name] for n in nodes))
        last = nodes[-1]
        if not isinstance(last, MatMulThreshold) or last.thresholds is not None or len(shape) != 1:
            raise ValueError(
                f"node {last.name!r}: the last node must be a MatMulThreshold emitting scores "
                "(thresholds=None) for one vector"
            )
        if any(isinstance(n, MatMulThreshold) and n.thresholds is None for n in nodes[:-1]):
            raise ValueError("only the last node may emit scores")
        q = self.input_quant
        if q is not None:
            if not isinstance(q, InputQuant) or q.dtype != self.input_dtype:
                raise ValueError(
                    f"input_quant must be an InputQuant producing {self.input_dtype}, not {q!r}"
                )
            channels = self.input_shape[-1]
            if len(q.scale) not in (1, channels) or len(q.zero_point) not in (1, channels):
                raise ValueError(
                    f"input_quant has {len(q.scale)} scales; expected 1 or one per input "
                    f"channel ({channels})"
                )

    @classmethod
    def from_dag(
        cls,
        input_dtype: DataType,
        nodes_inputs,
        input_shape: tuple[int, ...] | None = None,
        input_quant: InputQuant | None = None,
    ) -> "IntegerGraph":
        """A graph of ``(node, input names)`` pairs in any order: they are put in a topological
        order (stable: among nodes ready at once, the given order), the node that no other reads
        last. Raises ``ValueError`` naming a node on a cycle or reading an unknown name."""
        pairs = [(n, tuple(ins)) for n, ins in nodes_inputs]
        names = {n.name for n, _ in pairs}
        for n, ins in pairs:
            for i in ins:
                if i != GRAPH_INPUT and i not in names:
                    raise ValueError(f"node {n.name!r} reads {i!r}, which is not a node")
        done, order = {GRAPH_INPUT}, []
        pending = list(pairs)
        while pending:
            ready = [p for p in pending if all(i in done for i in p[1])]
            if not ready:
                raise ValueError(f"node {pending[0][0].name!r} is on a cycle")
            # the sink (read by no one) goes last; others keep their given order
            read = {i for _, ins in pending for i in ins}
            p = next((p for p in ready if p[0].name in read or len(pending) == 1), ready[0])
            order.append(p)
            done.add(p[0].name)
            pending.remove(p)
        return cls(
            input_dtype,
            tuple(n for n, _ in order),
            input_shape,
            input_quant,
            tuple(ins for _, ins in order),
        )

    @property
    def is_chain(self) -> bool:
        """True when each node reads the one before it (:attr:`inputs` is ``None``)."""
        return self.inputs is None

    @property
    def edges(self) -> tuple[tuple[str, ...], ...]:
        """The inputs of every node (:attr:`inputs`, or a chain's: the node before, the first
        node the graph input)."""
        if self.inputs is not None:
            return self.inputs
        names = [GRAPH_INPUT] + [n.name for n in self.nodes[:-1]]
        return tuple((name,) for name in names)

    def inputs_of(self, index: int) -> tuple[str, ...]:
        """The names of the nodes node ``index`` reads (``""``: the graph input)."""
        return self.edges[index]

    def consumers(self, name: str) -> tuple[str, ...]:
        """The names of the nodes that read node ``name``'s output (``""``: the graph input), one
        entry per read (a node reading it twice is named twice: the stream forks all the same)."""
        return tuple(n.name for n, ins in zip(self.nodes, self.edges) for i in ins if i == name)

    def node(self, name: str):
        """The node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def dag_nodes(self) -> tuple:
        """The nodes a chain of lowbit's mapper and hardware does not hold yet: nodes of the
        version 5 types (:data:`DAG_OPS`), and the nodes reading or forking off another branch
        when the graph is not a chain (the joins, and every node read by more than one)."""
        out = []
        for n, ins in zip(self.nodes, self.edges):
            if isinstance(n, DAG_OPS) or len(ins) > 1 or len(self.consumers(n.name)) > 1:
                out.append(n)
        return tuple(out)

    def require_chain(self, what: str) -> None:
        """Refuse a graph that :meth:`dag_nodes` says ``what`` (``"map"``, ``"the hardware"``)
        cannot take, naming the first such node.

        Raises
        ------
        LowbitError
            Naming ``what``, the node and its op type.
        """
        bad = self.dag_nodes()
        if bad:
            n = bad[0]
            i = self.nodes.index(n)
            if len(self.edges[i]) > 1:
                why = f"joins {len(self.edges[i])} branches"
            elif len(self.consumers(n.name)) > 1:
                why = f"forks: {len(self.consumers(n.name))} nodes read its output"
            else:
                why = f"is a {type(n).__name__}"
            raise LowbitError(
                f"{what}: node {n.name!r} ({type(n).__name__}) {why}; {what} takes chains of "
                "MatMulThreshold, SlidingWindow, MaxPool, GlobalAccPool and Threshold nodes so far"
            )

    @property
    def _in_shape(self) -> tuple[int, ...]:
        """``input_shape``, which ``__post_init__`` always sets (``None`` only as an argument)."""
        shape = self.input_shape
        assert shape is not None
        return shape

    @property
    def input_size(self) -> int:
        return math.prod(self._in_shape)

    @property
    def classes(self) -> int:
        return self.nodes[-1].mh

    @property
    def matmuls(self) -> tuple[MatMulThreshold, ...]:
        return tuple(n for n in self.nodes if isinstance(n, MatMulThreshold))

    @property
    def is_mlp(self) -> bool:
        """True for a chain of fully connected :class:`MatMulThreshold` nodes on a vector input."""
        return len(self._in_shape) == 1 and all(isinstance(n, MatMulThreshold) for n in self.nodes)

    def output_shape(self, index: int) -> tuple[int, ...]:
        """Shape (without the batch axis) of the output of node ``index``."""
        return self._shapes[index]

    def input_shape_of(self, index: int) -> tuple[int, ...]:
        """Shape of the (first) input of node ``index``."""
        return self.input_shapes_of(index)[0]

    def input_shapes_of(self, index: int) -> tuple[tuple[int, ...], ...]:
        """Shapes of the inputs of node ``index``, in order."""
        where = {n.name: i for i, n in enumerate(self.nodes)}
        return tuple(
            self._in_shape if i == GRAPH_INPUT else self._shapes[where[i]]
            for i in self.edges[index]
        )

    def output_dtype(self, index: int) -> DataType:
        """Data type of the output of node ``index``."""
        return self._dtypes[index]

    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biu":
            raise TypeError(f"input must be an integer array, not {x.dtype}")
        if x.ndim == 2 and x.shape[1] == self.input_size:
            x = x.reshape((x.shape[0],) + self._in_shape)
        if x.shape[1:] != self._in_shape:
            raise ValueError(
                f"input must have shape (B, {self.input_size}) or (B, "
                f"{', '.join(map(str, self._in_shape))}), not {x.shape}"
            )
        lo, hi = self.input_dtype.stored_range
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(
                f"input values must lie in [{lo}, {hi}] ({self.input_dtype}), "
                f"found [{x.min()}, {x.max()}]"
            )
        return x.astype(np.int64)

    def trace(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of every node for a batch ``x``, in order (the last one is the scores)."""
        if self.inputs is None:
            out, h = [], self.check_input(x)
            for node in self.nodes:
                h = node.reference(h)
                out.append(h)
            return out
        env = {GRAPH_INPUT: self.check_input(x)}
        for node, ins in zip(self.nodes, self.inputs):
            env[node.name] = node.reference(*(env[i] for i in ins))
        return [env[n.name] for n in self.nodes]

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.trace(x)[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The class decision for input codes ``x``: :meth:`decide` of the scores."""
        return self.decide(self.scores(x))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """The class decision of the last node's integer ``scores`` ``(B, classes)``, through its
        class map when it has one (what the hardware's label select computes)."""
        return self.nodes[-1].decide(scores)

    def encode(self, x) -> np.ndarray:
        """Input codes for float inputs ``x`` ``(B, *input_shape)`` or ``(B, input_size)``,
        through the graph's input quantizer.

        Raises
        ------
        LowbitError
            When the graph has no input quantizer.
        """
        if self.input_quant is None:
            raise LowbitError(
                "this graph has no input quantizer: give it integer input codes of "
                f"{self.input_dtype}, or import the model with an input quantizer"
            )
        x = np.asarray(x)
        if x.ndim == 2 and x.shape[1] == self.input_size:
            x = x.reshape((x.shape[0],) + self._in_shape)
        return self.input_quant.encode(x)

    def boundary(self) -> dict:
        """Where the graph meets floats, as JSON values: its input type, input quantizer and the
        last node's class map (``None`` when absent)."""
        cm = self.nodes[-1].class_map
        return {
            "input_dtype": self.input_dtype.name,
            "input_quant": None if self.input_quant is None else self.input_quant.to_json(),
            "class_map": None if cm is None else cm.to_json(),
        }

    def with_input_wire(self, wire: InputQuant, name: str = "input_threshold") -> "IntegerGraph":
        """This graph behind an input threshold unit: it takes ``wire`` codes (fixed-point pixels,
        the value of code ``w`` being ``(w - zero_point) * scale``) and turns them into this
        graph's input codes with a :class:`Threshold` node, exactly as :attr:`input_quant` encodes
        those values (float32, its rounding mode).

        The thresholds come from evaluating :meth:`InputQuant.encode` on every wire value, so the
        new graph's answer for wire codes ``w`` equals this graph's answer for
        ``input_quant.encode(wire.decode(w))`` on every input. The new graph's
        :attr:`input_quant` is ``wire`` (so :meth:`encode` rounds floats onto the wire's grid).

        Raises
        ------
        LowbitError
            When this graph has no input quantizer, or ``wire`` is not a per-tensor ``UINTk`` or
            ``INTk`` type of at most ``LIMITS.act_bits`` bits without ``narrow``.
        """
        q = self.input_quant
        if q is None:
            raise LowbitError(
                "input wire: this graph has no input quantizer, so what its input codes stand for "
                "is unknown; import the model with one (--input-quant or --calib)"
            )
        if not isinstance(wire, InputQuant):
            raise LowbitError(f"input wire: expected an InputQuant, not {wire!r}")
        d = wire.dtype
        if d.kind not in (Kind.UINT, Kind.INT) or wire.narrow:
            raise LowbitError(f"input wire: the type must be UINT<k> or INT<k>, not {d}")
        check("input wire", "bit width", d.bits, LIMITS.act_bits)
        if len(wire.scale) != 1 or len(wire.zero_point) != 1:
            raise LowbitError("input wire: one scale and zero point for every pixel, expected")
        w = np.arange(d.min, d.max + 1)
        x = wire.decode(w).astype(np.float32)
        channels = max(len(q.scale), len(q.zero_point))
        codes = q.encode(np.repeat(x[:, None], channels, axis=1))  # (wire values, channels)
        out = self.input_dtype
        idx = codes - out.stored_range[0]  # the count of thresholds each code passes
        if (np.diff(idx, axis=0) < 0).any():  # cannot happen with positive scales
            raise LowbitError("input wire: the input quantizer is not monotone in the wire value")
        n = 1 if out.kind is Kind.BIPOLAR else (1 << out.bits) - 1
        passed = np.arange(1, n + 1)
        t = d.min + (idx[:, :, None] < passed).sum(axis=0)  # (channels, n)
        if (t == t[:1]).all():
            t = t[:1]
        node = Threshold(name, t, d, out)
        if any(n.name == name for n in self.nodes):
            raise LowbitError(f"input wire: the graph already has a node named {name!r}")
        inputs = None
        if self.inputs is not None:
            inputs = ((GRAPH_INPUT,),) + tuple(
                tuple(name if i == GRAPH_INPUT else i for i in ins) for ins in self.inputs
            )
        return IntegerGraph(d, (node, *self.nodes), self._in_shape, wire, inputs)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the graph as an ``.npz`` archive (JSON header plus arrays), atomically."""
        path = Path(path)
        version = 3
        if any(isinstance(n, Threshold) for n in self.nodes):
            version = 4
        if self.inputs is not None or any(isinstance(n, DAG_OPS) for n in self.nodes):
            version = 5
        metas = [{"op": type(n).__name__, "name": n.name, **n._meta()} for n in self.nodes]
        if self.inputs is not None:
            for meta, ins in zip(metas, self.inputs):
                meta["inputs"] = list(ins)
        header = {
            "format": "lowbit-integer-graph",
            "version": version,
            "input_dtype": self.input_dtype.name,
            "input_shape": list(self._in_shape),
            **({} if self.input_quant is None else {"input_quant": self.input_quant.to_json()}),
            "nodes": metas,
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, n in enumerate(self.nodes):
            if isinstance(n, MatMulThreshold):
                arrays[f"weights_{i}"] = n.weights
                if n.thresholds is not None:
                    arrays[f"thresholds_{i}"] = n.thresholds
            elif isinstance(n, DepthwiseConv):
                arrays[f"weights_{i}"] = n.weights
                arrays[f"thresholds_{i}"] = n.thresholds
            elif isinstance(n, Add):
                arrays[f"weights_{i}"] = np.stack([n.wa, n.wb])
                arrays[f"thresholds_{i}"] = n.thresholds
            elif isinstance(n, (Threshold, GlobalAvgPool)):
                arrays[f"thresholds_{i}"] = n.thresholds
        # numpy's stub lets the array names of **arrays also match its allow_pickle: bool
        return atomic_write(
            path,
            lambda f: np.savez_compressed(f, **arrays),  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IntegerGraph":
        """Read a graph written by :meth:`save`; errors name the file and what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise LowbitError(f"{path}: no such model file")
        with NpzReader(path) as z:
            return cls._load(z)

    @classmethod
    def _load(cls, z: NpzReader) -> "IntegerGraph":
        """:meth:`load` from an open archive: every entry is checked before it is used, every
        array before it is read, every node's output size before the next node."""
        path = z.path
        header = z.json("header")
        if not isinstance(header, dict):
            raise LowbitError(f"{path}: header must be a JSON object, not {type(header).__name__}")
        if header.get("format") != "lowbit-integer-graph" or header.get("version") not in (
            1,
            2,
            3,
            4,
            FORMAT_VERSION,
        ):
            raise LowbitError(
                f"{path}: expected format 'lowbit-integer-graph' version 1 to {FORMAT_VERSION}, "
                f"got {header.get('format')!r} version {header.get('version')!r}"
            )
        metas = header.get("nodes")
        if not isinstance(metas, list):
            raise LowbitError(
                f"{path}: header: 'nodes' must be a list of node objects, not "
                f"{type(metas).__name__}"
            )
        dtype = header_dtypes({"input_dtype": header.get("input_dtype")}, str(path))["input_dtype"]
        input_shape = shape = header_shape(header.get("input_shape"), path)
        dag = any(isinstance(m, dict) and "inputs" in m for m in metas)
        if dag and header.get("version") != FORMAT_VERSION:
            raise LowbitError(f"{path}: node inputs need format version {FORMAT_VERSION}")
        try:
            nodes, inputs = [], []
            for i, meta in enumerate(metas):
                if dag:  # shapes follow the inputs: the graph checks them, then the sizes below
                    inputs.append(_inputs_from_meta(meta, i, path))
                    nodes.append(_node_from_meta(meta, i, z, None))
                    continue
                node = _node_from_meta(meta, i, z, shape)
                if shape is None and isinstance(node, MatMulThreshold):
                    shape = (node.mw,)
                if shape is not None:  # else the graph below refuses: no input_shape
                    shape, dtype = node.infer(shape, dtype)
                    out = f"{path}: node {i} ({node.name!r}): output {shape}"
                    check(out, "elements", math.prod(shape), LIMITS.tensor_elements)
                nodes.append(node)
            quant = header.get("input_quant")
            graph = cls(
                header_dtypes(header, str(path))["input_dtype"],
                tuple(nodes),
                input_shape,
                None if quant is None else InputQuant.from_json(quant),
                tuple(inputs) if dag else None,
            )
            for i, node in enumerate(graph.nodes):
                out = f"{path}: node {i} ({node.name!r}): output {graph.output_shape(i)}"
                check(out, "elements", math.prod(graph.output_shape(i)), LIMITS.tensor_elements)
            return graph
        except KeyError as e:
            raise LowbitError(f"{path}: missing entry {e} in the model") from None
        except (ValueError, TypeError) as e:
            raise LowbitError(f"{path}: invalid model: {e}") from None

    def precision_label(self) -> str:
        """What the model computes with, in the usual ``W<w>A<a>`` notation: the weight and
        activation types of its hidden layers, and the first and last layers' weight types in
        brackets where they differ, e.g. ``"W2A2 (first/last W8)"``.

        The hidden layers are the :class:`MatMulThreshold` nodes between the first and the last
        (every one in a graph of one or two). The activations are the outputs of the thresholds
        (every :class:`MatMulThreshold` but the last, and :class:`Threshold` nodes other than an
        input threshold unit in front); a graph of one layer has none and shows its input type. A
        type is spelled as its bits (``BIPOLAR`` 1, ``INTk`` and ``UINTk`` k), ``ternary`` or
        ``pow2_<b>``; different types of the hidden layers are joined by ``/`` in layer order, and
        a space separates the weights from ``A`` unless they are one number.

        Examples: ``"W1A1"``, ``"W2A2 (first/last W8)"``, ``"Wternary A1 (first W8, last W4)"``,
        ``"W8/2 A2"`` (two layers of different types).
        """
        mm = self.matmuls
        hidden = mm[1:-1] if len(mm) >= 3 else mm
        acts = [
            n.output_dtype
            for i, n in enumerate(self.nodes)
            if (isinstance(n, MatMulThreshold) and n.thresholds is not None)
            or (isinstance(n, Threshold) and i > 0)
        ] or [self.input_dtype]
        w = _joined(n.weight_dtype for n in hidden)
        label = f"W{w}{'' if w.isdigit() else ' '}A{_joined(acts)}"
        if len(mm) < 3:
            return label
        ends = (("first", _token(mm[0].weight_dtype)), ("last", _token(mm[-1].weight_dtype)))
        edges = [(where, token) for where, token in ends if token not in w.split("/")]
        if len(edges) == 2 and edges[0][1] == edges[1][1]:
            return f"{label} (first/last W{edges[0][1]})"
        if edges:
            return f"{label} ({', '.join(f'{where} W{token}' for where, token in edges)})"
        return label

    def summary(self) -> list[dict]:
        rows = []
        for i, n in enumerate(self.nodes):
            row = {
                "name": n.name,
                "op": type(n).__name__,
                "input_shape": list(self.input_shape_of(i)),
                "output_shape": list(self.output_shape(i)),
            }
            if isinstance(n, MatMulThreshold):
                row.update(
                    {
                        "MW": n.mw,
                        "MH": n.mh,
                        "input": n.input_dtype.name,
                        "weights": n.weight_dtype.name,
                        "output": n.output_dtype.name,
                    }
                )
            rows.append(row)
        return rows


def _token(dtype: DataType) -> str:
    """A type in a :meth:`IntegerGraph.precision_label`: its bits, ``ternary`` or ``pow2_<b>``."""
    if dtype.kind is Kind.TERNARY:
        return "ternary"
    if dtype.kind is Kind.POW2:
        return f"pow2_{dtype.bits}"
    return str(dtype.bits)


def _joined(dtypes) -> str:
    """The distinct :func:`_token` of ``dtypes``, in order, joined by ``/``."""
    return "/".join(dict.fromkeys(_token(d) for d in dtypes))


def _node_from_meta(meta, i: int, arrays: NpzReader, shape: tuple[int, ...] | None = None):
    """Node ``i`` of a model header, its arrays read from ``arrays``; ``shape`` is its input's
    (``None`` when not known yet). Types and array shapes are checked before arrays are read."""
    where = node_where(arrays.path, i, meta)
    op = meta.get("op", "MatMulThreshold")
    if not isinstance(op, str) or op not in _OPS:
        raise LowbitError(
            f"{arrays.path}: node {i}: unknown op {op!r}; expected one of {', '.join(_OPS)}"
        )
    scores = meta.get("has_thresholds") is False  # a scores output is wider than activations
    dtypes = header_dtypes(meta, where, scores)  # bit widths checked before any type is built
    if op == "MatMulThreshold":
        has = meta.get("has_thresholds")
        if not isinstance(has, bool):
            raise LowbitError(f"{where}: 'has_thresholds' must be true or false, not {has!r}")
        w, t = f"weights_{i}", f"thresholds_{i}"
        fit = weights_fit(shape, where, w)
        weights = arrays.array(w, where, ndim=2, axes="MH, MW", check_shape=fit)
        return MatMulThreshold(
            name=meta["name"],
            input_dtype=dtypes["input_dtype"],
            weights=weights,
            thresholds=(
                arrays.array(t, where, ndim=2, axes="MH, k", check_shape=thresholds_fit(where, t))
                if has
                else None
            ),
            output_dtype=dtypes["output_dtype"],
            weight_dtype=dtypes.get("weight_dtype", BIPOLAR),
            class_map=None if "class_map" not in meta else ClassMap.from_json(meta["class_map"]),
        )
    if op == "GlobalAccPool":
        return GlobalAccPool(meta["name"], DataType.parse(meta["input_dtype"]))
    if op in ("DepthwiseConv", "GlobalAvgPool", "Add"):
        tarr = arrays.array(
            f"thresholds_{i}", where, ndim=2, axes="C, k",
            check_shape=thresholds_fit(where, f"thresholds_{i}"),
        )
        if op == "GlobalAvgPool":
            return GlobalAvgPool(
                meta["name"], dtypes["input_dtype"], tarr, dtypes["output_dtype"]
            )
        axes = "C, K * K" if op != "Add" else "2, C"
        warr = arrays.array(f"weights_{i}", where, ndim=2, axes=axes)
        if op == "DepthwiseConv":
            return DepthwiseConv(
                meta["name"], dtypes["input_dtype"], warr, tarr, dtypes["output_dtype"],
                dtypes.get("weight_dtype", BIPOLAR),
            )
        names = meta.get("input_dtypes")
        if not isinstance(names, list) or len(names) != 2 or warr.shape[0] != 2:
            raise LowbitError(f"{where}: an Add needs 'input_dtypes' (two) and weights (2, C)")
        ins = [header_dtypes({"input_dtype": n}, where)["input_dtype"] for n in names]
        return Add(meta["name"], (ins[0], ins[1]), warr[0], warr[1], tarr, dtypes["output_dtype"])
    if op == "Threshold":
        return Threshold(
            meta["name"],
            arrays[f"thresholds_{i}"],
            DataType.parse(meta["input_dtype"]),
            DataType.parse(meta["output_dtype"]),
        )
    kwargs = {k: v for k, v in meta.items() if k not in ("op", "name", "inputs")}
    return _OPS[op](meta["name"], **kwargs)


def _inputs_from_meta(meta, i: int, path) -> tuple[str, ...]:
    """Node ``i``'s ``inputs`` entry: a list of node names (``""``: the graph input)."""
    ins = meta.get("inputs") if isinstance(meta, dict) else None
    if not isinstance(ins, list) or not ins or not all(isinstance(n, str) for n in ins):
        raise LowbitError(
            f"{path}: node {i}: 'inputs' must be a list of node names, not {ins!r}"
        )
    return tuple(ins)
