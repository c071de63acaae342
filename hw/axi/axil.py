"""Run-time weight writes over AXI4-Lite: a small slave that fills an MVTU's weight memory.

:class:`AXI4LiteWeightWriter` is an AXI4-Lite slave (32-bit data) whose address space is the
weight memory of one :class:`~lowbit.hw.mvtu.spec.MVTUSpec` with ``weights_writable=True``: weight
word ``a`` (``spec.weight_image()`` order, ``PE * SIMD * B`` bits) is split into
``C = ceil(bits / 32)`` little-endian 32-bit chunks at byte addresses ``(a * 2^c + k) * 4`` for
chunk ``k < C``, with ``2^c >= C`` the chunk stride. Chunks are gathered in a staging register (byte
strobes honoured); writing the **last** chunk ``C - 1`` of a word commits the whole staged word to
the memory through the writer's ``w`` stream (connect it to the MVTU's ``w`` port). Reads return the
staged chunk (read-back of what was written), ``OKAY`` always. Addresses beyond the memory answer
``SLVERR`` and change nothing.

The writes take effect for the vectors whose weight words are read after the commit; write the
weights while no vector is in flight when every output must come from one set of weights.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..mvtu.spec import MVTUSpec
from ..mvtu.unit import weight_write_layout

__all__ = ["AXI4LiteSignature", "AXI4LiteWeightWriter", "chunk_address", "weight_chunks"]

DATA_BITS = 32
OKAY, SLVERR = 0b00, 0b10


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the master's side (``Out`` = driven by the master); a slave uses
    ``In(...)``."""

    def __init__(self, addr_width: int):
        if not isinstance(addr_width, int) or addr_width < 3:
            raise ValueError(f"AXI4-Lite addr_width must be an integer >= 3, not {addr_width!r}")
        self.addr_width = addr_width
        super().__init__(
            {
                "awaddr": Out(addr_width),
                "awvalid": Out(1),
                "awready": In(1),
                "wdata": Out(DATA_BITS),
                "wstrb": Out(DATA_BITS // 8),
                "wvalid": Out(1),
                "wready": In(1),
                "bresp": In(2),
                "bvalid": In(1),
                "bready": Out(1),
                "araddr": Out(addr_width),
                "arvalid": Out(1),
                "arready": In(1),
                "rdata": In(DATA_BITS),
                "rresp": In(2),
                "rvalid": In(1),
                "rready": Out(1),
            }
        )


def _chunks(word_bits: int) -> tuple[int, int]:
    """``(C, log2 of the chunk stride)`` for a word of ``word_bits`` bits."""
    c = -(-word_bits // DATA_BITS)
    return c, (c - 1).bit_length()


def chunk_address(spec: MVTUSpec, word: int, chunk: int) -> int:
    """Byte address of 32-bit chunk ``chunk`` of weight word ``word``."""
    _, stride = _chunks(spec.weight_word_bits)
    return ((word << stride) + chunk) * 4


def weight_chunks(spec: MVTUSpec, weights) -> list[tuple[int, int]]:
    """``(byte address, 32-bit data)`` writes that load ``weights`` (stored values, ``(MH, MW)``),
    each word's chunks in ascending order (the last one commits the word)."""
    c, _ = _chunks(spec.weight_word_bits)
    out = []
    for a, word in enumerate(spec.weight_image(weights)):
        for k in range(c):
            out.append((chunk_address(spec, a, k), (word >> (k * DATA_BITS)) & 0xFFFF_FFFF))
    return out


class AXI4LiteWeightWriter(wiring.Component):
    """AXI4-Lite slave ``axil`` writing the weight memory of ``spec`` through the stream ``w``."""

    def __init__(self, spec: MVTUSpec):
        if not isinstance(spec, MVTUSpec):
            raise TypeError(f"spec must be an MVTUSpec, not {spec!r}")
        if not spec.weights_writable:
            raise ValueError(
                f"node {spec.node.name!r}: the MVTU needs weights_writable=True for an AXI4-Lite "
                "weight writer"
            )

        self.spec = spec
        self.depth = spec.neuron_folds * spec.synapse_folds
        self.n_chunks, self.stride = _chunks(spec.weight_word_bits)
        self.addr_width = max(3, (max(1, self.depth) << self.stride).bit_length() + 2)
        super().__init__(
            {
                "axil": In(AXI4LiteSignature(self.addr_width)),
                "w": Out(stream.Signature(weight_write_layout(spec))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        C, stride, word_bits = self.n_chunks, self.stride, self.spec.weight_word_bits
        staged = Signal(C * DATA_BITS)

        # write channel: latch AW and W independently, answer on B
        aw_full, w_full = Signal(), Signal()
        aw_addr = Signal(self.addr_width)
        w_data, w_strb = Signal(DATA_BITS), Signal(DATA_BITS // 8)
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full)]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]

        chunk = aw_addr[2 : 2 + stride] if stride else Const(0, 1)
        word = aw_addr[2 + stride :]
        in_range = (word < self.depth) & (chunk < C)
        do_write = aw_full & w_full & ~bus.bvalid
        commit = Signal()
        m.d.sync += self.w.valid.eq(0)
        with m.If(do_write):
            m.d.sync += [
                aw_full.eq(0),
                w_full.eq(0),
                bus.bvalid.eq(1),
                bus.bresp.eq(Mux(in_range, OKAY, SLVERR)),
            ]
            with m.If(in_range):
                for k in range(C):
                    with m.If(chunk == k):
                        for b in range(DATA_BITS // 8):
                            lo = k * DATA_BITS + 8 * b
                            with m.If(w_strb[b]):
                                m.d.sync += staged[lo : lo + 8].eq(w_data[8 * b : 8 * b + 8])
                m.d.comb += commit.eq(chunk == C - 1)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # the committed word: the staged chunks with the last one replaced by this write's bytes
        last = Signal(DATA_BITS)
        prev_last = staged[(C - 1) * DATA_BITS : C * DATA_BITS]
        m.d.comb += last.eq(
            Cat(
                *[
                    Mux(w_strb[b], w_data[8 * b : 8 * b + 8], prev_last[8 * b : 8 * b + 8])
                    for b in range(DATA_BITS // 8)
                ]
            )
        )
        with m.If(commit):
            m.d.sync += [
                self.w.valid.eq(1),
                self.w.payload.addr.eq(word),
                self.w.payload.data.eq(Cat(staged[: (C - 1) * DATA_BITS], last)[:word_bits]),
            ]

        # read channel: the staged chunk
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & ~bus.rvalid):
            rchunk = bus.araddr[2 : 2 + stride] if stride else Const(0, 1)
            rword = bus.araddr[2 + stride :]
            ok = (rword < self.depth) & (rchunk < C)
            m.d.sync += [bus.rvalid.eq(1), bus.rresp.eq(Mux(ok, OKAY, SLVERR)), bus.rdata.eq(0)]
            for k in range(C):
                with m.If(ok & (rchunk == k)):
                    m.d.sync += bus.rdata.eq(staged[k * DATA_BITS : (k + 1) * DATA_BITS])
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
