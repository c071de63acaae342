"""The streaming 1-D max-pool's component (spec: :class:`~lowbit.hw.dag.maxpool1d.MaxPool1DSpec`).

The 2-D pool's structure (:class:`lowbit.hw.stream.pool.StreamingMaxPool`) with one position in
place of an image row, built by the same helpers: counters for the channel fold, the position in
its stride (``kx``), the window (``ox``) and the position in the sequence
(:func:`~lowbit.hw.stream.pool.window_axis`); the window's partial maxima in a ``C / SIMD``-word
memory, read (asynchronously) and written every beat, the output register taking the merged word
on the window's last position (:func:`~lowbit.hw.stream.pool.window_datapath`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .._util import wrap_counter
from ..mvtu.unit import element_shape
from ..stream.pool import window_axis, window_datapath
from .maxpool1d import MaxPool1DSpec

__all__ = ["StreamingMaxPool1D"]


class StreamingMaxPool1D(wiring.Component):
    """The pool of ``spec``: ports ``i`` and ``o``, ``SIMD`` elements per beat each."""

    def __init__(self, spec: MaxPool1DSpec):
        if not isinstance(spec, MaxPool1DSpec):
            raise TypeError(f"spec must be a MaxPool1DSpec, not {spec!r}")
        self.spec = spec
        self.elem_shape = element_shape(spec.dtype)
        layout = data.ArrayLayout(self.elem_shape, spec.simd)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        L, K, S, OL, CF = s.length, s.node.kernel, s.stride, s.out_length, s.channel_folds
        cf = Signal(range(CF), name="cf")
        kx = Signal(range(S), name="kx")
        ox = Signal(range(OL + 1), name="ox")
        x = Signal(range(L), name="x")
        in_fire = window_datapath(
            m,
            self,
            depth=CF,
            addr=cf,
            first=kx == 0,
            last=kx == K - 1,
            inside=(ox < OL) & (kx < K),
        )

        # position: cf -> x (kx, ox), ox stopping at OL past the last window
        x_en = in_fire & wrap_counter(m, cf, CF, in_fire)
        window_axis(m, x_en, x, L, kx, ox, S, last=OL)
        return m
