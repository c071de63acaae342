"""Streaming pools: max-pool (OR on bits, max on unsigned values) and the global accumulate-pool.

Both take an image in raster order, channels last, ``SIMD`` channels of one pixel per beat (the
output of an MVTU with ``PE = SIMD``), accept one beat per cycle, and keep their partial results in
a small memory with an asynchronous read port (distributed RAM), read-modify-written every beat:

* :class:`StreamingMaxPool` — ``K x K`` windows with stride ``K`` (non-overlapping, no padding; rows
  and columns past ``OH * K`` / ``OW * K`` are dropped). The memory holds one output row's partial
  maxima (``OW * C / SIMD`` words). An output beat leaves on the last pixel of each window, so the
  output is in raster order, ``SIMD`` channels per beat.
* :class:`GlobalAccPool` — the exact per-channel sum over all pixels (bipolar bits count as
  ``+-1``); ``C / SIMD`` output beats after the last pixel of each image.

Cycles per image: ``H * W * C / SIMD`` (one input beat per cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...ir.datatypes import DataType, Kind
from ...ir.graph import GlobalAccPool as GlobalAccPoolNode
from ...ir.graph import MaxPool
from ...ir.resources import Resources
from .._util import wrap_counter
from ..cost import ram_resources
from ..mvtu.unit import element_shape
from ..unit import ImageBlock

__all__ = [
    "MaxPoolSpec",
    "StreamingMaxPool",
    "AccPoolSpec",
    "GlobalAccPool",
    "window_datapath",
    "window_axis",
]


def _check_image_spec(spec, node_type) -> None:
    if not isinstance(spec.node, node_type):
        raise TypeError(f"node must be a {node_type.__name__}, not {spec.node!r}")
    if not isinstance(spec.dtype, DataType):
        raise TypeError(f"dtype must be a DataType, not {spec.dtype!r}")
    shape = tuple(int(v) for v in spec.in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"node {spec.node.name!r}: in_shape must be (H, W, C) positive, not {spec.in_shape!r}"
        )
    object.__setattr__(spec, "in_shape", shape)
    if not isinstance(spec.simd, int) or isinstance(spec.simd, bool):
        raise TypeError(f"SIMD must be an integer, not {spec.simd!r}")
    if spec.simd < 1 or shape[2] % spec.simd:
        raise ValueError(
            f"SIMD ({spec.simd}) must divide the channels C ({shape[2]}) of node {spec.node.name!r}"
        )
    spec.node.infer(shape, spec.dtype)


@dataclass(frozen=True, eq=False)
class MaxPoolSpec(ImageBlock):
    """Streaming max-pool of ``node`` (stride = kernel) on ``in_shape`` ``(H, W, C)``, ``simd`` per
    beat."""

    node: MaxPool
    in_shape: tuple[int, int, int]
    dtype: DataType
    simd: int

    def __post_init__(self):
        _check_image_spec(self, MaxPool)
        if self.node.stride != self.node.kernel:
            raise ValueError(
                f"node {self.node.name!r}: the streaming max-pool needs stride == kernel "
                f"({self.node.kernel}), not stride {self.node.stride}"
            )

    @property
    def channel_folds(self) -> int:
        return self.in_shape[2] // self.simd

    @property
    def out_dims(self) -> tuple[int, int]:
        h, w, _ = self.in_shape
        return h // self.node.kernel, w // self.node.kernel

    @property
    def elem_bits(self) -> int:
        return element_shape(self.dtype).width

    @property
    def out_size(self) -> int:
        oh, ow = self.out_dims
        return oh * ow * self.in_shape[2]

    def cycles(self) -> int:
        h, w, _ = self.in_shape
        return h * w * self.channel_folds

    def resources(self) -> Resources:
        depth = self.out_dims[1] * self.channel_folds
        width = self.simd * self.elem_bits
        return ram_resources(depth, width) + Resources(lut=2 * width + 40, ff=width + 40)

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self) -> "StreamingMaxPool":
        return StreamingMaxPool(self)


class StreamingMaxPool(wiring.Component):
    def __init__(self, spec: MaxPoolSpec):
        if not isinstance(spec, MaxPoolSpec):
            raise TypeError(f"spec must be a MaxPoolSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        layout = data.ArrayLayout(self.elem_shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        H, W, _ = s.in_shape
        K = s.node.kernel
        OH, OW = s.out_dims
        CF = s.channel_folds
        cf, kx, ox, ky, oy = (
            Signal(range(n), name=nm)
            for n, nm in (
                (CF, "cf"),
                (K, "kx"),
                (max(OW + 1, 2), "ox"),
                (K, "ky"),
                (max(OH + 1, 2), "oy"),
            )
        )
        x, y = Signal(range(W), name="x"), Signal(range(H), name="y")
        in_fire = window_datapath(
            m,
            self,
            depth=OW * CF,
            addr=ox * CF + cf,
            first=(kx == 0) & (ky == 0),
            last=(kx == K - 1) & (ky == K - 1),
            inside=(ox < OW) & (oy < OH),
        )

        # position: cf -> x (kx, ox) -> y (ky, oy)
        x_en = in_fire & wrap_counter(m, cf, CF, in_fire)
        x_wrap = window_axis(m, x_en, x, W, kx, ox, K)
        window_axis(m, x_en & x_wrap, y, H, ky, oy, K)
        return m


def window_datapath(m: Module, pool, *, depth: int, addr, first, last, inside) -> Signal:
    """The per-beat datapath of a streaming max-pool ``pool`` (a component with stream ports ``i``
    and ``o`` of ``SIMD`` elements, ``spec`` and ``elem_shape``), shared by
    :class:`StreamingMaxPool` and :class:`lowbit.hw.dag.maxpool1d_unit.StreamingMaxPool1D`.

    The windows' partial maxima are a ``depth``-word memory (asynchronous read) at ``addr``. Each
    input beat is merged into the word read there, element by element: the OR of bipolar bits, the
    larger unsigned value; on the window's ``first`` position the beat itself. The merged word is
    written back, or on the window's ``last`` position taken by the output register; beats not
    ``inside`` a window (rows and columns past the last whole window) are dropped. Returns the
    input handshake (``valid & ready``), which advances the caller's position counters.
    """
    s = pool.spec
    m.submodules.part = part = memory.Memory(
        shape=data.ArrayLayout(pool.elem_shape, s.simd), depth=depth, init=[]
    )
    wr = part.write_port()
    rd = part.read_port(domain="comb")
    out_valid = Signal()
    in_fire = Signal()
    m.d.comb += [
        pool.i.ready.eq(~out_valid | pool.o.ready),
        in_fire.eq(pool.i.valid & pool.i.ready),
        pool.o.valid.eq(out_valid),
    ]
    m.d.comb += rd.addr.eq(addr)
    merged = Signal.like(pool.i.payload)
    for j in range(s.simd):
        a, b = rd.data[j], pool.i.payload[j]
        if s.dtype.kind is Kind.BIPOLAR:
            m.d.comb += merged[j].eq(Mux(first, b, a | b))
        else:
            m.d.comb += merged[j].eq(Mux(first | (b > a), b, a))
    m.d.comb += [wr.addr.eq(rd.addr), wr.data.eq(merged), wr.en.eq(in_fire & inside & ~last)]
    with m.If(in_fire & inside & last):
        m.d.sync += [out_valid.eq(1), pool.o.payload.eq(merged)]
    with m.Elif(pool.o.ready):
        m.d.sync += out_valid.eq(0)
    return in_fire


def window_axis(m: Module, en, pos: Signal, size: int, k: Signal, o: Signal, step: int, last=None):
    """A pool's position along one axis, advanced on ``en``: ``pos`` counts ``0 .. size - 1``,
    ``k`` the position in the current step of ``step`` positions and ``o`` the step's (window's)
    index, both back to 0 when ``pos`` wraps; ``o`` stops at ``last`` when given. Returns the wrap
    condition of ``pos``."""
    wrap = wrap_counter(m, pos, size, en)
    with m.If(en):
        with m.If(wrap):
            m.d.sync += [k.eq(0), o.eq(0)]
        with m.Elif(k == step - 1):
            m.d.sync += [k.eq(0), o.eq(o + 1 if last is None else Mux(o == last, last, o + 1))]
        with m.Else():
            m.d.sync += k.eq(k + 1)
    return wrap


@dataclass(frozen=True, eq=False)
class AccPoolSpec(ImageBlock):
    """Global accumulate-pool of ``node`` on ``in_shape`` ``(H, W, C)`` of ``dtype``, ``simd`` per
    beat."""

    node: GlobalAccPoolNode
    in_shape: tuple[int, int, int]
    dtype: DataType
    simd: int

    def __post_init__(self):
        _check_image_spec(self, GlobalAccPoolNode)

    @property
    def channel_folds(self) -> int:
        return self.in_shape[2] // self.simd

    @property
    def out_dtype(self) -> DataType:
        return self.node.infer(self.in_shape, self.dtype)[1]

    @property
    def elem_bits(self) -> int:
        return element_shape(self.dtype).width

    @property
    def out_bits(self) -> int:
        return element_shape(self.out_dtype).width

    @property
    def out_size(self) -> int:
        return self.in_shape[2]

    def cycles(self) -> int:
        h, w, _ = self.in_shape
        return h * w * self.channel_folds

    def resources(self) -> Resources:
        width = self.simd * self.out_dtype.bits
        return ram_resources(self.channel_folds, width) + Resources(
            lut=2 * width + 40, ff=width + 40
        )

    def reference(self, x: np.ndarray) -> np.ndarray:
        return self.node.reference(x)

    def create(self) -> "GlobalAccPool":
        return GlobalAccPool(self)


class GlobalAccPool(wiring.Component):
    def __init__(self, spec: AccPoolSpec):
        if not isinstance(spec, AccPoolSpec):
            raise TypeError(f"spec must be an AccPoolSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        self.out_shape = element_shape(spec.out_dtype)
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self.elem_shape, spec.simd))),
                "o": Out(stream.Signature(data.ArrayLayout(self.out_shape, spec.simd))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        H, W, _ = s.in_shape
        CF = s.channel_folds
        m.submodules.sums = sums = memory.Memory(
            shape=data.ArrayLayout(self.out_shape, s.simd), depth=CF, init=[]
        )
        wr = sums.write_port()
        rd = sums.read_port(domain="comb")
        cf = Signal(range(CF))
        pix = Signal(range(H * W))
        out_valid = Signal()
        in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(~out_valid | self.o.ready),
            in_fire.eq(self.i.valid & self.i.ready),
            self.o.valid.eq(out_valid),
            rd.addr.eq(cf),
        ]
        first, last = pix == 0, pix == H * W - 1
        total = Signal.like(rd.data)
        for j in range(s.simd):
            v = self.i.payload[j]
            value = 2 * v - 1 if s.dtype.kind is Kind.BIPOLAR else v
            m.d.comb += total[j].eq(Mux(first, 0, rd.data[j]) + value)
        m.d.comb += [wr.addr.eq(cf), wr.data.eq(total), wr.en.eq(in_fire & ~last)]
        with m.If(in_fire & last):
            m.d.sync += [out_valid.eq(1), self.o.payload.eq(total)]
        with m.Elif(self.o.ready):
            m.d.sync += out_valid.eq(0)
        cf_wrap = wrap_counter(m, cf, CF, in_fire)
        wrap_counter(m, pix, H * W, in_fire & cf_wrap)
        return m
