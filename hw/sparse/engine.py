"""EIE-style sparse matrix-vector engine (Han et al., ISCA 2016), in Amaranth 0.5.

One spec, :class:`~lowbit.hw.sparse.engine_spec.SparseEngineSpec`. Units (their timing is modelled
register for register by :mod:`lowbit.hw.sparse.cycle_model`):

* **non-zero detection** — an input beat of ``lanes`` activations is held; a priority encoder picks
  its lowest remaining non-zero and broadcasts ``(value, column)`` to every PE's activation queue
  (a ``SyncFIFO`` of ``depth``), one per cycle, while no queue is full.
* **per PE** — pointer stage (pops the queue head, reads ``(start, end)`` of its column), entry
  stage (walks the column's entries, one per cycle, reading the sparse-matrix memory of
  ``entries_per_word`` entries per word), decode stage (row from the zero run, codebook look-up,
  multiply, accumulator read), accumulate stage (add and write back; a bypass register forwards
  the previous sum when two consecutive updates hit the same row). **Padding skip**: a padding
  entry whose successor in the column is in the same word is decoded together with it, and the
  entry stage steps over the successor (:func:`lowbit.hw.sparse.cycle_model.column_steps`).
* **output** — when every unit is idle, the accumulators are read out one beat of ``pes`` rows
  (rows ``g*N .. g*N+N-1``) per cycle through ReLU, a right shift rounding half up and saturation;
  each read clears the accumulator for the next vector.

Ports: ``i`` (``lanes`` signed activations per beat, ``ceil(cols / lanes)`` beats per vector; lanes
past the last column are ignored), ``o`` (``pes`` signed outputs per beat), ``load`` (always ready:
writes word ``addr`` of memory ``mem`` of PE ``pe``; ``mem`` is :data:`MEM_POINTERS`,
:data:`MEM_MATRIX` or :data:`MEM_CODEBOOK`; only while the engine is idle), ``done`` (set when a
vector's last output beat is accepted, cleared when the next vector starts) and ``cycles`` (the
last vector's cycles, first input beat to last output beat inclusive).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ...sw_reference.sparse import SparseImage
from .._util import pack_words
from .engine_spec import SparseEngineSpec, clog2

__all__ = [
    "SparseEngine",
    "MEM_POINTERS",
    "MEM_MATRIX",
    "MEM_CODEBOOK",
    "memory_images",
    "load_layout",
]

MEM_POINTERS, MEM_MATRIX, MEM_CODEBOOK = 0, 1, 2


def load_layout(spec: SparseEngineSpec) -> data.StructLayout:
    """Payload of the ``load`` stream: ``pe``, ``mem``, ``addr``, ``data`` (first field at the
    LSB)."""
    depth = max(spec.cols, spec.matrix_words, 1 << spec.index_bits)
    width = max(2 * spec.pointer_bits, spec.entries_per_word * spec.entry_bits, spec.weight_bits)
    return data.StructLayout(
        {
            "pe": unsigned(clog2(spec.pes)),
            "mem": unsigned(2),
            "addr": unsigned(clog2(depth)),
            "data": unsigned(width),
        }
    )


def memory_images(spec: SparseEngineSpec, image: SparseImage) -> list[dict[int, list[int]]]:
    """Per PE, the words of each memory (keys :data:`MEM_POINTERS`, :data:`MEM_MATRIX`,
    :data:`MEM_CODEBOOK`).

    Pointer word ``j`` holds ``start | end << pointer_bits`` of column ``j``; matrix word ``w``
    holds entries ``w*E .. w*E+E-1``, entry ``e`` at bits ``e*8`` (``v`` low, ``z`` high); codebook
    word ``k`` is entry ``k`` in two's complement.
    """
    pb, E = spec.pointer_bits, spec.entries_per_word
    out = []
    for im in image.pe_images:
        ptr = [int(im.ptr[j]) | int(im.ptr[j + 1]) << pb for j in range(spec.cols)]
        entries = [int(v) | int(z) << spec.index_bits for v, z in zip(im.v, im.z)]
        entries += [0] * (-len(entries) % E)
        words = [pack_words(entries[w : w + E], spec.entry_bits) for w in range(0, len(entries), E)]
        cb = [int(c) & ((1 << spec.weight_bits) - 1) for c in image.codebook]
        out.append({MEM_POINTERS: ptr, MEM_MATRIX: words, MEM_CODEBOOK: cb})
    return out


class SparseEngine(wiring.Component):
    """The sparse engine of ``spec`` (see the module docstring for ports and structure)."""

    def __init__(self, spec: SparseEngineSpec):
        if not isinstance(spec, SparseEngineSpec):
            raise TypeError(f"spec must be a SparseEngineSpec, not {spec!r}")
        self.spec = spec
        self._load = load_layout(spec)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(signed(spec.act_bits), spec.lanes))),
                "o": Out(stream.Signature(data.ArrayLayout(signed(spec.out_bits), spec.pes))),
                "load": In(stream.Signature(self._load)),
                "done": Out(1),
                "cycles": Out(32),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        N, L, A, B, G = s.pes, s.lanes, s.act_bits, s.beats, s.out_beats
        PB, CB, EB = s.pointer_bits, s.col_bits, s.entry_bits
        E, log2e = s.entries_per_word, s.entries_per_word.bit_length() - 1
        images = memory_images(s, s.image) if s.image is not None else [{} for _ in range(N)]

        phase = Signal(name="phase_out")  # 0: input and compute; 1: output
        acc_shape = signed(s.acc_bits)

        # -- non-zero detection and broadcast -------------------------------------------------
        b = Signal(range(B + 1), name="beat")
        colbase = Signal(range(B * L + 1))
        hv = Signal()
        hmask = Signal(L)
        hvals = Signal(data.ArrayLayout(signed(A), L))
        hbase = Signal(range(B * L + 1))
        sel = Const(0, range(L))
        for lane in reversed(range(L)):
            sel = Mux(hmask[lane], lane, sel)
        sel_s = Signal(range(L))
        m.d.comb += sel_s.eq(sel)

        fifos = []
        for p in range(N):
            fifo = SyncFIFO(width=A + CB, depth=s.depth)
            m.submodules[f"queue{p}"] = fifo
            fifos.append(fifo)
        space = Signal()
        m.d.comb += space.eq(Const(1) if not fifos else _all([f.w_rdy for f in fifos]))
        bcast = Signal()
        rem = Signal(L)
        beat_done = Signal()
        accept = Signal()
        m.d.comb += [
            bcast.eq(hv & hmask.any() & space),
            rem.eq(Mux(bcast, hmask & ~(Const(1, L) << sel_s), hmask)),
            beat_done.eq(hv & ~rem.any()),
            self.i.ready.eq(~phase & (b < B) & (~hv | beat_done)),
            accept.eq(self.i.valid & self.i.ready),
        ]
        bcol = Signal(CB)
        m.d.comb += bcol.eq(hbase + sel_s)
        for f in fifos:
            m.d.comb += [f.w_en.eq(bcast), f.w_data.eq(Cat(hvals[sel_s].as_signed()[:A], bcol))]
        nz = Signal(L)
        m.d.comb += nz.eq(
            Cat(*[(self.i.payload[lane] != 0) & (colbase + lane < s.cols) for lane in range(L)])
        )
        with m.If(accept):
            m.d.sync += [
                hv.eq(1),
                hmask.eq(nz),
                hvals.eq(self.i.payload),
                hbase.eq(colbase),
                b.eq(b + 1),
                colbase.eq(colbase + L),
            ]
        with m.Elif(beat_done):
            m.d.sync += [hv.eq(0), hmask.eq(0)]
        with m.Else():
            m.d.sync += hmask.eq(rem)

        # -- output-phase control (declared here: the PEs' accumulator ports use it) -------------
        g = Signal(range(G + 1))
        rv = Signal()
        raddr = Signal(range(max(G, 2)))
        ov = Signal()
        ocnt = Signal(range(max(G, 2)))
        ostall = Signal()
        issue_rd = Signal()
        m.d.comb += [ostall.eq(ov & ~self.o.ready), issue_rd.eq(phase & (g < G) & ~ostall)]

        # -- processing elements ---------------------------------------------------------------
        idle_terms = []
        out_next = Signal(self.o.payload.shape())
        lo, hi = -(1 << (s.out_bits - 1)), (1 << (s.out_bits - 1)) - 1
        row_bits = clog2(s.rows_per_pe)
        load = self.load.payload
        for p in range(N):
            img = images[p]
            ptr_mem = memory.Memory(
                shape=unsigned(2 * PB), depth=s.cols, init=img.get(MEM_POINTERS, [])
            )
            mat_mem = memory.Memory(
                shape=unsigned(E * EB), depth=s.matrix_words, init=img.get(MEM_MATRIX, [])
            )
            cb_mem = memory.Memory(
                shape=unsigned(s.weight_bits),
                depth=1 << s.index_bits,
                init=img.get(MEM_CODEBOOK, []),
            )
            acc_mem = memory.Memory(shape=acc_shape, depth=s.rows_per_pe, init=[])
            m.submodules[f"ptr{p}"] = ptr_mem
            m.submodules[f"mat{p}"] = mat_mem
            m.submodules[f"cb{p}"] = cb_mem
            m.submodules[f"acc{p}"] = acc_mem
            for kind, mem in (
                (MEM_POINTERS, ptr_mem),
                (MEM_MATRIX, mat_mem),
                (MEM_CODEBOOK, cb_mem),
            ):
                wp = mem.write_port()
                m.d.comb += [
                    wp.en.eq(self.load.valid & (load.pe == p) & (load.mem == kind)),
                    wp.addr.eq(load.addr),
                    wp.data.eq(load.data),
                ]
            fifo = fifos[p]
            ptr_r = ptr_mem.read_port()
            mat_r = mat_mem.read_port()
            cb_r = cb_mem.read_port(domain="comb")
            acc_r = acc_mem.read_port()
            acc_w = acc_mem.write_port()

            # Pointer stage.
            pv = Signal(name=f"pv{p}")
            pa = Signal(signed(A), name=f"pa{p}")
            start, end = ptr_r.data[:PB], ptr_r.data[PB : 2 * PB]
            # Entry stage.
            kv = Signal(name=f"kv{p}")
            k = Signal(PB, name=f"k{p}")
            kend = Signal(PB, name=f"kend{p}")
            ka = Signal(signed(A), name=f"ka{p}")
            kfirst = Signal(name=f"kfirst{p}")
            # Decode-stage registers (declared here: the padding skip feeds back into the entry
            # stage).
            mv = Signal(name=f"mv{p}")
            msel = Signal(max(1, log2e), name=f"msel{p}")
            ma = Signal(signed(A), name=f"ma{p}")
            mfirst = Signal(name=f"mfirst{p}")
            mlast = Signal(name=f"mlast{p}")
            entry0 = mat_r.data.word_select(msel, EB) if E > 1 else mat_r.data
            skip = Signal(name=f"skip{p}")
            if E > 1:
                # The decode stage holds a padding entry whose successor (same column) is in the
                # same word: it consumes both, so the entry stage, which holds that successor, moves
                # past it.
                m.d.comb += skip.eq(mv & (entry0[: s.index_bits] == 0) & ~mlast & (msel != E - 1))
            k_eff = Signal(PB, name=f"k_eff{p}")
            k_last, k_free, empty, p_take, pop = (
                Signal(name=f"{n}{p}") for n in ("k_last", "k_free", "empty", "p_take", "pop")
            )
            m.d.comb += [
                k_eff.eq(Mux(skip, k + 1, k)),
                k_last.eq(kv & (k_eff + 1 >= kend)),
                k_free.eq(~kv | k_last),
                empty.eq(start == end),
                p_take.eq(pv & (k_free | empty)),
                pop.eq(fifo.r_rdy & (~pv | p_take)),
                fifo.r_en.eq(pop),
                ptr_r.addr.eq(fifo.r_data[A:]),
                ptr_r.en.eq(pop),
            ]
            with m.If(pop):
                m.d.sync += [pv.eq(1), pa.eq(fifo.r_data[:A].as_signed())]
            with m.Elif(p_take):
                m.d.sync += pv.eq(0)
            with m.If(p_take & ~empty):
                m.d.sync += [kv.eq(1), k.eq(start), kend.eq(end), ka.eq(pa), kfirst.eq(1)]
            with m.Elif(kv):
                m.d.sync += [k.eq(k_eff + 1), kfirst.eq(0)]
                with m.If(k_last):
                    m.d.sync += kv.eq(0)
            m.d.comb += [mat_r.addr.eq(k_eff >> log2e), mat_r.en.eq(1)]
            # Decode stage: row, codebook, multiply, accumulator read. A skipped (squashed) issue is
            # the entry stage's last entry already consumed by the decode stage.
            m.d.sync += [
                mv.eq(kv & (k_eff < kend)),
                msel.eq(k_eff[:log2e] if log2e else 0),
                ma.eq(ka),
                mfirst.eq(kfirst),
                mlast.eq(k_eff + 1 >= kend),
            ]
            v0, z0 = entry0[: s.index_bits], entry0[s.index_bits : EB]
            prow = Signal(row_bits, name=f"prow{p}")
            row0 = Signal(row_bits, name=f"row0_{p}")
            row = Signal(row_bits, name=f"row{p}")
            m.d.comb += row0.eq(Mux(mfirst, z0, prow + z0 + 1))
            if E > 1:
                entry1 = mat_r.data.word_select(msel + 1, EB)
                v1, z1 = entry1[: s.index_bits], entry1[s.index_bits : EB]
                m.d.comb += [
                    row.eq(Mux(skip, row0 + z1 + 1, row0)),
                    cb_r.addr.eq(Mux(skip, v1, v0)),
                ]
            else:
                m.d.comb += [row.eq(row0), cb_r.addr.eq(v0)]
            with m.If(mv):
                m.d.sync += prow.eq(row)
            prod = Signal(signed(s.weight_bits + A), name=f"prod{p}")
            m.d.comb += prod.eq(cb_r.data.as_signed() * ma)
            # Accumulate stage with the bypass.
            av = Signal(name=f"av{p}")
            arow = Signal(row_bits, name=f"arow{p}")
            aprod = Signal(signed(s.weight_bits + A), name=f"aprod{p}")
            wv = Signal(name=f"wv{p}")
            wrow = Signal(row_bits, name=f"wrow{p}")
            wsum = Signal(acc_shape, name=f"wsum{p}")
            total = Signal(acc_shape, name=f"sum{p}")
            m.d.sync += [
                av.eq(mv),
                arow.eq(row),
                aprod.eq(prod),
                wv.eq(av),
                wrow.eq(arow),
                wsum.eq(total),
            ]
            m.d.comb += total.eq(Mux(wv & (wrow == arow), wsum, acc_r.data) + aprod)
            m.d.comb += [
                acc_r.addr.eq(Mux(phase, g, row)),
                acc_r.en.eq(~phase | ~ostall),
                acc_w.addr.eq(Mux(phase, raddr, arow)),
                acc_w.data.eq(Mux(phase, 0, total)),
                acc_w.en.eq(Mux(phase, rv & ~ostall, av)),
            ]
            idle_terms.append(~fifo.r_rdy & ~pv & ~kv & ~mv & ~av)
            m.d.comb += out_next[p].eq(_requantize(acc_r.data, s.shift, s.relu, lo, hi))

        # -- control: compute -> output -> next vector ---------------------------------------------
        all_idle = Signal()
        m.d.comb += all_idle.eq(~phase & (b == B) & ~hv & _all(idle_terms))
        with m.If(all_idle):
            m.d.sync += phase.eq(1)
        out_reg = Signal(self.o.payload.shape())
        m.d.comb += [self.o.valid.eq(ov), self.o.payload.eq(out_reg)]
        with m.If(~ostall):
            m.d.sync += [rv.eq(issue_rd), raddr.eq(g), ov.eq(rv)]
            with m.If(rv):
                m.d.sync += out_reg.eq(out_next)
        with m.If(issue_rd):
            m.d.sync += g.eq(g + 1)
        running = Signal()
        count = Signal(32)
        out_fire = ov & self.o.ready
        with m.If(out_fire & (ocnt == G - 1)):
            m.d.sync += [
                ocnt.eq(0),
                g.eq(0),
                phase.eq(0),
                b.eq(0),
                colbase.eq(0),
                running.eq(0),
                self.done.eq(1),
                self.cycles.eq(count + 1),
            ]
        with m.Elif(out_fire):
            m.d.sync += ocnt.eq(ocnt + 1)
        with m.If(accept & (b == 0)):
            m.d.sync += [running.eq(1), count.eq(1), self.done.eq(0)]
        with m.Elif(running):
            m.d.sync += count.eq(count + 1)
        m.d.comb += self.load.ready.eq(1)
        return m


def _all(terms):
    out = Const(1)
    for t in terms:
        out = out & t
    return out


def _requantize(acc, shift: int, relu: bool, lo: int, hi: int):
    """ReLU, right shift rounding half up, saturation (``sw_reference.sparse.requantize``)."""
    y = acc
    if relu:
        y = Mux(y < 0, 0, y)
    if shift:
        y = (y + (1 << (shift - 1))) >> shift
    return Mux(y > hi, hi, Mux(y < lo, lo, y))
