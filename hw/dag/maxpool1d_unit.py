"""The streaming 1-D max-pool's component (spec: :class:`~lowbit.hw.dag.maxpool1d.MaxPool1DSpec`).

The 2-D pool's structure (:class:`lowbit.hw.stream.pool.StreamingMaxPool`) with one position in
place of an image row: counters for the channel fold, the position in its stride (``kx``), the
window (``ox``) and the position in the sequence; the window's partial maxima in a ``C / SIMD``-word
memory, read (asynchronously) and written every beat; the output register takes the merged word
on the window's last position.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import Kind
from .._util import wrap_counter
from ..mvtu.unit import element_shape
from .maxpool1d import MaxPool1DSpec

__all__ = ["StreamingMaxPool1D"]


class StreamingMaxPool1D(wiring.Component):
    """The pool of ``spec``: ports ``i`` and ``o``, ``SIMD`` elements per beat each."""

    def __init__(self, spec: MaxPool1DSpec):
        if not isinstance(spec, MaxPool1DSpec):
            raise TypeError(f"spec must be a MaxPool1DSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        layout = data.ArrayLayout(self.elem_shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        L, K, S, OL, CF = s.length, s.node.kernel, s.stride, s.out_length, s.channel_folds
        m.submodules.part = part = memory.Memory(
            shape=data.ArrayLayout(self.elem_shape, s.simd), depth=CF, init=[]
        )
        wr = part.write_port()
        rd = part.read_port(domain="comb")

        cf = Signal(range(CF), name="cf")
        kx = Signal(range(S), name="kx")
        ox = Signal(range(OL + 1), name="ox")
        x = Signal(range(L), name="x")
        out_valid = Signal()
        in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
        ]
        inside = (ox < OL) & (kx < K)
        first = kx == 0
        last = kx == K - 1
        m.d.comb += rd.addr.eq(cf)
        merged = Signal.like(self.i.payload)
        for j in range(s.simd):
            a, b = rd.data[j], self.i.payload[j]
            if s.dtype.kind is Kind.BIPOLAR:
                m.d.comb += merged[j].eq(Mux(first, b, a | b))
            else:
                m.d.comb += merged[j].eq(Mux(first | (b > a), b, a))
        m.d.comb += [wr.addr.eq(rd.addr), wr.data.eq(merged), wr.en.eq(in_fire & inside & ~last)]
        with m.If(in_fire & inside & last):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(merged)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)

        # position: cf -> x (kx, ox)
        cf_wrap = wrap_counter(m, cf, CF, in_fire)
        x_en = in_fire & cf_wrap
        x_wrap = wrap_counter(m, x, L, x_en)
        with m.If(x_en):
            with m.If(x_wrap):
                m.d.sync += [kx.eq(0), ox.eq(0)]
            with m.Elif(kx == S - 1):
                m.d.sync += [kx.eq(0), ox.eq(Mux(ox == OL, OL, ox + 1))]
            with m.Else():
                m.d.sync += kx.eq(kx + 1)
        return m
