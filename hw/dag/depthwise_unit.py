"""The depthwise engine's component (spec: :class:`~lowbit.hw.dag.depthwise.DepthwiseSpec`).

Two pipeline stages:

* **stage 0** (input) — a beat of ``PE`` channels at one tap is taken when the pipeline is not
  stalled; its index ``j = t * CF + f`` in the window addresses the weight memory (one word per
  beat, registered read) and ``f`` the threshold memory;
* **stage 1** (accumulate) — lane ``p`` adds ``x[p] * w[p]`` (the MVTU's lane of its MAC kind,
  :func:`lowbit.hw.mvtu.mac.lane_dot`, one element) to channel ``f * PE + p``'s accumulator, held in
  a memory of ``CF = C / PE`` words read asynchronously and written back in the same cycle (the
  next beat reads the value written, so no forwarding is needed); at the last tap the new sums go
  through the thresholds into the output register, one beat per channel fold.

The whole pipeline stalls while the output register is full and not accepted; with ``valid`` and
``ready`` high it takes one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.mac import MacKind
from .._util import pack_words, tree_sum
from ..mvtu.mac import lane_dot
from ..mvtu.unit import element_shape
from .depthwise import DepthwiseSpec

__all__ = ["DepthwiseUnit"]


class DepthwiseUnit(wiring.Component):
    """The depthwise engine of ``spec``: ports ``i`` and ``o``, ``PE`` elements per beat."""

    def __init__(self, spec: DepthwiseSpec):
        if not isinstance(spec, DepthwiseSpec):
            raise TypeError(f"spec must be a DepthwiseSpec, not {spec!r}")
        self.spec = spec
        node = spec.node
        self.in_shape = element_shape(node.input_dtype)
        self.out_shape = element_shape(node.output_dtype)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self.in_shape, spec.pe))),
                "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, spec.pe))),
            }
        )

    def threshold_image(self) -> list[int]:
        """Word ``f``: lane ``p`` holds the thresholds of channel ``f * PE + p``."""
        s, t = self.spec, self.spec.rows.thresholds
        if t is None:
            raise ValueError(f"node {s.node.name!r} has no thresholds")
        bits = s.rows.acc_bits
        return [
            pack_words([v for p in range(s.pe) for v in t[f * s.pe + p]], bits)
            for f in range(s.channel_folds)
        ]

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        node, lanes = s.rows, s.lanes
        PE, CF, T = s.pe, s.channel_folds, s.taps
        acc_bits = node.acc_bits
        acc_shape = signed(acc_bits) if node.acc_range[0] < 0 else unsigned(acc_bits)
        n_thr = 0 if node.thresholds is None else node.thresholds.shape[1]
        wb = lanes.weight_bits

        m.submodules.wmem = wmem = memory.Memory(
            shape=unsigned(PE * wb), depth=T * CF, init=s.weight_image()
        )
        wmem_r = wmem.read_port()
        if n_thr:
            m.submodules.tmem = tmem = memory.Memory(
                shape=unsigned(PE * n_thr * acc_bits), depth=CF, init=self.threshold_image()
            )
            tmem_r = tmem.read_port()
        m.submodules.amem = amem = memory.Memory(
            shape=data.ArrayLayout(acc_shape, PE), depth=CF, init=[]
        )
        amem_r = amem.read_port(domain="comb")
        amem_w = amem.write_port()

        out_valid, stall, fire = Signal(), Signal(), Signal()
        m.d.comb += [
            stall.eq(out_valid & ~self.o.ready),
            self.i.ready.eq(~stall),
            fire.eq(self.i.valid & ~stall),
            self.o.valid.eq(out_valid),
        ]

        # stage 0: the beat's place in the window
        j = Signal(range(T * CF))
        f = Signal(range(CF))
        m.d.comb += [
            wmem_r.addr.eq(j),
            wmem_r.en.eq(~stall),
        ]
        if n_thr:
            m.d.comb += [tmem_r.addr.eq(f), tmem_r.en.eq(~stall)]
        with m.If(fire):
            m.d.sync += [
                j.eq(Mux(j == T * CF - 1, 0, j + 1)),
                f.eq(Mux(f == CF - 1, 0, f + 1)),
            ]

        # stage 1: accumulate
        v1, first1, last1 = Signal(), Signal(), Signal()
        f1 = Signal(range(CF))
        x1 = Signal.like(self.i.payload)
        with m.If(~stall):
            m.d.sync += [
                v1.eq(fire),
                first1.eq(j < CF),
                last1.eq(j >= (T - 1) * CF),
                f1.eq(f),
                x1.eq(self.i.payload),
            ]
        m.d.comb += [
            amem_r.addr.eq(f1),
            amem_w.addr.eq(f1),
            amem_w.en.eq(v1 & ~stall),
        ]
        out_payload = Signal.like(self.o.payload)
        for p in range(PE):
            contrib = lane_dot(
                m, lanes, [x1[p]], wmem_r.data[p * wb : (p + 1) * wb], name=f"lane{p}", shared={}
            )
            acc_new = Signal(acc_shape, name=f"acc_new{p}")
            m.d.comb += [
                acc_new.eq(Mux(first1, 0, amem_r.data[p]) + contrib),
                amem_w.data[p].eq(acc_new),
            ]
            if n_thr:
                base = p * n_thr * acc_bits
                thr = [
                    tmem_r.data[base + k * acc_bits : base + (k + 1) * acc_bits]
                    for k in range(n_thr)
                ]
                if acc_shape.signed:
                    thr = [t.as_signed() for t in thr]
                value = tree_sum([acc_new >= t for t in thr])
            elif s.kind is MacKind.XNOR:
                value = 2 * acc_new - T
            else:
                value = acc_new
            m.d.comb += out_payload[p].eq(value)

        with m.If(v1 & last1 & ~stall):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(out_payload)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        return m
