"""Amaranth component of :class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec`: input FIFO, adapter,
sparse engine in raw-accumulator mode, MultiThreshold unit, output FIFO (see that module for the
structure)."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect

from ...ir.datatypes import BIPOLAR
from ..mvtu.unit import element_shape, matmul_ports
from .layer_spec import SparseLayerSpec

__all__ = ["SparseLayer"]


class SparseLayer(wiring.Component):
    """``i``: ``lanes`` input elements per beat; ``o``: ``pes`` output elements per beat (the node's
    activations, or its scores when it has no thresholds)."""

    def __init__(self, spec: SparseLayerSpec):
        if not isinstance(spec, SparseLayerSpec):
            raise TypeError(f"spec must be a SparseLayerSpec, not {spec!r}")
        self.spec = spec
        node = spec.node
        self.in_shape = element_shape(node.input_dtype)
        self.out_shape = element_shape(node.output_dtype)
        super().__init__(matmul_ports(spec))

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        in_fifo, out_fifo = s.fifo_specs()
        m.submodules.in_fifo = fin = in_fifo.create()
        m.submodules.out_fifo = fout = out_fifo.create()
        m.submodules.engine = engine = s.engine.create()
        connect(m, wiring.flipped(self.i), fin.i)
        bipolar = s.node.input_dtype is BIPOLAR
        for lane in range(s.lanes):
            x = fin.o.payload[lane]
            m.d.comb += engine.i.payload[lane].eq(2 * x - 1 if bipolar else x)
        m.d.comb += [engine.i.valid.eq(fin.o.valid), fin.o.ready.eq(engine.i.ready)]
        tspec = s.threshold_spec()
        if tspec is None:
            for p in range(s.pes):
                m.d.comb += fout.i.payload[p].eq(engine.o.payload[p])
            m.d.comb += [fout.i.valid.eq(engine.o.valid), engine.o.ready.eq(fout.i.ready)]
        else:
            m.submodules.thresholds = tu = tspec.create()
            for p in range(s.pes):
                m.d.comb += tu.i.payload[p].eq(engine.o.payload[p])
            m.d.comb += [tu.i.valid.eq(engine.o.valid), engine.o.ready.eq(tu.i.ready)]
            connect(m, tu.o, fout.i)
        connect(m, fout.o, wiring.flipped(self.o))
        return m
