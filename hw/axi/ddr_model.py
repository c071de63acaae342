"""A stand-in for a DMA that streams a layer's weights from DDR, for simulation.

:class:`WeightStreamer` plays the words of a weight image in order, over and over (a
weight-streaming MVTU reads the whole image once per vector), at most ``bits_per_cycle`` bits per
cycle on average: a credit counter gains ``bits_per_cycle`` each cycle and a word of ``width`` bits
goes out when the credit covers it. That is the rate of an AXI-HP port of that width (or of its
share of the DDR bandwidth) behind a width converter; the mapper's memory model
(:mod:`lowbit.mapping.memory`) predicts the same rate, so an RTL run checks it. Not for synthesis
into a deployed design: there the weights come from DDR through a
:class:`~lowbit.hw.axi.wfetch.WeightFetcher` on the accelerator's ``ws<k>`` port (added by
``lowbit build``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import Out

__all__ = ["WeightStreamer", "DEFAULT_BITS_PER_CYCLE"]

DEFAULT_BITS_PER_CYCLE = 64
"""Rate of the modelled stream when a simulation is given none (one 64-bit AXI-HP port)."""


class WeightStreamer(wiring.Component):
    """Port ``o``: the words of ``image`` (each ``width`` bits), cyclically, ``bits_per_cycle`` bits
    per cycle on average."""

    def __init__(self, image: list[int], width: int, bits_per_cycle: int):
        if not image:
            raise ValueError("image must hold at least one word")
        for name, v in (("width", width), ("bits_per_cycle", bits_per_cycle)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.image, self.width, self.bits_per_cycle = list(image), width, bits_per_cycle
        super().__init__({"o": Out(stream.Signature(unsigned(width)))})

    def elaborate(self, platform):
        m = Module()
        n, w, r = len(self.image), self.width, self.bits_per_cycle
        m.submodules.rom = rom = memory.Memory(shape=unsigned(w), depth=n, init=self.image)
        rd = rom.read_port(domain="comb")
        idx = Signal(range(n))
        fire = Signal()
        m.d.comb += [
            rd.addr.eq(idx),
            self.o.payload.eq(rd.data),
            fire.eq(self.o.valid & self.o.ready),
        ]
        with m.If(fire):
            m.d.sync += idx.eq(Mux(idx == n - 1, 0, idx + 1))
        if r >= w:
            m.d.comb += self.o.valid.eq(1)
            return m
        cap = w + r  # an idle stream banks at most one word's worth
        credit = Signal(range(cap + r + 1))
        m.d.comb += self.o.valid.eq(credit >= w)
        nxt = Signal(range(cap + r + 1))
        m.d.comb += nxt.eq(credit + r - Mux(fire, w, 0))
        m.d.sync += credit.eq(Mux(nxt > cap, cap, nxt))
        return m
