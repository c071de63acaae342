"""The component of the global average pool (spec: :mod:`lowbit.hw.dag.gap`)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from .gap import GlobalAvgPoolSpec

__all__ = ["GlobalAvgPoolUnit"]


class GlobalAvgPoolUnit(wiring.Component):
    """Ports ``i`` (the image) and ``o`` (the thresholded averages)."""

    def __init__(self, spec: GlobalAvgPoolSpec):
        if not isinstance(spec, GlobalAvgPoolSpec):
            raise TypeError(f"spec must be a GlobalAvgPoolSpec, not {spec!r}")
        self.spec = spec
        self.pool = spec.pool.create()
        self.thr = spec.threshold.create()
        super().__init__(
            {
                "i": In(stream.Signature(self.pool.i.payload.shape())),
                "o": Out(stream.Signature(self.thr.o.payload.shape())),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.pool = self.pool
        m.submodules.threshold = self.thr
        connect(m, flipped(self.i), self.pool.i)
        connect(m, self.pool.o, self.thr.i)
        connect(m, self.thr.o, flipped(self.o))
        return m
