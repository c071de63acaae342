"""The streaming 1-D max-pool: the maxima of a streamed sequence's windows (OR on bits, max on
unsigned values), for ``MaxPool1D`` nodes after a 1-D convolution's thresholds.

Input: a sequence ``(L, C)`` in order, channels last, ``SIMD`` channels of one position per beat
(``C / SIMD`` beats per position; the output of an MVTU with ``PE = SIMD``). Windows of ``K``
positions with stride ``S >= K`` (no padding; positions between windows and past the last window
are dropped). The 2-D pool's structure (:class:`lowbit.hw.stream.pool.StreamingMaxPool`) with one
position in place of an image row: a memory of ``C / SIMD`` words holds the window's partial maxima,
read and written every beat (asynchronous read); an output beat leaves on the window's last
position, so the output is the sequence ``(OL, C)`` in order, ``SIMD`` channels per beat.

Cycles per sequence: ``L * C / SIMD`` (one input beat per cycle). This module imports no Amaranth;
:meth:`MaxPool1DSpec.create` builds :class:`~lowbit.hw.dag.maxpool1d_unit.StreamingMaxPool1D`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ir.datatypes import DataType, Kind
from ...ir.graph import MaxPool1D
from ...ir.resources import Resources
from ..cost import ram_resources

__all__ = ["MaxPool1DSpec"]


@dataclass(frozen=True, eq=False)
class MaxPool1DSpec:
    """A streaming 1-D max-pool for ``node`` (stride at least the kernel) on sequences of
    ``in_shape`` ``(L, C)`` of ``dtype`` (``BIPOLAR`` or ``UINT``); ``simd`` channels per beat in
    and out (``simd`` divides ``C``)."""

    node: MaxPool1D
    in_shape: tuple[int, int]
    dtype: DataType
    simd: int

    ENGINE = "-"

    def __post_init__(self):
        if not isinstance(self.node, MaxPool1D):
            raise TypeError(f"node must be a MaxPool1D, not {self.node!r}")
        if not isinstance(self.dtype, DataType):
            raise TypeError(f"dtype must be a DataType, not {self.dtype!r}")
        shape = tuple(self.in_shape)
        if len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in shape):
            raise ValueError(
                f"node {self.node.name!r}: in_shape must be (L, C) positive, not {shape!r}"
            )
        object.__setattr__(self, "in_shape", tuple(int(v) for v in shape))
        if not isinstance(self.simd, int) or isinstance(self.simd, bool):
            raise TypeError(f"SIMD must be an integer, not {self.simd!r}")
        if self.simd < 1 or self.channels % self.simd:
            raise ValueError(
                f"SIMD ({self.simd}) must divide the channels C ({self.channels}) "
                f"of node {self.node.name!r}"
            )
        if self.stride < self.node.kernel:
            raise ValueError(
                f"node {self.node.name!r}: the streaming 1-D max-pool needs a stride "
                f"({self.stride}) of at least the kernel ({self.node.kernel})"
            )
        self.node.infer(self.in_shape, self.dtype)  # raises with the node's name if it does not fit

    @property
    def stride(self) -> int:
        assert self.node.stride is not None  # MaxPool1D sets it
        return self.node.stride

    @property
    def length(self) -> int:
        return self.in_shape[0]

    @property
    def channels(self) -> int:
        return self.in_shape[1]

    @property
    def channel_folds(self) -> int:
        return self.channels // self.simd

    @property
    def out_length(self) -> int:
        return (self.length - self.node.kernel) // self.stride + 1

    @property
    def elem_bits(self) -> int:
        return 1 if self.dtype.kind is Kind.BIPOLAR else self.dtype.bits

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = out_bits = property(lambda self: self.elem_bits)
    in_size = property(lambda self: self.length * self.channels)

    @property
    def out_size(self) -> int:
        """Elements of one pooled sequence: ``OL * C``."""
        return self.out_length * self.channels

    def cycles(self) -> int:
        """Cycles per sequence: one input beat per cycle, ``L * C / SIMD``."""
        return self.length * self.channel_folds

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        return self.cycles()

    def resources(self) -> Resources:
        """Estimate: the partial maxima as a RAM, the comparators and the counters (the 2-D
        pool's terms)."""
        width = self.simd * self.elem_bits
        return ram_resources(self.channel_folds, width) + Resources(
            lut=2 * width + 40, ff=width + 40
        )

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Pooled ``x`` ``(B, L, C)``: ``(B, OL, C)``."""
        return self.node.reference(x)

    def create(self):
        from .maxpool1d_unit import StreamingMaxPool1D

        return StreamingMaxPool1D(self)
