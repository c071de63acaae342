"""An AXI4 read master that streams a layer's weight image from DDR, pass after pass.

A weight-streaming MVTU (``weight_ram="external"``) reads its whole weight image once per input
vector on its ``ws`` port. :class:`WeightFetcher` is the component that feeds that port on the
board: an AXI4 **read-only** master (AXI3-compatible bursts of at most 16 beats, as the Zynq PS7
AXI-HP ports need) that reads the image from DDR over and over while ``enable`` is 1 and turns the
data beats into the stream ``o`` of weight words.

Memory layout (the contract with the host driver)
-------------------------------------------------
The image is the ``words`` words of ``W = word_bits`` bits packed densely, little-endian: word ``i``
occupies bits ``[i*W, (i+1)*W)`` of the image, bit ``b`` of the image being bit ``b % 8`` of byte
``b // 8``. It is zero-padded at the end to whole data beats, ``beats = ceil(words * W / D)`` beats
of ``D = data_bits`` bits (:func:`image_beats`); :func:`pack_image` makes those bytes and
:func:`unpack_image` reads them back. Every pass starts at ``base``: the padding bits at the end of
a pass are read and dropped, never used as the start of the next pass.

Structure
---------
* **AR side** — INCR bursts of ``burst`` beats (the last burst of a pass shorter when
  ``beats % burst``), up to ``outstanding`` bursts in flight. A burst is only requested when the
  data FIFO has room reserved for all of its beats (a credit counter: free FIFO beats minus beats
  requested and not yet received), so ``rready`` is held at 1 and the R channel never back-pressures
  the interconnect.
* **data path** — a FIFO of ``outstanding * burst`` beats, then a gearbox from ``D``-bit beats to
  ``W``-bit words: a word select when ``D % W == 0``, a shift register of ``W / D`` beats when
  ``W % D == 0``, otherwise a bit buffer of ``W + D`` bits with a fill count and a barrel shift. It
  counts the words of a pass (only when the image has padding) to drop the padding bits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "AXI4ReadSignature",
    "WeightFetcher",
    "image_beats",
    "pack_image",
    "unpack_image",
    "DATA_BITS_CHOICES",
    "MAX_BURST",
    "OKAY",
    "SLVERR",
    "DECERR",
]

logger = logging.getLogger(__name__)

DATA_BITS_CHOICES = (32, 64, 128, 256, 512, 1024)
"""AXI data widths the fetcher supports."""
MAX_BURST = 16
"""Longest burst (beats): AXI3 INCR limit, which the PS7 AXI-HP ports impose."""
OKAY, SLVERR, DECERR = 0b00, 0b10, 0b11
BURST_INCR = 0b01
ARCACHE = 0b0011
"""Normal non-cacheable bufferable (AXI4 ``ARCACHE[3:0] = 0011``)."""
BOUNDARY = 4096
"""AXI bursts must not cross a 4 KB address boundary."""


def _int_at_least(name: str, v, lo: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} must be an integer, not {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, not {v!r}")
    return v


def _data_bits(v) -> int:
    if isinstance(v, bool) or v not in DATA_BITS_CHOICES:
        raise ValueError(f"data_bits must be one of {DATA_BITS_CHOICES}, not {v!r}")
    return int(v)


def image_beats(words: int, word_bits: int, data_bits: int) -> int:
    """Data beats of ``data_bits`` bits in one pass over an image of ``words`` words of
    ``word_bits`` bits: ``ceil(words * word_bits / data_bits)``."""
    _int_at_least("words", words, 1)
    _int_at_least("word_bits", word_bits, 1)
    _data_bits(data_bits)
    return -(-words * word_bits // data_bits)


def pack_image(image: Sequence[int], word_bits: int, data_bits: int) -> bytes:
    """The DDR bytes of ``image`` (see the module docstring): ``image_beats(...) * data_bits / 8``
    bytes, word ``i`` at bits ``[i*word_bits, (i+1)*word_bits)``, zero padding at the end.

    Raises
    ------
    ValueError
        ``image`` is empty, a word is not an integer in ``[0, 2**word_bits)``, or ``word_bits`` /
        ``data_bits`` is invalid.
    """
    _int_at_least("word_bits", word_bits, 1)
    _data_bits(data_bits)
    words = list(image)
    if not words:
        raise ValueError("image must hold at least one word")
    digits = []
    for i, w in enumerate(words):
        if isinstance(w, bool) or not hasattr(w, "__index__"):
            raise ValueError(f"image[{i}] must be an integer, not {w!r}")
        w = int(w)
        if not 0 <= w < 1 << word_bits:
            raise ValueError(f"image[{i}] = {w} does not fit in word_bits={word_bits} (unsigned)")
        digits.append(format(w, f"0{word_bits}b"))
    digits.reverse()  # word 0 at the least significant end
    nbytes = image_beats(len(words), word_bits, data_bits) * data_bits // 8
    return int("".join(digits), 2).to_bytes(nbytes, "little")


def unpack_image(data: bytes, words: int, word_bits: int) -> list[int]:
    """The first ``words`` words of ``word_bits`` bits of the packed image ``data`` (inverse of
    :func:`pack_image`; the padding is ignored).

    Raises
    ------
    ValueError
        ``data`` is not bytes-like or is shorter than ``words * word_bits`` bits, or ``words`` /
        ``word_bits`` is invalid.
    """
    _int_at_least("words", words, 1)
    _int_at_least("word_bits", word_bits, 1)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    total = words * word_bits
    if len(data) * 8 < total:
        raise ValueError(
            f"data holds {len(data)} bytes, fewer than the {-(-total // 8)} of {words} words of "
            f"{word_bits} bits"
        )
    bits = format(int.from_bytes(data, "little"), f"0{len(data) * 8}b")[
        ::-1
    ]  # bits[b] = image bit b
    return [int(bits[i * word_bits : (i + 1) * word_bits][::-1], 2) for i in range(words)]


class AXI4ReadSignature(wiring.Signature):
    """The AXI4 read channels (AR and R), from the master's side (``Out`` = driven by the master).

    Single ID (no ``ARID``/``RID``): responses come back in order. ``arlen`` is AXI4's 8 bits, but a
    master built for AXI3 slaves keeps it below 16.
    """

    def __init__(self, addr_bits: int = 32, data_bits: int = 64):
        _int_at_least("addr_bits", addr_bits, 1)
        _int_at_least("data_bits", data_bits, 8)
        self.addr_bits, self.data_bits = addr_bits, data_bits
        super().__init__(
            {
                "araddr": Out(addr_bits),
                "arlen": Out(8),
                "arsize": Out(3),
                "arburst": Out(2),
                "arcache": Out(4),
                "arprot": Out(3),
                "arvalid": Out(1),
                "arready": In(1),
                "rdata": In(data_bits),
                "rresp": In(2),
                "rlast": In(1),
                "rvalid": In(1),
                "rready": Out(1),
            }
        )

    def __eq__(self, other):
        return (
            isinstance(other, AXI4ReadSignature)
            and other.addr_bits == self.addr_bits
            and other.data_bits == self.data_bits
        )

    def __hash__(self):
        return hash((AXI4ReadSignature, self.addr_bits, self.data_bits))

    def __repr__(self):
        return f"AXI4ReadSignature({self.addr_bits}, {self.data_bits})"


class _Gearbox(Elaboratable):
    """``D``-bit beats in (``i_*``, FIFO-like: ``i_ready`` pops) to ``W``-bit words out (``o_*``),
    ``words`` words per pass, the padding bits of a pass's last beat dropped. ``clear`` empties it
    (synchronously; overrides everything else)."""

    def __init__(self, word_bits: int, data_bits: int, words: int):
        self.W, self.D, self.N = word_bits, data_bits, words
        self.padded = (words * word_bits) % data_bits != 0
        if data_bits % word_bits == 0:
            self.kind = "select"
        elif word_bits % data_bits == 0:
            self.kind = "gather"
        else:
            self.kind = "shift"
        self.i_data = Signal(data_bits)
        self.i_valid = Signal()
        self.i_ready = Signal()
        self.o_data = Signal(word_bits)
        self.o_valid = Signal()
        self.o_ready = Signal()
        self.clear = Signal()

    def elaborate(self, platform):
        m = Module()
        W, D, N = self.W, self.D, self.N
        fire = Signal()
        m.d.comb += fire.eq(self.o_valid & self.o_ready)
        last = Const(0)  # the pass's last word goes out this cycle (only matters with padding)
        resets = []
        if self.padded:
            wcnt = Signal(range(N))
            last = Signal()
            m.d.comb += last.eq(fire & (wcnt == N - 1))
            with m.If(fire):
                m.d.sync += wcnt.eq(Mux(wcnt == N - 1, 0, wcnt + 1))
            resets.append(wcnt)

        if self.kind == "select":  # k words per beat, read straight off the FIFO head
            k = D // W
            m.d.comb += self.o_valid.eq(self.i_valid)
            if k == 1:
                m.d.comb += [self.o_data.eq(self.i_data[:W]), self.i_ready.eq(fire)]
            else:
                sub = Signal(range(k))
                m.d.comb += [
                    self.o_data.eq(self.i_data.word_select(sub, W)),
                    self.i_ready.eq(fire & ((sub == k - 1) | last)),
                ]
                with m.If(fire):
                    m.d.sync += sub.eq(Mux(self.i_ready, 0, sub + 1))
                resets.append(sub)
        elif (
            self.kind == "gather"
        ):  # k beats per word, shifted in from the top (no padding possible)
            k = W // D
            acc = Signal(W)
            cnt = Signal(range(k + 1))
            m.d.comb += [
                self.o_valid.eq(cnt == k),
                self.o_data.eq(acc),
                self.i_ready.eq((cnt != k) | self.o_ready),
            ]
            load = Signal()
            m.d.comb += load.eq(self.i_valid & self.i_ready)
            with m.If(load):
                m.d.sync += acc.eq(Cat(acc[D:], self.i_data))
            m.d.sync += cnt.eq(Mux(fire, 0, cnt) + load)
            resets.append(cnt)
        else:  # bit buffer of W + D bits, bits at and above the fill count always 0
            cap = W + D
            buf = Signal(cap)
            n = Signal(range(cap + 1))
            kept = Signal(range(cap + 1))  # fill count after this cycle's word leaves
            pos = Signal(range(W + 1))  # where a beat loaded this cycle lands (kept <= W then)
            shifted = Signal(cap)
            m.d.comb += [
                self.o_valid.eq(n >= W),
                self.o_data.eq(buf[:W]),
                kept.eq(Mux(last, 0, n - Mux(fire, W, 0))),
                shifted.eq(Mux(last, 0, Mux(fire, buf >> W, buf))),
                self.i_ready.eq(kept <= W),
                pos.eq(kept),
            ]
            load = Signal()
            m.d.comb += load.eq(self.i_valid & self.i_ready)
            placed = Signal(cap)
            m.d.comb += placed.eq(self.i_data << pos)
            m.d.sync += [buf.eq(shifted | Mux(load, placed, 0)), n.eq(kept + Mux(load, D, 0))]
            resets += [buf, n]
        with m.If(self.clear):
            m.d.sync += [r.eq(0) for r in resets]
        return m


class WeightFetcher(wiring.Component):
    """AXI4 read master streaming a weight image of ``words`` words of ``word_bits`` bits from DDR,
    cyclically, as the word stream ``o``.

    Parameters
    ----------
    word_bits : int
        ``W``, bits of one weight word (``>= 1``, any value: 9, 96, 2048 ...).
    words : int
        Words in the image (one pass), ``>= 1``.
    data_bits : int
        ``D``, AXI data width: 32, 64, 128, 256, 512 or 1024.
    addr_bits : int
        AXI address width, 32 to 64.
    burst : int
        Beats per burst, 1 to 16 (AXI3-compatible). The last burst of a pass is shorter when
        ``beats % burst``.
    outstanding : int
        Bursts in flight at most (``>= 1``); the data FIFO holds ``outstanding * burst`` beats.

    Ports
    -----
    base : In(addr_bits)
        Byte address of the image; held stable while ``enable`` is 1 or ``busy``. It must be aligned
        to :attr:`base_alignment` bytes (``burst * data_bits / 8`` for a power-of-two ``burst``; the
        bursts, all starting ``burst`` beats apart from ``base``, then never cross a 4 KB boundary).
        With a ``burst`` that is not a power of two the alignment is one beat and a burst that would
        cross a 4 KB boundary is cut there. :meth:`check_base` checks a value.
    enable : In(1)
        Level-sensitive. While 1, passes are fetched forever, each starting at word 0 of ``base``.
        When it falls: no new burst is requested (an AR already presented stays valid until
        accepted, as AXI requires), ``rready`` stays 1 and the R data is discarded until every
        outstanding burst has completed (``rlast``), then the FIFO and the gearbox are flushed and
        ``busy`` falls. ``o.valid`` is 0 in every cycle ``enable`` is 0 and through the flush: a
        word presented on ``o`` may be **withdrawn** when enable falls. When ``enable`` is 1 once
        the flush is complete (a new rising edge, or still/again 1), a new run starts at word 0.
    error : Out(1)
        Sticky: some R beat came back with ``RRESP != OKAY`` (SLVERR or DECERR; the data is still
        delivered). Beats discarded while draining count too. Cleared when a new run starts.
    busy : Out(1)
        1 from the start of a run until the flush after ``enable`` fell is complete (bursts
        outstanding or beats/words buffered); 0 when fully idle.
    axi : Out(AXI4ReadSignature(addr_bits, data_bits))
        INCR bursts, ``arsize = log2(D / 8)``, ``arcache = 0b0011``, ``arprot = 0``; ``rready = 1``.
    o : Out(stream.Signature(unsigned(word_bits)))
        The weight words in image order, cyclically. Steady state with an ideal slave: ``min(1,
        D / W)`` words per cycle.
    """

    def __init__(
        self,
        *,
        word_bits: int,
        words: int,
        data_bits: int = 64,
        addr_bits: int = 32,
        burst: int = 16,
        outstanding: int = 4,
    ):
        self.word_bits = _int_at_least("word_bits", word_bits, 1)
        self.words = _int_at_least("words", words, 1)
        self.data_bits = _data_bits(data_bits)
        if (
            isinstance(addr_bits, bool)
            or not isinstance(addr_bits, int)
            or not 32 <= addr_bits <= 64
        ):
            raise ValueError(f"addr_bits must be an integer in 32..64, not {addr_bits!r}")
        self.addr_bits = addr_bits
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
            raise ValueError(
                f"burst must be an integer in 1..{MAX_BURST} (AXI3 INCR), not {burst!r}"
            )
        self.burst = burst
        self.outstanding = _int_at_least("outstanding", outstanding, 1)
        self.beat_bytes = data_bits // 8
        self.beats = image_beats(words, word_bits, data_bits)
        self.image_bytes = self.beats * self.beat_bytes
        self.fifo_beats = outstanding * burst
        self.split_at_4k = burst & (burst - 1) != 0
        self.base_alignment = self.beat_bytes if self.split_at_4k else burst * self.beat_bytes
        if self.image_bytes > 1 << addr_bits:
            raise ValueError(
                f"words: an image of {self.image_bytes} bytes does not fit in addr_bits={addr_bits}"
            )
        super().__init__(
            {
                "base": In(addr_bits),
                "enable": In(1),
                "error": Out(1),
                "busy": Out(1),
                "axi": Out(AXI4ReadSignature(addr_bits, data_bits)),
                "o": Out(stream.Signature(unsigned(word_bits))),
            }
        )

    def check_base(self, base: int) -> int:
        """``base`` if it is a valid image address (aligned, image inside the address space);
        otherwise ValueError naming ``base``."""
        if isinstance(base, bool) or not isinstance(base, int):
            raise ValueError(f"base must be an integer byte address, not {base!r}")
        if base < 0 or base + self.image_bytes > 1 << self.addr_bits:
            raise ValueError(
                f"base {base:#x}: the image ({self.image_bytes} bytes) must lie inside the "
                f"{self.addr_bits}-bit address space"
            )
        if base % self.base_alignment:
            raise ValueError(
                f"base {base:#x} must be aligned to {self.base_alignment} bytes (burst * data_bits "
                f"/ 8{'' if not self.split_at_4k else ' rounded to a beat'})"
            )
        return base

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        B, BB, outstanding, F, beats = (
            self.burst,
            self.beat_bytes,
            self.outstanding,
            self.fifo_beats,
            self.beats,
        )

        IDLE, RUN, DRAIN = 0, 1, 2
        state = Signal(range(3), init=IDLE)
        run = Signal()
        m.d.comb += [run.eq(state == RUN), self.busy.eq(state != IDLE)]

        # ---- data FIFO (depth 2 is padded to 3: SyncFIFOBuffered(depth=2) may refuse a write at
        # level 1)
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(
            width=self.data_bits, depth=3 if F == 2 else F
        )
        self._fifo = q  # for tests: overflow checks
        m.submodules.gearbox = gb = _Gearbox(self.word_bits, self.data_bits, self.words)
        logger.debug(
            "WeightFetcher W=%d D=%d words=%d: %d beats/pass, gearbox %s%s, FIFO %d beats",
            self.word_bits,
            self.data_bits,
            self.words,
            beats,
            gb.kind,
            " (padded)" if gb.padded else "",
            F,
        )

        # ---- R channel: always ready; beats go to the FIFO while running, are discarded otherwise
        rbeat = Signal()
        m.d.comb += [
            axi.rready.eq(1),
            rbeat.eq(axi.rvalid),
            q.w_data.eq(axi.rdata),
            q.w_en.eq(rbeat & run),
        ]
        with m.If(rbeat & (axi.rresp != OKAY)):
            m.d.sync += self.error.eq(1)

        # ---- FIFO -> gearbox -> o
        pop = Signal()
        m.d.comb += [
            gb.i_data.eq(q.r_data),
            gb.i_valid.eq(q.r_rdy & run),
            q.r_en.eq(Mux(run, gb.i_ready, 1)),  # draining: empty the FIFO
            pop.eq(q.r_rdy & q.r_en & run),
            gb.clear.eq(~run),
            self.o.payload.eq(gb.o_data),
            self.o.valid.eq(gb.o_valid & run & self.enable),
            gb.o_ready.eq(self.o.ready & run & self.enable),
        ]

        # ---- AR channel
        m.d.comb += [
            axi.arsize.eq((BB - 1).bit_length()),
            axi.arburst.eq(BURST_INCR),
            axi.arcache.eq(ARCACHE),
            axi.arprot.eq(0),
        ]
        arvalid = Signal()
        araddr = Signal(self.addr_bits)
        arlen = Signal(8)
        m.d.comb += [axi.arvalid.eq(arvalid), axi.araddr.eq(araddr), axi.arlen.eq(arlen)]
        next_addr = Signal(self.addr_bits)  # address of the next burst
        left = Signal(range(beats + 1), init=beats)  # beats of this pass not yet requested
        credit = Signal(range(F + 1), init=F)  # free FIFO beats minus beats requested, not received
        outst = Signal(range(outstanding + 1))  # bursts requested, rlast not yet received

        nlen = Signal(range(B + 1))  # length of the next burst
        if beats <= B and not self.split_at_4k:
            m.d.comb += nlen.eq(beats)
        else:
            want = Signal(range(B + 1))
            m.d.comb += want.eq(Mux(left < B, left, B))
            if self.split_at_4k:  # cut at the 4 KB boundary (the address is beat-aligned)
                page_beats = BOUNDARY // BB
                room = Signal(range(page_beats + 1))
                m.d.comb += [
                    room.eq(page_beats - next_addr[:12][(BB - 1).bit_length() :]),
                    nlen.eq(Mux(room < want, room, want)),
                ]
            else:
                m.d.comb += nlen.eq(want)
        launch = Signal()
        m.d.comb += launch.eq(
            run & self.enable & (~arvalid | axi.arready) & (credit >= nlen) & (outst < outstanding)
        )
        with m.If(launch):
            m.d.sync += [arvalid.eq(1), araddr.eq(next_addr), arlen.eq(nlen - 1)]
            with m.If(left == nlen):  # last burst of the pass: the next pass starts at base
                m.d.sync += [left.eq(beats), next_addr.eq(self.base)]
            with m.Else():
                m.d.sync += [left.eq(left - nlen), next_addr.eq(next_addr + nlen * BB)]
        with m.Elif(axi.arready):
            m.d.sync += arvalid.eq(0)
        m.d.sync += [
            credit.eq(credit + pop - Mux(launch, nlen, 0)),
            outst.eq(outst + launch - (rbeat & axi.rlast)),
        ]

        # ---- run control
        with m.If(state == IDLE):
            with m.If(self.enable):
                m.d.sync += [state.eq(RUN), self.error.eq(0), next_addr.eq(self.base)]
        with m.Elif(run):
            with m.If(~self.enable):
                m.d.sync += state.eq(DRAIN)
        with m.Else():  # DRAIN: discard R beats, empty the FIFO (the gearbox is held clear)
            with m.If((outst == 0) & (q.level == 0)):
                m.d.sync += [state.eq(IDLE), left.eq(beats), credit.eq(F)]
        return m
