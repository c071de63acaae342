"""Stream width converter: ``N_IN`` elements per beat in, ``N_OUT`` elements per beat out.

Placed between layers whose ``PE`` (producer) and ``SIMD`` (consumer) differ. A buffer of
``CAP = N_IN + N_OUT + min(N_IN, N_OUT) - gcd(N_IN, N_OUT)`` elements holds ``count`` valid
elements at its low end; an output beat takes the lowest ``N_OUT``, an input beat is appended at
``count``. It sustains the full rate of the slower side: one input beat per cycle when
``N_IN <= N_OUT`` and one output beat per cycle otherwise. ``ready`` depends only on ``count``, so
no combinational path runs from ``o.ready`` to ``i.ready``; that is why the buffer needs the
``min(N_IN, N_OUT) - gcd(N_IN, N_OUT)`` extra elements (zero when one width divides the other):
with only ``N_IN + N_OUT``, a 2 -> 3 converter accepts 3 input beats in 4 cycles and a 3 -> 2
converter emits 3 output beats in 4 cycles. ``CAP`` is the smallest size that sustains full rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.resources import Resources
from ..cost import converter_capacity, dwc_resources

__all__ = ["WidthConverterSpec", "StreamWidthConverter"]


@dataclass(frozen=True)
class WidthConverterSpec:
    """A width converter between a unit emitting ``n_in`` elements of ``elem_bits`` bits per beat
    (two's complement when ``signed``) and one taking ``n_out``; ``size`` elements make one vector.
    The stitched accelerator puts one wherever consecutive units' beats differ
    (:meth:`between`)."""

    elem_bits: int
    n_in: int
    n_out: int
    signed: bool = False
    size: int = 1

    node = None
    in_elems = property(lambda self: self.n_in)
    out_elems = property(lambda self: self.n_out)
    in_bits = out_bits = property(lambda self: self.elem_bits)
    in_size = out_size = property(lambda self: self.size)

    @classmethod
    def between(cls, a, b) -> "WidthConverterSpec | None":
        """The converter between unit specs ``a`` and ``b``, or ``None`` when their beats agree."""
        if a.out_elems == b.in_elems:
            return None
        return cls(a.out_bits, a.out_elems, b.in_elems, size=a.out_size)

    def cycles_per_image(self, vectors: int = 1, ddr_bits: int | None = None) -> int:
        """Full rate on the slower side: ``ceil(size / min(n_in, n_out))`` cycles per vector."""
        return vectors * math.ceil(self.size / min(self.n_in, self.n_out))

    def resources(self) -> Resources:
        return dwc_resources(self.elem_bits, self.n_in, self.n_out)

    def reference(self, x) -> np.ndarray:
        """A converter passes the elements through in order."""
        return np.asarray(x)

    def create(self) -> "StreamWidthConverter":
        shape = signed(self.elem_bits) if self.signed else unsigned(self.elem_bits)
        return StreamWidthConverter(shape, n_in=self.n_in, n_out=self.n_out)


class StreamWidthConverter(wiring.Component):
    """Convert a stream of ``n_in`` elements of ``shape`` per beat into ``n_out`` per beat."""

    def __init__(self, shape, *, n_in: int, n_out: int):
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.shape, self.n_in, self.n_out = shape, n_in, n_out
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(shape, n_in))),
                "o": Out(stream.Signature(data.ArrayLayout(shape, n_out))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        ew = data.ArrayLayout(self.shape, 1).size
        # The smallest buffer that sustains full rate with `ready` a function of `count` alone.
        cap = converter_capacity(self.n_in, self.n_out)
        buf = Signal(unsigned(cap * ew))
        count = Signal(range(cap + 1))
        in_fire = Signal()
        out_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(count + self.n_in <= cap),
            self.o.valid.eq(count >= self.n_out),
            self.o.payload.eq(buf[: self.n_out * ew]),
            in_fire.eq(self.i.valid & self.i.ready),
            out_fire.eq(self.o.valid & self.o.ready),
        ]
        kept = Mux(out_fire, buf >> (self.n_out * ew), buf)
        pos = Signal(range(cap + 1))
        m.d.comb += pos.eq(Mux(out_fire, count - self.n_out, count))
        appended = kept | (self.i.payload.as_value() << (pos * ew))
        with m.If(in_fire):
            m.d.sync += [buf.eq(appended), count.eq(pos + self.n_in)]
        with m.Elif(out_fire):
            m.d.sync += [buf.eq(kept), count.eq(pos)]
        return m
