"""The stitched accelerator of a DAG (issue 19): one unit per graph node, connected along the
graph's edges, with a stream fork where a node is read twice, a FIFO where the schedule puts one
(the shortcut of a residual block), width converters where a producer's elements per beat differ
from its consumer's, and the label select after the last node.

The ports and their stream format are :class:`lowbit.hw.top.Accelerator`'s (``i``: the image in
raster order, channels last, the first unit's ``SIMD`` elements per beat; ``o``: one beat per
image, ``{label, scores}``), so the cocotb testbench and the fast path drive either top; weights
are on chip (no ``ws`` ports).

:func:`~lowbit.hw.dag.stitch.dag_stitching` lists what the top adds around the units (forks,
FIFOs, converters, the label select) as specs, for the mapper's cycles and resources;
:class:`DagAccelerator` builds exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ...ir.graph import GRAPH_INPUT, IntegerGraph, MatMulThreshold
from ..codec import StreamFormat
from ..stream.dwc import StreamWidthConverter
from .stitch import dag_stitching, in_port

__all__ = ["DagAccelerator", "dag_stream_format"]


class DagAccelerator(wiring.Component):
    """The accelerator of ``graph`` with the unit ``specs`` (one per node, in graph order) and the
    FIFOs ``fifo_depths`` ``{(node index, input slot): beats}`` (module docstring)."""

    def __init__(
        self,
        graph: IntegerGraph,
        specs: Sequence,
        fifo_depths: Mapping[tuple[int, int], int] | None = None,
    ):
        if not isinstance(graph, IntegerGraph):
            raise TypeError(f"graph must be an IntegerGraph, not {graph!r}")
        specs = tuple(specs)
        last = graph.nodes[-1]
        if not isinstance(last, MatMulThreshold) or last.thresholds is not None:
            raise ValueError(
                f"the last node {last.name!r} must be a matrix product emitting scores"
            )
        self.graph, self.specs = graph, specs
        self.forks, self.edges, self.label_spec = dag_stitching(graph, specs, fifo_depths)
        self.units = [s.create() for s in specs]
        self.label = self.label_spec.create()
        first = [e for e in self.edges if e.producer == GRAPH_INPUT]
        self.input_elems = specs[first[0].consumer].in_elems
        shape = getattr(
            self.units[first[0].consumer], in_port(graph.nodes[first[0].consumer], first[0].slot)
        ).payload.shape()
        super().__init__(
            {
                "i": In(stream.Signature(shape)),
                "o": Out(stream.Signature(self.label.result_layout)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        g = self.graph
        for n, unit in zip(g.nodes, self.units):
            m.submodules[n.name] = unit
        m.submodules.label = self.label
        forks = {}
        for name, spec in self.forks.items():
            m.submodules[name] = forks[name] = spec.create()
        sources = {}  # producer -> its output stream (before any fork)
        sources[GRAPH_INPUT] = flipped(self.i)
        for k, n in enumerate(g.nodes):
            sources[n.name] = self.units[k].o
        fed = set()
        for e in self.edges:
            if e.fork is None:
                out = sources[e.producer]
            else:
                fork = forks[e.fork[0]]
                if e.fork[0] not in fed:
                    connect(m, sources[e.producer], fork.i)
                    fed.add(e.fork[0])
                out = getattr(fork, e.fork[1])
            tag = f"{e.consumer}_{e.slot}"
            if e.fifo is not None:
                m.submodules[f"fifo{tag}"] = q = e.fifo.create()
                connect(m, out, q.i)
                out = q.o
            node = g.nodes[e.consumer]
            dest = getattr(self.units[e.consumer], in_port(node, e.slot))
            if e.converter is not None:
                shape = out.payload.shape().elem_shape
                dwc = StreamWidthConverter(shape, n_in=e.converter.n_in, n_out=e.converter.n_out)
                m.submodules[f"dwc{tag}"] = dwc
                connect(m, out, dwc.i)
                out = dwc.o
            ea, eb = out.payload.shape().elem_shape, dest.payload.shape().elem_shape
            if ea != eb:
                raise ValueError(
                    f"node {node.name!r} takes elements of {eb}, but "
                    f"{e.producer or 'the input'!r} produces {ea}"
                )
            connect(m, out, dest)
        connect(m, self.units[-1].o, self.label.i)
        connect(m, self.label.o, flipped(self.o))
        return m


def dag_stream_format(acc: DagAccelerator) -> StreamFormat:
    """The :class:`~lowbit.hw.codec.StreamFormat` of a DAG accelerator's ports (as
    :func:`lowbit.hw.top.stream_format`)."""
    shape = acc.i.payload.shape()
    return StreamFormat(
        input_size=acc.graph.input_size,
        simd=shape.length,
        in_bits=shape.elem_shape.width,
        classes=acc.label_spec.classes,
        score_bits=acc.units[-1].o.payload.shape().elem_shape.width,
    )
