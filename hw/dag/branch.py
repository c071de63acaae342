"""Specs of the blocks of a residual block: the stream fork and the adder/joiner.

:class:`ForkSpec` duplicates a stream onto two outputs ``a`` and ``b``, each with its own output
register, so that either consumer may stall on its own: a beat is taken when both registers can
take it (empty, or accepted in this cycle). One beat per cycle when neither consumer stalls;
latency one cycle.

:class:`AddSpec` joins two streams of ``PE`` channels per beat: it takes a beat from each when
both are valid and its output register can take the result, adds them elementwise with integer
scales (``acc = scale_a[c] * a + scale_b[c] * b``, on values: a bipolar bit ``b`` is ``2b - 1``;
a scale the same for every channel is a constant, per-channel ones a small memory, one word per
channel fold) and
applies a threshold set per channel (``out = lo + sum_i [acc >= T[c, i]]``, as
:class:`~lowbit.hw.stream.threshold.ThresholdSpec`), or passes ``acc`` on without thresholds.
Channels cycle through ``C / PE`` folds, pixel after pixel. One beat per cycle; latency one cycle.

The branch FIFO of a residual block is :class:`~lowbit.hw.stream.fifo.FIFOSpec`; its minimum depth
is :mod:`lowbit.mapping.branch_fifo`'s.

This module imports no Amaranth; ``create()`` builds the components of
:mod:`lowbit.hw.dag.branch_unit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.datatypes import BIPOLAR, DataType, Kind
from ...ir.graph import Add, values
from ...ir.resources import Resources
from ...sw_reference import multithreshold

__all__ = ["ForkSpec", "AddSpec", "stream_bits"]


def stream_bits(dtype: DataType) -> int:
    """Bits of one stream element of ``dtype`` (a bipolar value is one bit)."""
    return 1 if dtype.kind is Kind.BIPOLAR else dtype.bits


def _check_positive(name: str, v) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if v < 1:
        raise ValueError(f"{name} must be a positive integer, not {v!r}")


def _check_stream_dtype(name: str, v) -> None:
    if not isinstance(v, DataType) or v.kind not in (Kind.BIPOLAR, Kind.UINT, Kind.INT):
        raise TypeError(f"{name} must be a BIPOLAR, UINT or INT DataType, not {v!r}")


@dataclass(frozen=True)
class ForkSpec:
    """A fork of a stream of ``simd`` elements of ``dtype`` per beat into two (``a`` and ``b``);
    ``beats`` beats make one vector (for :meth:`cycles_per_image`)."""

    dtype: DataType
    simd: int
    beats: int = 1

    ENGINE = "-"
    node = None

    def __post_init__(self):
        _check_stream_dtype("dtype", self.dtype)
        _check_positive("SIMD", self.simd)
        _check_positive("beats", self.beats)

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = out_bits = property(lambda self: stream_bits(self.dtype))
    in_size = out_size = property(lambda self: self.simd * self.beats)

    def cycles(self, beats: int) -> int:
        """One beat per cycle."""
        return beats

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles(self.beats * vectors)

    def resources(self) -> Resources:
        width = self.simd * self.in_bits
        return Resources(lut=width // 3 + 4, ff=2 * width + 2)

    def reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both outputs equal the input."""
        x = np.asarray(x)
        return x, x

    def create(self):
        from .branch_unit import StreamFork

        return StreamFork(self)


@dataclass(frozen=True, eq=False)
class AddSpec:
    """The adder/joiner of two streams of ``pe`` channels per beat (module docstring).

    Parameters
    ----------
    a_dtype, b_dtype : DataType
        Element types of the inputs ``a`` and ``b`` (``BIPOLAR``, ``UINTk`` or ``INTk``).
    channels : int
        Channels ``C`` (``pe`` divides them).
    pe : int
        Channels per beat.
    thresholds : ndarray or None
        ``(C, k)`` sorted integer thresholds on ``acc`` (``k = 1`` or ``2^b - 1``), or ``None``:
        the output is ``acc``.
    scale_a, scale_b : int or ndarray
        Integer multipliers of the two inputs' values: one for all channels, or ``(C,)``.
    output_dtype : DataType or None
        ``INTk`` for signed codes (``lo = -2^(k-1)``); ``None``: ``BIPOLAR`` for one threshold,
        else ``UINTk``; without thresholds always the narrowest type of ``acc``'s range.
    """

    a_dtype: DataType
    b_dtype: DataType
    channels: int
    pe: int
    thresholds: np.ndarray | None = None
    scale_a: int | np.ndarray = 1
    scale_b: int | np.ndarray = 1
    output_dtype: DataType | None = None
    name: str = field(default="add")

    ENGINE = "-"
    node = None

    def __post_init__(self):
        _check_stream_dtype("a_dtype", self.a_dtype)
        _check_stream_dtype("b_dtype", self.b_dtype)
        _check_positive("channels", self.channels)
        _check_positive("PE", self.pe)
        for name in ("scale_a", "scale_b"):
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                if v.shape != (self.channels,) or v.dtype.kind not in "iu":
                    raise ValueError(
                        f"{self.name}: {name} must be an integer or integers of shape "
                        f"(C={self.channels},), not {v.dtype} {v.shape}"
                    )
                object.__setattr__(self, name, v.astype(np.int64))
            elif not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(f"{self.name}: {name} must be an integer, not {v!r}")
        if self.channels % self.pe:
            raise ValueError(
                f"PE ({self.pe}) must divide the channels C ({self.channels}) of {self.name}"
            )
        if self.thresholds is None:
            if self.output_dtype is not None:
                raise ValueError(f"{self.name}: output_dtype needs thresholds")
            return
        t = np.asarray(self.thresholds)
        if t.ndim == 2 and t.shape[0] == 1 and self.channels > 1:
            t = np.repeat(t, self.channels, axis=0)  # one set shared by every channel
        if t.ndim != 2 or t.dtype.kind not in "iu" or t.shape[0] != self.channels:
            raise ValueError(
                f"{self.name}: thresholds must be integers of shape (C={self.channels}, k), "
                f"not {t.dtype} {t.shape}"
            )
        k = t.shape[1]
        if k != 1 and (k + 1) & k:
            raise ValueError(f"{self.name}: a k-bit output needs 2^k - 1 thresholds, not {k}")
        if (np.diff(t, axis=1) < 0).any():
            raise ValueError(f"{self.name}: each row of thresholds must be sorted ascending")
        lo, hi = self.acc_range
        if t.min() < lo or t.max() > hi + 1:
            raise ValueError(
                f"{self.name}: thresholds must lie in the sum's range [{lo}, {hi + 1}], "
                f"found [{t.min()}, {t.max()}]"
            )
        o = self.output_dtype
        if o is not None and (
            not isinstance(o, DataType)
            or (k == 1 and o != BIPOLAR)
            or (k > 1 and (o.kind not in (Kind.UINT, Kind.INT) or (1 << o.bits) - 1 != k))
        ):
            raise ValueError(
                f"{self.name}: output_dtype {o!r} does not match {k} thresholds "
                "(expected UINTk or INTk with 2^k - 1 of them, or BIPOLAR with one)"
            )
        object.__setattr__(self, "thresholds", t.astype(np.int64))

    @classmethod
    def from_node(cls, node: Add, pe: int) -> "AddSpec":
        """The adder/joiner of the graph's :class:`~lowbit.ir.graph.Add` node, ``pe`` channels per
        beat (input ``a`` is the node's first input, ``b`` its second)."""
        if not isinstance(node, Add):
            raise TypeError(f"node must be an Add, not {node!r}")
        a_dt, b_dt = node.input_dtypes
        return cls(
            a_dt,
            b_dt,
            node.channels,
            pe,
            node.thresholds,
            node.wa,
            node.wb,
            node.output_dtype if node.output_dtype.kind is Kind.INT else None,
            name=node.name,
        )

    def scales(self, which: str) -> np.ndarray:
        """The multipliers of input ``which`` (``"a"`` or ``"b"``) per channel, ``(C,)``."""
        v = self.scale_a if which == "a" else self.scale_b
        return np.broadcast_to(np.asarray(v, dtype=np.int64), (self.channels,))

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact range of ``acc = scale_a * a + scale_b * b`` over every channel."""
        lo = np.zeros(self.channels, dtype=np.int64)
        hi = np.zeros(self.channels, dtype=np.int64)
        for s, d in ((self.scales("a"), self.a_dtype), (self.scales("b"), self.b_dtype)):
            ends = np.stack([s * d.min, s * d.max])
            lo, hi = lo + ends.min(axis=0), hi + ends.max(axis=0)
        return int(lo.min()), int(hi.max())

    @property
    def acc_bits(self) -> int:
        """Signed bits of the sum and the thresholds (which reach ``hi + 1``)."""
        lo, hi = self.acc_range
        return DataType.for_range(min(lo, -1), hi + 1).bits

    @property
    def folds(self) -> int:
        return self.channels // self.pe

    @property
    def out_dtype(self) -> DataType:
        if self.thresholds is None:
            return DataType.for_range(*self.acc_range)
        if self.output_dtype is not None:
            return self.output_dtype
        k = self.thresholds.shape[1]
        return BIPOLAR if k == 1 else DataType.uint((k + 1).bit_length() - 1)

    @property
    def out_bias(self) -> int:
        """The output below every threshold (``-2^(k-1)`` for ``INTk`` codes, else 0)."""
        return self.out_dtype.stored_range[0] if self.thresholds is not None else 0

    in_elems = out_elems = property(lambda self: self.pe)
    in_bits = property(lambda self: stream_bits(self.a_dtype))
    out_bits = property(lambda self: stream_bits(self.out_dtype))
    in_size = out_size = property(lambda self: self.channels)

    def cycles(self, pixels: int = 1) -> int:
        """``C / PE`` cycles per pixel: one beat of each input and one output beat per cycle."""
        return pixels * self.folds

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles(vectors)

    def resources(self) -> Resources:
        k = 0 if self.thresholds is None else self.thresholds.shape[1]
        width = self.pe * self.acc_bits
        return Resources(
            lut=width + self.pe * k * self.acc_bits // 2 + (k * width * self.folds) // 64 + 10,
            ff=self.pe * stream_bits(self.out_dtype) + 10,
        )

    def accumulate(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``scale_a * a + scale_b * b`` on values, elementwise (``(..., C)`` stored values)."""
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.shape[-1] != self.channels:
            raise ValueError(
                f"{self.name}: the inputs must have the same shape (..., C={self.channels}), "
                f"not {a.shape} and {b.shape}"
            )
        return self.scales("a") * values(a, self.a_dtype) + self.scales("b") * values(
            b, self.b_dtype
        )

    def reference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The output codes (or sums) of inputs ``a`` and ``b`` ``(..., C)``."""
        acc = self.accumulate(a, b)
        if self.thresholds is None:
            return acc
        return multithreshold(acc, self.thresholds, self.out_bias)

    def create(self):
        from .branch_unit import AddThresholdUnit

        return AddThresholdUnit(self)
