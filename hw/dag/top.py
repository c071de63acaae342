"""The stitched accelerator of a DAG (issue 19): one unit per graph node, connected along the
graph's edges, with a stream fork where a node is read twice, a FIFO where the schedule puts one
(the shortcut of a residual block), width converters where a producer's elements per beat differ
from its consumer's, and the label select after the last node.

The ports and their stream format are :class:`lowbit.hw.top.Accelerator`'s (``i``: the image in
raster order, channels last, the first unit's ``SIMD`` elements per beat; ``o``: one beat per
image, ``{label, scores}``), so the cocotb testbench and the fast path drive either top; weights
are on chip (no ``ws`` ports).

:func:`dag_stitching` lists what the top adds around the units (forks, FIFOs, converters, the
label select) as specs, for the mapper's cycles and resources; :class:`DagAccelerator` builds
exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from ...ir.datatypes import DataType
from ...ir.graph import GRAPH_INPUT, Add, DepthwiseConv, IntegerGraph, MatMulThreshold
from ..codec import StreamFormat
from ..mvtu.spec import MVTUSpec
from ..registry import FAMILIES
from ..stream.dwc import StreamWidthConverter, WidthConverterSpec
from ..stream.fifo import FIFOSpec
from ..stream.label import LabelSelectSpec
from . import DAG_FAMILIES
from .branch import AddSpec, ForkSpec
from .depthwise import DepthwiseSpec

__all__ = ["DagAccelerator", "DagEdge", "dag_stitching", "dag_stream_format", "dag_unit_spec"]


@dataclass(frozen=True)
class DagEdge:
    """The stream from ``producer`` (a node's name, ``""`` the graph input) to input ``slot`` of
    node ``consumer`` (its index), through ``fork`` (``None``, or ``(fork name, "a" | "b")``), a
    FIFO of ``fifo`` beats when not ``None``, then a width converter when not ``None``."""

    producer: str
    consumer: int
    slot: int
    fork: tuple[str, str] | None
    fifo: FIFOSpec | None
    converter: WidthConverterSpec | None


def _in_port(node, slot: int) -> str:
    return ("a", "b")[slot] if isinstance(node, Add) else "i"


def dag_stitching(
    graph: IntegerGraph, specs: Sequence, fifo_depths: Mapping[tuple[int, int], int] | None = None
) -> tuple[dict[str, ForkSpec], list[DagEdge], LabelSelectSpec]:
    """What the DAG top adds around the unit ``specs`` (one per node of ``graph``): the forks by
    name, every edge with its FIFO (``fifo_depths[(consumer, slot)]`` beats) and width converter,
    and the label select."""
    specs = tuple(specs)
    fifo_depths = dict(fifo_depths or {})
    if len(specs) != len(graph.nodes):
        raise ValueError(
            f"specs must hold one unit spec per node ({len(graph.nodes)}), not {len(specs)}"
        )
    for (i, slot), d in fifo_depths.items():
        if not 0 <= i < len(graph.nodes) or not 0 <= slot < len(graph.inputs_of(i)):
            raise ValueError(f"fifo_depths: node {i} has no input {slot}")
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"fifo_depths[{(i, slot)}] must be a positive integer, not {d!r}")
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    readers: dict[str, list[tuple[int, int]]] = {}
    for i in range(len(graph.nodes)):
        for slot, p in enumerate(graph.inputs_of(i)):
            readers.setdefault(p, []).append((i, slot))
    forks: dict[str, ForkSpec] = {}
    edges: list[DagEdge] = []
    for p, reads in readers.items():
        if p == GRAPH_INPUT:
            dtype: DataType = graph.input_dtype
            i0, _ = reads[0]
            elems, bits, size = specs[i0].in_elems, specs[i0].in_bits, graph.input_size
        else:
            k = index[p]
            dtype, elems = graph.output_dtype(k), specs[k].out_elems
            bits, size = specs[k].out_bits, specs[k].out_size
        if len(reads) > 2:
            raise ValueError(
                f"node {p or 'input'!r} is read {len(reads)} times; the fork takes two readers"
            )
        fork = None
        if len(reads) == 2:
            fork = f"fork_{p or 'input'}"
            forks[fork] = ForkSpec(dtype, elems, size // elems)
        for n, (i, slot) in enumerate(reads):
            depth = fifo_depths.get((i, slot))
            fifo = None if depth is None else FIFOSpec(dtype, elems, depth, size // elems)
            want = specs[i].in_elems
            conv = (
                None
                if want == elems
                else WidthConverterSpec(bits, elems, want, signed=dtype.signed, size=size)
            )
            edges.append(DagEdge(p, i, slot, None if fork is None else (fork, "ab"[n]), fifo, conv))
    return forks, edges, LabelSelectSpec.after(specs[-1])


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
            self.units[first[0].consumer], _in_port(graph.nodes[first[0].consumer], first[0].slot)
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
            dest = getattr(self.units[e.consumer], _in_port(node, e.slot))
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


def dag_unit_spec(graph: IntegerGraph, i: int, *, pe: int, simd: int):
    """The unit spec of node ``i`` of ``graph`` folded by ``pe``/``simd``: an MVTU for a matrix
    product (``pe`` rows, ``simd`` columns per cycle), the depthwise engine or the adder/joiner
    with ``pe`` channels per beat, a block (sliding window, pools, thresholds, the global average
    pool) with ``simd`` channels per beat in and out (its ``pe`` must equal ``simd``)."""
    node = graph.nodes[i]
    shape, dtype = graph.input_shape_of(i), _input_dtype(graph, i)
    if isinstance(node, MatMulThreshold):
        return MVTUSpec(node, pe=pe, simd=simd)
    if isinstance(node, (DepthwiseConv, Add)):
        if pe != simd:
            raise ValueError(
                f"node {node.name!r}: PE ({pe}) must equal SIMD ({simd}) for a "
                f"{type(node).__name__}"
            )
        return (
            DepthwiseSpec(node, pe)
            if isinstance(node, DepthwiseConv)
            else (AddSpec.from_node(node, pe))
        )
    families = FAMILIES.get(type(node)) or DAG_FAMILIES.get(type(node))
    if families is None:
        raise TypeError(f"no hardware for node {node.name!r} of type {type(node).__name__}")
    if pe != simd:
        raise ValueError(
            f"node {node.name!r}: PE ({pe}) must equal SIMD ({simd}) for a {type(node).__name__} "
            "(channels per beat in and out)"
        )
    return families[0](node, tuple(shape), dtype, simd)


def _input_dtype(graph: IntegerGraph, i: int) -> DataType:
    p = graph.inputs_of(i)[0]
    if p == GRAPH_INPUT:
        return graph.input_dtype
    return graph.output_dtype([n.name for n in graph.nodes].index(p))
