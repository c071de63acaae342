"""Matrix-vector-threshold unit (MVTU): FINN's MVAU, written in Amaranth 0.5.

Structure (one spec, :class:`~lowbit.hw.spec.MVTUSpec`):

* **input side** — a ping-pong input buffer of two banks of ``SF = MW / SIMD`` words. Beats of
  ``SIMD`` elements are written into the free bank; a full bank is handed to the compute side, so
  the next vector streams in while the current one is reused for all ``NF = MH / PE`` neuron folds.
* **compute side** — for each of ``NF * SF`` steps, ``PE`` lanes multiply ``SIMD`` inputs by their
  weights (XNOR-popcount for bipolar inputs, add/subtract for integer inputs) and accumulate. A
  weight memory of ``NF * SF`` words of ``PE * SIMD`` bits and a threshold memory of ``NF`` words
  are initialised at elaboration.
* **output** — after the last synapse fold, each lane's accumulator goes through its
  MultiThreshold (or, without thresholds, becomes the integer score) into the output register:
  one beat of ``PE`` elements per neuron fold, neuron ``nf * PE + p`` in lane ``p``.

Steady state: one vector per ``NF * SF`` cycles. The compute pipeline (issue -> accumulate ->
output register) stalls as a whole only while the output register is full and not accepted.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..quant.datatypes import Kind
from ._util import pack_words, tree_sum
from .spec import MVTUSpec

__all__ = ["MatrixVectorThresholdUnit", "element_shape"]


def element_shape(dtype):
    """Amaranth shape of one stream element of a graph data type (bipolar values are bits)."""
    if dtype.kind is Kind.BIPOLAR:
        return unsigned(1)
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


class MatrixVectorThresholdUnit(wiring.Component):
    """The MVTU of ``spec``; ports ``i`` (``SIMD`` elements per beat) and ``o`` (``PE`` per beat)."""

    def __init__(self, spec: MVTUSpec):
        if not isinstance(spec, MVTUSpec):
            raise TypeError(f"spec must be an MVTUSpec, not {spec!r}")
        self.spec = spec
        node = spec.node
        self.in_shape = element_shape(node.input_dtype)
        self.out_shape = element_shape(node.output_dtype)
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(self.in_shape, spec.simd))),
            "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, spec.pe))),
        })

    # -- memory images -------------------------------------------------------------------------

    def weight_image(self) -> list[int]:
        """Word ``nf * SF + sf`` holds, for lane ``p``, bits of row ``nf*PE+p``, columns ``sf*SIMD..``."""
        s, w = self.spec, self.spec.node.weights
        words = []
        for nf in range(s.neuron_folds):
            for sf in range(s.synapse_folds):
                lanes = [w[nf * s.pe + p, sf * s.simd:(sf + 1) * s.simd] for p in range(s.pe)]
                words.append(pack_words([b for lane in lanes for b in lane], 1))
        return words

    def threshold_image(self) -> list[int]:
        """Word ``nf`` holds, for lane ``p``, the thresholds of row ``nf*PE+p`` (``acc_bits`` each)."""
        s, t = self.spec, self.spec.node.thresholds
        return [pack_words([v for p in range(s.pe) for v in t[nf * s.pe + p]], s.acc_bits)
                for nf in range(s.neuron_folds)]

    # -- elaboration ---------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        node = s.node
        NF, SF, PE, SIMD = s.neuron_folds, s.synapse_folds, s.pe, s.simd
        in_bits = self.in_shape.width
        acc_shape = signed(s.acc_bits) if node.acc_range[0] < 0 else unsigned(s.acc_bits)
        n_thr = 0 if node.thresholds is None else node.thresholds.shape[1]

        # Input side: ping-pong buffer, bank b at addresses [b*SF, (b+1)*SF).
        m.submodules.ibuf = ibuf = memory.Memory(shape=unsigned(SIMD * in_bits), depth=2 * SF, init=[])
        ibuf_w = ibuf.write_port()
        ibuf_r = ibuf.read_port()
        full = [Signal(name=f"full{b}") for b in range(2)]
        wbank = Signal()
        wsf = Signal(range(SF))
        in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(~Mux(wbank, full[1], full[0])),
            in_fire.eq(self.i.valid & self.i.ready),
            ibuf_w.addr.eq(Mux(wbank, wsf + SF, wsf)),
            ibuf_w.data.eq(self.i.payload.as_value()),
            ibuf_w.en.eq(in_fire),
        ]
        set_full = [Signal(name=f"set_full{b}") for b in range(2)]
        clr_full = [Signal(name=f"clr_full{b}") for b in range(2)]
        with m.If(in_fire):
            with m.If(wsf == SF - 1):
                m.d.sync += [wsf.eq(0), wbank.eq(~wbank)]
                m.d.comb += set_full[0].eq(~wbank)
                m.d.comb += set_full[1].eq(wbank)
            with m.Else():
                m.d.sync += wsf.eq(wsf + 1)
        for b in range(2):
            with m.If(set_full[b]):
                m.d.sync += full[b].eq(1)
            with m.Elif(clr_full[b]):
                m.d.sync += full[b].eq(0)

        # Compute side, stage 0: issue.
        m.submodules.wmem = wmem = memory.Memory(shape=unsigned(PE * SIMD), depth=NF * SF,
                                                 init=self.weight_image())
        wmem_r = wmem.read_port()
        if n_thr:
            m.submodules.tmem = tmem = memory.Memory(shape=unsigned(PE * n_thr * s.acc_bits), depth=NF,
                                                     init=self.threshold_image())
            tmem_r = tmem.read_port()

        out_valid = Signal()
        stall = Signal()
        m.d.comb += stall.eq(out_valid & ~self.o.ready)

        rbank = Signal()
        nf = Signal(range(NF))
        sf = Signal(range(SF))
        widx = Signal(range(NF * SF))
        issue = Signal()
        m.d.comb += [
            issue.eq(Mux(rbank, full[1], full[0]) & ~stall),
            ibuf_r.addr.eq(Mux(rbank, sf + SF, sf)),
            ibuf_r.en.eq(~stall),
            wmem_r.addr.eq(widx),
            wmem_r.en.eq(~stall),
        ]
        if n_thr:
            m.d.comb += [tmem_r.addr.eq(nf), tmem_r.en.eq(~stall)]
        with m.If(issue):
            with m.If(sf == SF - 1):
                m.d.sync += sf.eq(0)
                with m.If(nf == NF - 1):
                    m.d.sync += [nf.eq(0), widx.eq(0), rbank.eq(~rbank)]
                    m.d.comb += clr_full[0].eq(~rbank)
                    m.d.comb += clr_full[1].eq(rbank)
                with m.Else():
                    m.d.sync += [nf.eq(nf + 1), widx.eq(widx + 1)]
            with m.Else():
                m.d.sync += [sf.eq(sf + 1), widx.eq(widx + 1)]

        # Stage 1: accumulate (memory read data are valid now).
        v1, first1, last1 = Signal(), Signal(), Signal()
        with m.If(~stall):
            m.d.sync += [v1.eq(issue), first1.eq(sf == 0), last1.eq(sf == SF - 1)]

        x = data.ArrayLayout(self.in_shape, SIMD)(ibuf_r.data)
        out_payload = Signal(self.o.payload.shape())
        for p in range(PE):
            wbits = wmem_r.data[p * SIMD:(p + 1) * SIMD]
            if node.binary_input:
                contrib = tree_sum([~(x[i] ^ wbits[i]) for i in range(SIMD)])
            else:
                contrib = tree_sum([Mux(wbits[i], x[i], -x[i]) for i in range(SIMD)])
            acc = Signal(acc_shape, name=f"acc{p}")
            acc_new = Signal(acc_shape, name=f"acc_new{p}")
            m.d.comb += acc_new.eq(Mux(first1, 0, acc) + contrib)
            with m.If(v1 & ~stall):
                m.d.sync += acc.eq(acc_new)
            if n_thr:
                thr_shape = signed(s.acc_bits) if node.acc_range[0] < 0 else unsigned(s.acc_bits)
                base = p * n_thr * s.acc_bits
                thr = [tmem_r.data[base + k * s.acc_bits:base + (k + 1) * s.acc_bits].as_signed()
                       if thr_shape.signed else tmem_r.data[base + k * s.acc_bits:base + (k + 1) * s.acc_bits]
                       for k in range(n_thr)]
                value = tree_sum([acc_new >= t for t in thr])
            elif node.binary_input:
                value = 2 * acc_new - node.mw
            else:
                value = acc_new
            m.d.comb += out_payload[p].eq(value)

        with m.If(v1 & last1 & ~stall):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(out_payload)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += self.o.valid.eq(out_valid)
        return m
