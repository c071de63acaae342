"""Stream FIFO: ``lib.stream`` in and out around Amaranth's ``SyncFIFOBuffered``.

Decouples two units of the pipeline (absorbs bursts, breaks the ``ready`` path). One beat per
cycle in and out; the latency through an empty FIFO is one cycle (the buffered read register).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import DataType
from ...ir.resources import Resources
from ..cost import ram_resources
from ..mvtu.unit import element_shape

__all__ = ["FIFOSpec", "StreamFIFO"]


@dataclass(frozen=True)
class FIFOSpec:
    """A FIFO of ``depth`` beats of ``simd`` elements of ``dtype``; ``beats`` beats make one vector
    (for :meth:`cycles_per_image`)."""

    dtype: DataType
    simd: int
    depth: int
    beats: int = 1

    node = None

    def __post_init__(self):
        if not isinstance(self.dtype, DataType):
            raise TypeError(f"dtype must be a DataType, not {self.dtype!r}")
        for name, v in (("SIMD", self.simd), ("depth", self.depth)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{name} must be an integer, not {v!r}")
            if v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")

    @property
    def elem_bits(self) -> int:
        return element_shape(self.dtype).width

    def cycles(self, beats: int) -> int:
        """Cycles to pass ``beats`` beats in steady state: one per beat."""
        return beats

    in_elems = out_elems = property(lambda self: self.simd)
    in_bits = out_bits = property(lambda self: self.elem_bits)
    in_size = out_size = property(lambda self: self.simd * self.beats)

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """One cycle per beat: ``beats`` per vector."""
        return self.cycles(self.beats * vectors)

    def resources(self) -> Resources:
        width = self.simd * self.elem_bits
        return ram_resources(self.depth, width) + Resources(
            lut=2 * self.depth.bit_length() + 10, ff=width + 2 * self.depth.bit_length() + 4
        )

    def reference(self, x: np.ndarray) -> np.ndarray:
        """A FIFO passes its input through unchanged."""
        return np.asarray(x)

    def create(self) -> "StreamFIFO":
        return StreamFIFO(self)


class StreamFIFO(wiring.Component):
    def __init__(self, spec: FIFOSpec):
        if not isinstance(spec, FIFOSpec):
            raise TypeError(f"spec must be a FIFOSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        layout = data.ArrayLayout(self.elem_shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        width = self.i.payload.shape().size
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=width, depth=self.spec.depth)
        m.d.comb += [
            q.w_data.eq(self.i.payload.as_value()),
            q.w_en.eq(self.i.valid),
            self.i.ready.eq(q.w_rdy),
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy),
            q.r_en.eq(self.o.ready),
        ]
        return m
