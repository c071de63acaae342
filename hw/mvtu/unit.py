"""Matrix-vector-threshold unit (MVTU): FINN's MVAU, written in Amaranth 0.5.

Structure (one spec, :class:`~lowbit.hw.mvtu.spec.MVTUSpec`):

* **input side** — a ping-pong input buffer of two banks of ``SF = MW / SIMD`` words. Beats of
  ``SIMD`` elements are written into the free bank; a full bank is handed to the compute side, so
  the next vector streams in while the current one is reused for all ``NF = MH / PE`` neuron folds.
* **compute side** — for each of ``NF * SF`` steps (times ``P`` bit-plane pairs in serial mode),
  ``PE`` lanes (:mod:`lowbit.hw.mvtu.mac`: XNOR-popcount, add/subtract, ternary, shift-add,
  multi-bit, or one bit-plane popcount) combine ``SIMD`` inputs with their weights and accumulate.
  A weight memory of ``NF * SF`` words of ``PE * SIMD * B`` bits (``B`` = ``spec.weight_bits``,
  placed as ``spec.weight_ram`` says) and a threshold memory of ``NF`` words are initialised at
  elaboration.
* **output** — after the last synapse fold, each lane's accumulator goes through its
  MultiThreshold (or, without thresholds, becomes the integer score) into the output register:
  one beat of ``PE`` elements per neuron fold, neuron ``nf * PE + p`` in lane ``p``.
* **weight writes** (``spec.weights_writable``) — port ``w`` takes ``{addr, data}`` beats (always
  ready) that overwrite one weight word; :class:`lowbit.hw.axi.axil.AXI4LiteWeightWriter` drives it.
* **streamed weights** (``spec.weight_ram == "external"``) — no weight memory: port ``ws`` takes the
  weight words in memory order, one per issue (the whole image once per vector, from DDR through a
  DMA); an issue waits for its word, so a slow stream slows the unit, never corrupts it.

Steady state: one vector per ``spec.cycles()`` cycles. The compute pipeline (issue -> accumulate ->
output register) stalls as a whole only while the output register is full and not accepted.

``spec.pipeline`` inserts stages into that pipeline (all stall together, so the handshakes are
unchanged): at 1 each lane's tree output goes through a register (``contrib_r<p>``) before the
accumulator; at 2 the output register also takes the threshold comparison of the accumulator
register itself, one cycle after the last synapse fold, with the threshold memory addressed one
stage later; at 3 each lane's tree also holds a register stage at half its depth (a compressor
tree's :func:`lowbit.hw.mvtu.mac.popcount` ``cut``, an adder tree's
:func:`lowbit.hw.mvtu.mac.staged_tree_sum`), and the control bits of the accumulate stage one
more register; at 4 the weight word and the input word read from the memories are registered
before the trees; 5 and 6 hold two and three register stages inside each tree instead of one
(:func:`lowbit.hw.fmax.tree_stages`, spread over its depth), the control bits one more register
each. Each stage adds one cycle of latency (:meth:`MVTUSpec.latency`) and none per vector.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import Kind, clog2
from ...ir.mac import MacKind
from .._util import pack_words, tree_sum
from ..fmax import tree_stages
from .mac import lane_dot, popcount
from .spec import MVTUSpec

__all__ = [
    "MatrixVectorThresholdUnit",
    "element_shape",
    "matmul_ports",
    "weight_write_layout",
    "memory_attrs",
]


def element_shape(dtype):
    """Amaranth shape of one stream element of a graph data type (bipolar values are bits)."""
    if dtype.kind is Kind.BIPOLAR:
        return unsigned(1)
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def weight_write_layout(spec: MVTUSpec) -> data.StructLayout:
    """Payload of the weight write port ``w``: a word address and a whole weight word."""
    depth = spec.neuron_folds * spec.synapse_folds
    return data.StructLayout(
        {"addr": unsigned(clog2(depth)), "data": unsigned(spec.weight_word_bits)}
    )


def memory_attrs(placement: str, writable: bool) -> dict[str, str]:
    """Synthesis attributes placing a memory (``ram_style`` / ``rom_style``, read by yosys
    ``memory_libmap`` and by Vivado).

    A writable memory gets ``ram_style = "block" | "distributed"``. A read-only one gets
    ``rom_style = "block"`` or, for LUTs, ``"logic"``: yosys ``synth_xilinx`` stops with "no valid
    mapping found" on ``rom_style = "distributed"`` (7-series LUTRAM needs a write port), while
    ``"logic"`` builds the ROM from LUTs, which is what Vivado calls a distributed ROM (a Vivado
    flow would spell it ``"distributed"``).
    """
    if placement == "auto":
        return {}
    if writable:
        return {"ram_style": placement}
    return {"rom_style": "block" if placement == "block" else "logic"}


def matmul_ports(spec) -> dict:
    """The stream interface of a matrix-product unit (an MVTU, or the sparse layer that stands in
    for one): ``i`` with ``spec.simd`` input elements per beat, ``o`` with ``spec.pe`` outputs per
    beat."""
    node = spec.node
    return {
        "i": In(stream.Signature(data.ArrayLayout(element_shape(node.input_dtype), spec.simd))),
        "o": Out(stream.Signature(data.ArrayLayout(element_shape(node.output_dtype), spec.pe))),
    }


class MatrixVectorThresholdUnit(wiring.Component):
    """The MVTU of ``spec``; ports ``i`` (``SIMD`` elements per beat), ``o`` (``PE`` per beat) and,
    with ``spec.weights_writable``, ``w`` (weight word writes)."""

    def __init__(self, spec: MVTUSpec):
        if not isinstance(spec, MVTUSpec):
            raise TypeError(f"spec must be an MVTUSpec, not {spec!r}")
        self.spec = spec
        node = spec.node
        self.in_shape = element_shape(node.input_dtype)
        self.out_shape = element_shape(node.output_dtype)
        members = matmul_ports(spec)
        if spec.weights_writable:
            members["w"] = In(stream.Signature(weight_write_layout(spec)))
        if spec.weight_ram == "external":
            members["ws"] = In(stream.Signature(unsigned(spec.weight_word_bits)))
        super().__init__(members)

    # -- memory images -------------------------------------------------------------------------

    def weight_image(self) -> list[int]:
        """Word ``nf * SF + sf``: see :meth:`MVTUSpec.weight_image`."""
        return self.spec.weight_image()

    def threshold_image(self) -> list[int]:
        """Word ``nf`` holds, for lane ``p``, the thresholds of row ``nf*PE+p`` (``acc_bits``
        each)."""
        s, t = self.spec, self.spec.node.thresholds
        if t is None:
            raise ValueError(f"node {s.node.name!r} has no thresholds")
        return [
            pack_words([v for p in range(s.pe) for v in t[nf * s.pe + p]], s.acc_bits)
            for nf in range(s.neuron_folds)
        ]

    # -- elaboration ---------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        node = s.node
        NF, SF, PE, SIMD, P = s.neuron_folds, s.synapse_folds, s.pe, s.simd, s.plane_pairs
        in_bits = self.in_shape.width
        acc_shape = signed(s.acc_bits) if s.acc_signed else unsigned(s.acc_bits)
        n_thr = 0 if node.thresholds is None else node.thresholds.shape[1]

        # Input side: ping-pong buffer, bank b at addresses [b*SF, (b+1)*SF).
        m.submodules.ibuf = ibuf = memory.Memory(
            shape=unsigned(SIMD * in_bits), depth=2 * SF, init=[]
        )
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
        external = s.weight_ram == "external"
        if external:  # the weight word of an issue is registered like a memory read
            wword = Signal(s.weight_word_bits, name="wword")
        else:
            m.submodules.wmem = wmem = memory.Memory(
                shape=unsigned(s.weight_word_bits),
                depth=NF * SF,
                init=s.weight_image(),
                attrs=memory_attrs(s.weight_ram, s.weights_writable),
            )
            wmem_r = wmem.read_port()
        if s.weights_writable:
            wmem_w = wmem.write_port()
            m.d.comb += [
                self.w.ready.eq(1),
                wmem_w.addr.eq(self.w.payload.addr),
                wmem_w.data.eq(self.w.payload.data),
                wmem_w.en.eq(self.w.valid),
            ]
        if n_thr:
            m.submodules.tmem = tmem = memory.Memory(
                shape=unsigned(PE * n_thr * s.acc_bits), depth=NF, init=self.threshold_image()
            )
            tmem_r = tmem.read_port()

        out_valid = Signal()
        stall = Signal()
        m.d.comb += stall.eq(out_valid & ~self.o.ready)

        rbank = Signal()
        nf = Signal(range(NF))
        sf = Signal(range(SF))
        pl = Signal(range(P))  # bit-plane pair (serial mode)
        widx = Signal(range(NF * SF))
        issue = Signal()
        m.d.comb += [
            ibuf_r.addr.eq(Mux(rbank, sf + SF, sf)),
            ibuf_r.en.eq(~stall),
        ]
        if external:
            m.d.comb += [
                self.ws.ready.eq(Mux(rbank, full[1], full[0]) & ~stall),
                issue.eq(self.ws.ready & self.ws.valid),
            ]
            with m.If(issue):
                m.d.sync += wword.eq(self.ws.payload)
        else:
            m.d.comb += [
                issue.eq(Mux(rbank, full[1], full[0]) & ~stall),
                wmem_r.addr.eq(widx),
                wmem_r.en.eq(~stall),
            ]
        D = s.pipeline
        nf_at = [nf]  # nf of the item in stage k (the threshold memory is read at stage D)
        for k in range(1, D + 1):
            nf_k = Signal(range(NF), name=f"nf{k}")
            with m.If(~stall):
                m.d.sync += nf_k.eq(nf_at[-1])
            nf_at.append(nf_k)
        if n_thr:
            m.d.comb += [tmem_r.addr.eq(nf_at[D]), tmem_r.en.eq(~stall)]
        with m.If(issue):
            with m.If(pl == P - 1):
                m.d.sync += pl.eq(0)
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
            with m.Else():
                m.d.sync += pl.eq(pl + 1)

        # Stage 1: accumulate (memory read data are valid now).
        v1, first1, last1 = Signal(), Signal(), Signal()
        pl1 = Signal(range(P))
        with m.If(~stall):
            m.d.sync += [
                v1.eq(issue),
                first1.eq((sf == 0) & (pl == 0)),
                last1.eq((sf == SF - 1) & (pl == P - 1)),
                pl1.eq(pl),
            ]

        # The accumulate stage (1, or 2 behind the tree register) and the output register's load.
        v_a, first_a, last_a = v1, first1, last1
        # one control stage per register in front of the accumulator: the tree's output (D >= 1),
        # the registers inside the tree (one at D 3 and 4, D - 3 at 5 and 6) and the memory read
        # registers (D >= 4)
        for k in range(2, 2 + (D > 0) + tree_stages(D) + (D > 3)):
            v_k, first_k, last_k = (Signal(name=f"{n}{k}") for n in ("v", "first", "last"))
            with m.If(~stall):
                m.d.sync += [v_k.eq(v_a), first_k.eq(first_a), last_k.eq(last_a)]
            v_a, first_a, last_a = v_k, first_k, last_k
        v_out = v_a & last_a
        if D >= 2:
            v_out = Signal(name="v_out" if D > 2 else "v3")
            with m.If(~stall):
                m.d.sync += v_out.eq(v_a & last_a)

        x_word, w_word = ibuf_r.data, (wword if external else wmem_r.data)
        if D >= 4:  # the memories' read data registered before the trees
            # At 5 and 6, where the tree's first register sits right after the memory read,
            # without a reset (never read before a valid word), so that an ECP5 build moves them
            # into the block RAM's output register (lowbit.tools.bram_outreg: fc1 of the demo
            # alone, 4 x 128 XNOR, 161.8 MHz at 6). At 4 they keep their reset, which keeps them
            # in the fabric next to the tree's first half, four counter levels deep: moved, that
            # half starts at the block and fc1 fell from 90.6 to 78.2 MHz.
            outreg = {"reset_less": True} if D >= 5 else {}
            x_word = Signal.like(x_word, name="x_word_r", **outreg)
            w_word = Signal.like(w_word, name="w_word_r", **outreg)
            with m.If(~stall):
                m.d.sync += [x_word.eq(ibuf_r.data), w_word.eq(wword if external else wmem_r.data)]
        xa = data.ArrayLayout(self.in_shape, SIMD)(x_word)
        x = [xa[i] for i in range(SIMD)]
        lane_bits = SIMD * s.weight_bits
        out_payload = Signal(self.o.payload.shape())
        shared = {}  # input-only terms of the lanes, built once
        if s.serial:  # the input bit-plane of this step, shared by all lanes
            pairs = [(xp, wp) for xp in s.input_planes() for wp in s.weight_planes()]
            xsel = Signal(SIMD)
            with m.Switch(pl1):
                for k, ((xb, _), _) in enumerate(pairs):
                    with m.Default() if k == len(pairs) - 1 else m.Case(k):
                        m.d.comb += xsel.eq(
                            Cat(*[Const(1, 1) if xb is None else x[i][xb] for i in range(SIMD)])
                        )
        for p in range(PE):
            lane = w_word[p * lane_bits : (p + 1) * lane_bits]
            if s.serial:
                contrib = Signal(acc_shape, name=f"contrib{p}")
                # one AND-popcount per lane on the selected input and weight planes
                wsel = Signal(SIMD, name=f"wplane{p}")
                with m.Switch(pl1):
                    for k, (_, (wb, _)) in enumerate(pairs):
                        with m.Default() if k == len(pairs) - 1 else m.Case(k):
                            m.d.comb += wsel.eq(
                                Cat(
                                    *[
                                        Const(1, 1) if wb is None else lane[i * s.weight_bits + wb]
                                        for i in range(SIMD)
                                    ]
                                )
                            )
                pc = popcount(
                    m, [xsel[i] & wsel[i] for i in range(SIMD)], fanin=2, name=f"lane{p}_pc"
                )
                with m.Switch(pl1):
                    for k, ((_, xc), (_, wc)) in enumerate(pairs):
                        # the last pair as the default keeps the case statement complete (lint)
                        with m.Default() if k == len(pairs) - 1 else m.Case(k):
                            coef = xc * wc
                            shift = abs(coef).bit_length() - 1
                            m.d.comb += contrib.eq(-(pc << shift) if coef < 0 else pc << shift)
            else:
                contrib = lane_dot(m, s, x, lane, name=f"lane{p}", shared=shared, en=~stall)
            if D:  # stage 2: the tree's output registered
                contrib_r = Signal(Value.cast(contrib).shape(), name=f"contrib_r{p}")
                with m.If(~stall):
                    m.d.sync += contrib_r.eq(contrib)
                contrib = contrib_r
            acc = Signal(acc_shape, name=f"acc{p}")
            acc_new = Signal(acc_shape, name=f"acc_new{p}")
            m.d.comb += acc_new.eq(Mux(first_a, 0, acc) + contrib)
            with m.If(v_a & ~stall):
                m.d.sync += acc.eq(acc_new)
            compared = acc if D >= 2 else acc_new  # at 2, the register holds the finished sum
            if n_thr:
                base = p * n_thr * s.acc_bits
                thr = [
                    tmem_r.data[base + k * s.acc_bits : base + (k + 1) * s.acc_bits]
                    for k in range(n_thr)
                ]
                if acc_shape.signed:
                    thr = [t.as_signed() for t in thr]
                value = tree_sum([compared >= t for t in thr])
            elif s.kind is MacKind.XNOR:
                value = 2 * compared - node.mw
            else:
                value = compared
            m.d.comb += out_payload[p].eq(value)

        with m.If(v_out & ~stall):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(out_payload)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        m.d.comb += self.o.valid.eq(out_valid)
        return m
