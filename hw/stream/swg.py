"""Sliding-window generator (SWG): the im2col of a streamed image, from a line buffer.

Input: the image in raster order, channels last, ``SIMD`` channels of one pixel per beat
(``C / SIMD`` beats per pixel). Output: for every output pixel ``(oy, ox)`` (raster order) its
``K x K x C`` window in ``(ky, kx, c)`` order, ``SIMD`` elements per beat — exactly the input vector
of an MVTU with the same ``SIMD`` (one vector per output pixel). Window positions outside the
image (``pad``) read as ``pad_value``.

Structure: a ring of ``R = K + max(K, S)`` image rows in one memory (``R * W * C / SIMD`` words of
``SIMD`` elements); a row is a contiguous block, so the writer's address is a plain counter. The
reader starts an output row once the rows it needs are complete (and, for the last output row of an
image, all the rows of that image), and releases the rows the next output row no longer needs.
``R`` leaves room for the next image's first ``K`` rows while the last output row of an image is
read, so back-to-back images do not stall at the boundary. Read pipeline: issue -> memory read ->
output register, stalled as a whole while the output register is full and not accepted.

Steady state (``valid`` and ``ready`` high): one output beat per cycle while the rows an output row
needs are in the ring, one input beat per cycle while the ring has a free row. Both sides also
wait on each other at the image boundary: the last output row of an image waits for all its rows,
and the next image's rows wait for the ring to release them. :meth:`SWGSpec.cycles` replays this
row by row (:func:`steady_cycles`) and is exact; ``max(H * W, OH * OW * K * K) * C / SIMD`` is
only its lower bound (with stride 2, a 6 x 5 image and K = 3 takes 41 cycles, not 36).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import DataType
from ...ir.graph import SlidingWindow
from ...ir.resources import Resources
from .._util import pack_words
from ..cost import ram_resources
from ..mvtu.unit import element_shape
from ..unit import ImageBlock

__all__ = ["SWGSpec", "SlidingWindowGenerator", "steady_cycles"]


def _check_count(name: str, v, lo: int = 1) -> None:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")


@dataclass(frozen=True, eq=False)
class SWGSpec(ImageBlock):
    """A sliding-window generator for ``node`` on images of ``in_shape`` ``(H, W, C)`` of ``dtype``.

    ``simd`` channels per beat, in and out; ``simd`` must divide ``C``.
    """

    node: SlidingWindow
    in_shape: tuple[int, int, int]
    dtype: DataType
    simd: int

    def __post_init__(self):
        if not isinstance(self.node, SlidingWindow):
            raise TypeError(f"node must be a SlidingWindow, not {self.node!r}")
        if not isinstance(self.dtype, DataType):
            raise TypeError(f"dtype must be a DataType, not {self.dtype!r}")
        shape = tuple(self.in_shape)
        if len(shape) != 3:
            raise ValueError(
                f"node {self.node.name!r}: in_shape must be (H, W, C), not {self.in_shape!r}"
            )
        for name, v in zip("HWC", shape):
            _check_count(f"node {self.node.name!r}: {name}", int(v))
        object.__setattr__(self, "in_shape", tuple(int(v) for v in shape))
        _check_count("SIMD", self.simd)
        if self.channels % self.simd:
            raise ValueError(
                f"SIMD ({self.simd}) must divide the channels C ({self.channels}) "
                f"of node {self.node.name!r}"
            )
        if self.node.pad >= self.node.kernel:
            raise ValueError(
                f"node {self.node.name!r}: pad ({self.node.pad}) must be less than the kernel "
                f"({self.node.kernel})"
            )
        self.node.infer(self.in_shape, self.dtype)  # raises with the node's name if it does not fit

    @property
    def channels(self) -> int:
        return self.in_shape[2]

    @property
    def channel_folds(self) -> int:
        return self.channels // self.simd

    @property
    def out_dims(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        return self.node.out_dim(h), self.node.out_dim(w)

    @property
    def lines(self) -> int:
        """Rows held by the ring buffer: ``K + max(K, S)``."""
        return self.node.kernel + max(self.node.kernel, self.node.stride)

    @property
    def in_beats(self) -> int:
        h, w, _ = self.in_shape
        return h * w * self.channel_folds

    @property
    def out_beats(self) -> int:
        oh, ow = self.out_dims
        return oh * ow * self.node.kernel**2 * self.channel_folds

    @property
    def elem_bits(self) -> int:
        return element_shape(self.dtype).width

    @property
    def out_size(self) -> int:
        """Elements of the windows of one image: ``OH * OW * K * K * C``."""
        oh, ow = self.out_dims
        return oh * ow * self.node.kernel**2 * self.channels

    def cycles(self) -> int:
        """Cycles per image in steady state, exactly (:func:`steady_cycles`); at least the larger
        of the input and output beats."""
        h, w, _ = self.in_shape
        n = self.node
        return steady_cycles(h, w, self.channel_folds, n.kernel, n.stride, n.pad, self.lines)

    def resources(self) -> Resources:
        """Estimate: the line buffer as a RAM, plus counters and the address arithmetic."""
        depth = self.lines * self.in_shape[1] * self.channel_folds
        width = self.simd * self.elem_bits
        counters = 8 * (depth.bit_length() + 8)
        return ram_resources(depth, width) + Resources(
            lut=counters + width, ff=counters + 2 * width
        )

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Windows of ``x`` ``(B, H, W, C)``: ``(B, OH, OW, K * K * C)``
        (``sw_reference.sliding_window``)."""
        return self.node.reference(x)

    def create(self) -> "SlidingWindowGenerator":
        return SlidingWindowGenerator(self)


def _row_plan(h: int, k: int, s: int, p: int) -> list[tuple[int, int]]:
    """Per output row: ``(rows of the image complete before it starts, rows released after)``,
    as the reader's ``need_hi`` and ``next_rbase - rbase``."""
    oh = (h + 2 * p - k) // s + 1
    plan = []
    for oy in range(oh):
        iy0 = oy * s - p
        last = oy == oh - 1
        need = h if last or iy0 + max(k, s) > h else iy0 + max(k, s)
        nxt = h if last else max(iy0 + s, 0)
        plan.append((need, nxt - max(iy0, 0)))
    return plan


def steady_cycles(h: int, w: int, cf: int, k: int, s: int, p: int, lines: int) -> int:
    """Steady-state cycles per image of the generator with ``valid`` and ``ready`` always high:
    ``h x w`` images of ``cf`` beats per pixel, kernel ``k``, stride ``s``, padding ``p``, a ring
    of ``lines`` rows.

    A replay of the RTL row by row, in cycles: the writer fills image row ``j`` (``w * cf``
    consecutive cycles) once row ``j - 1`` is written and at least ``j - lines + 1`` rows have been
    released; the reader issues the ``OW * K * K * cf`` beats of an output row on consecutive cycles
    from the cycle after the rows it needs are complete (and its previous row is issued), and
    releases rows the cycle after its last beat. The replay runs image after image until the state
    (relative to the last release) repeats: from then on, every image takes the same number of
    cycles (one image is always the period in practice; were it longer, the mean rounded up).
    """
    row_words = w * cf
    ow = (w + 2 * p - k) // s + 1
    beats = ow * k * k * cf
    plan = _row_plan(h, k, s, p)
    done: list[int] = []  # writer row j (over all images): cycle of its last word
    freed: list[int] = []  # reader row r: first cycle its release counts
    released: list[int] = []  # rows released once reader row r is done (cumulative)
    seen: dict[tuple, int] = {}
    ends: list[int] = []

    def free_at(rows: int) -> int:
        """The first cycle by which ``rows`` rows have been released."""
        return 0 if rows <= 0 else freed[bisect.bisect_left(released, rows)]

    # a bound on the transient far above the longest seen (65 images: 1 x 15 pixels, K 2, S 4)
    for image in range(lines * (row_words + beats + 2) + 8):
        for need, release in plan:
            last_needed = image * h + need - 1
            while len(done) <= last_needed:
                j = len(done)
                start = max(done[-1] + 1 if done else 0, free_at(j - lines + 1))
                done.append(start + row_words - 1)
            start = max(freed[-1] if freed else 0, done[last_needed] + 1)
            freed.append(start + beats)
            released.append((released[-1] if released else 0) + release)
        ref, base = freed[-1], (image + 1) * h
        ends.append(ref)
        keep = bisect.bisect_left(released, len(done) - lines + 1)  # the releases still awaited
        state = (
            len(done) - base,
            done[-1] - ref,
            tuple(d - ref for d in done[base:]),
            tuple((f - ref, r - base) for f, r in zip(freed[keep:], released[keep:])),
        )
        if state in seen:
            first = seen[state]
            return -(-(ends[image] - ends[first]) // (image - first))
        seen[state] = image
    raise AssertionError("the replay of the sliding-window generator found no period")


class SlidingWindowGenerator(wiring.Component):
    """The SWG of ``spec``: ports ``i`` and ``o``, ``SIMD`` elements per beat each."""

    def __init__(self, spec: SWGSpec):
        if not isinstance(spec, SWGSpec):
            raise TypeError(f"spec must be an SWGSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        layout = data.ArrayLayout(self.elem_shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        H, W, _ = s.in_shape
        K, S, P = s.node.kernel, s.node.stride, s.node.pad
        OH, OW = s.out_dims
        CF, R = s.channel_folds, s.lines
        row_words = W * CF
        word = s.simd * s.elem_bits

        m.submodules.lines = buf = memory.Memory(shape=unsigned(word), depth=R * row_words, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        # -- writer: rows into the ring, a linear address ---------------------------------------
        filled = Signal(range(R + 1))  # complete rows held and not yet released
        waddr = Signal(range(R * row_words))
        wpos = Signal(range(row_words))
        in_fire = Signal()
        row_done = Signal()
        m.d.comb += [
            self.i.ready.eq(filled < R),
            in_fire.eq(self.i.valid & self.i.ready),
            wr.addr.eq(waddr),
            wr.data.eq(self.i.payload.as_value()),
            wr.en.eq(in_fire),
            row_done.eq(in_fire & (wpos == row_words - 1)),
        ]
        with m.If(in_fire):
            m.d.sync += [
                waddr.eq(Mux(waddr == R * row_words - 1, 0, waddr + 1)),
                wpos.eq(Mux(wpos == row_words - 1, 0, wpos + 1)),
            ]

        # -- reader: output pixels, each window in (ky, kx, c) order ----------------------------
        coord = signed(max(H, W, K * S + K).bit_length() + 2)
        cf = Signal(range(CF))
        kx = Signal(range(K))
        ky = Signal(range(K))
        ox = Signal(range(OW))
        oy = Signal(range(OH))
        iy0 = Signal(coord, init=-P)  # oy * S - P
        ix0 = Signal(coord, init=-P)  # ox * S - P
        base_line = Signal(range(R))  # ring line of image row `rbase`
        rbase = Signal(coord)
        m.d.comb += rbase.eq(Mux(iy0 < 0, 0, iy0))
        last_row = Signal()
        m.d.comb += last_row.eq(oy == OH - 1)
        need_hi = Signal(coord)
        m.d.comb += need_hi.eq(Mux(last_row | (iy0 + max(K, S) > H), H, iy0 + max(K, S)))
        avail = Signal()
        m.d.comb += avail.eq(filled >= need_hi - rbase)

        out_valid = Signal()
        stall = Signal()
        issue = Signal()
        m.d.comb += [stall.eq(out_valid & ~self.o.ready), issue.eq(avail & ~stall)]

        iy = Signal(coord)
        ix = Signal(coord)
        is_pad = Signal()
        rel = Signal(coord)
        line = Signal(range(2 * R))
        m.d.comb += [
            iy.eq(iy0 + ky),
            ix.eq(ix0 + kx),
            is_pad.eq((iy < 0) | (iy >= H) | (ix < 0) | (ix >= W)),
            rel.eq(iy - rbase),
            line.eq(base_line + rel[: line.shape().width]),
        ]
        wrapped = Mux(line >= R, line - R, line)
        m.d.comb += [
            rd.addr.eq(wrapped * row_words + ix[: rd.addr.shape().width] * CF + cf),
            rd.en.eq(~stall),
        ]

        # release of rows at the end of an output row
        release = Signal()
        next_rbase = Signal(coord)
        m.d.comb += next_rbase.eq(Mux(last_row, H, Mux(iy0 + S < 0, 0, iy0 + S)))
        n_rel = Signal(range(R + 1))
        m.d.comb += n_rel.eq(Mux(release, next_rbase - rbase, 0))
        m.d.sync += filled.eq(filled + row_done - n_rel)

        with m.If(issue):
            with m.If(cf == CF - 1):
                m.d.sync += cf.eq(0)
                with m.If(kx == K - 1):
                    m.d.sync += kx.eq(0)
                    with m.If(ky == K - 1):
                        m.d.sync += ky.eq(0)
                        with m.If(ox == OW - 1):
                            m.d.sync += [ox.eq(0), ix0.eq(-P)]
                            m.d.comb += release.eq(1)
                            moved = Signal(range(2 * R))
                            m.d.comb += moved.eq(
                                base_line + (next_rbase - rbase)[: moved.shape().width]
                            )
                            m.d.sync += base_line.eq(Mux(moved >= R, moved - R, moved))
                            with m.If(last_row):
                                m.d.sync += [oy.eq(0), iy0.eq(-P)]
                            with m.Else():
                                m.d.sync += [oy.eq(oy + 1), iy0.eq(iy0 + S)]
                        with m.Else():
                            m.d.sync += [ox.eq(ox + 1), ix0.eq(ix0 + S)]
                    with m.Else():
                        m.d.sync += ky.eq(ky + 1)
                with m.Else():
                    m.d.sync += kx.eq(kx + 1)
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
