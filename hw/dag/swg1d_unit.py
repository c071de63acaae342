"""The 1-D sliding-window generator's component (spec: :class:`~lowbit.hw.dag.swg1d.SWG1DSpec`).

The 2-D generator's structure (:class:`lowbit.hw.stream.swg.SlidingWindowGenerator`) with one
position in place of an image row: writer, reader with its release of positions, and the read
pipeline (issue -> memory read -> output register).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import Kind
from .._util import pack_words
from .swg1d import SWG1DSpec

__all__ = ["SlidingWindow1DGenerator"]


class SlidingWindow1DGenerator(wiring.Component):
    """The generator of ``spec``: ports ``i`` and ``o``, ``SIMD`` elements per beat each."""

    def __init__(self, spec: SWG1DSpec):
        if not isinstance(spec, SWG1DSpec):
            raise TypeError(f"spec must be an SWG1DSpec, not {spec!r}")
        self.spec = spec
        d = spec.dtype
        shape = (
            unsigned(1)
            if d.kind is Kind.BIPOLAR
            else (signed(d.bits) if d.signed else unsigned(d.bits))
        )
        layout = data.ArrayLayout(shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        L, K, S, P = s.length, s.node.kernel, s.node.stride, s.node.pad
        OL, CF, R = s.out_length, s.channel_folds, s.positions
        word = s.simd * s.elem_bits

        m.submodules.ring = buf = memory.Memory(shape=unsigned(word), depth=R * CF, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        # -- writer: positions into the ring, a linear address ----------------------------------
        filled = Signal(range(R + 1))  # complete positions held and not yet released
        waddr = Signal(range(R * CF))
        wcf = Signal(range(CF))
        in_fire, pos_done = Signal(), Signal()
        m.d.comb += [
            self.i.ready.eq(filled < R),
            in_fire.eq(self.i.valid & self.i.ready),
            wr.addr.eq(waddr),
            wr.data.eq(self.i.payload.as_value()),
            wr.en.eq(in_fire),
            pos_done.eq(in_fire & (wcf == CF - 1)),
        ]
        with m.If(in_fire):
            m.d.sync += [
                waddr.eq(Mux(waddr == R * CF - 1, 0, waddr + 1)),
                wcf.eq(Mux(wcf == CF - 1, 0, wcf + 1)),
            ]

        # -- reader: output positions, each window in (k, c) order ------------------------------
        coord = signed(max(L, K * S + K).bit_length() + 2)
        cf = Signal(range(CF))
        k = Signal(range(K))
        o = Signal(range(OL))
        i0 = Signal(coord, init=-P)  # o * S - P
        base_slot = Signal(range(R))  # ring slot of sequence position `rbase`
        rbase = Signal(coord)
        last = Signal()
        need_hi = Signal(coord)
        avail = Signal()
        m.d.comb += [
            rbase.eq(Mux(i0 < 0, 0, i0)),
            last.eq(o == OL - 1),
            need_hi.eq(Mux(last | (i0 + max(K, S) > L), L, i0 + max(K, S))),
            avail.eq(filled >= need_hi - rbase),
        ]
        out_valid, stall, issue = Signal(), Signal(), Signal()
        m.d.comb += [stall.eq(out_valid & ~self.o.ready), issue.eq(avail & ~stall)]

        pos = Signal(coord)
        is_pad = Signal()
        off = Signal(coord)
        slot = Signal(range(2 * R))
        m.d.comb += [
            pos.eq(i0 + k),
            is_pad.eq((pos < 0) | (pos >= L)),
            off.eq(pos - rbase),
            slot.eq(base_slot + off[: slot.shape().width]),
        ]
        wrapped = Mux(slot >= R, slot - R, slot)
        m.d.comb += [rd.addr.eq(wrapped * CF + cf), rd.en.eq(~stall)]

        release = Signal()
        next_rbase = Signal(coord)
        n_rel = Signal(range(R + 1))
        m.d.comb += [
            next_rbase.eq(Mux(last, L, Mux(i0 + S < 0, 0, i0 + S))),
            n_rel.eq(Mux(release, next_rbase - rbase, 0)),
        ]
        m.d.sync += filled.eq(filled + pos_done - n_rel)

        with m.If(issue):
            with m.If(cf == CF - 1):
                m.d.sync += cf.eq(0)
                with m.If(k == K - 1):
                    m.d.sync += k.eq(0)
                    m.d.comb += release.eq(1)
                    moved = Signal(range(2 * R))
                    m.d.comb += moved.eq(base_slot + (next_rbase - rbase)[: moved.shape().width])
                    m.d.sync += base_slot.eq(Mux(moved >= R, moved - R, moved))
                    with m.If(last):
                        m.d.sync += [o.eq(0), i0.eq(-P)]
                    with m.Else():
                        m.d.sync += [o.eq(o + 1), i0.eq(i0 + S)]
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.Else():
                m.d.sync += cf.eq(cf + 1)

        # -- stage 1 (memory data valid) and the output register -------------------------------
        v1, pad1 = Signal(), Signal()
        pad_word = Const(pack_words([s.node.pad_value] * s.simd, s.elem_bits), unsigned(word))
        with m.If(~stall):
            m.d.sync += [
                v1.eq(issue),
                pad1.eq(is_pad),
                out_valid.eq(v1),
                self.o.payload.eq(Mux(pad1, pad_word, rd.data)),
            ]
        m.d.comb += self.o.valid.eq(out_valid)
        return m
