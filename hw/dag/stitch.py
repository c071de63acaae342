"""What the DAG accelerator (:class:`lowbit.hw.dag.top.DagAccelerator`) holds, without Amaranth:
the unit spec of every node (:func:`dag_unit_spec`), and the forks, FIFOs, width converters and
label select it adds around them (:func:`dag_stitching`), for the mapper's cycles and resources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...ir.datatypes import DataType
from ...ir.graph import GRAPH_INPUT, Add, DepthwiseConv, IntegerGraph, MatMulThreshold
from ..mvtu.spec import MVTUSpec
from ..registry import FAMILIES
from ..stream.dwc import WidthConverterSpec
from ..stream.fifo import FIFOSpec
from ..stream.label import LabelSelectSpec
from . import DAG_FAMILIES
from .branch import AddSpec, ForkSpec
from .depthwise import DepthwiseSpec

__all__ = ["DagEdge", "dag_stitching", "dag_unit_spec", "in_port"]


@dataclass(frozen=True)
class DagEdge:
    """The stream from ``producer`` (a node's name, ``""`` the graph input) to input ``slot`` of
    node ``consumer`` (its index), through ``fork`` (``None``, or ``(fork name, "a" | "b")``), a
    FIFO of ``fifo`` beats when not ``None``, then a width converter when not ``None``. The fork's,
    the FIFO's and the converter's sizes are a whole image's output of the producer, so their
    ``cycles_per_image()`` are per image."""

    producer: str
    consumer: int
    slot: int
    fork: tuple[str, str] | None
    fifo: FIFOSpec | None
    converter: WidthConverterSpec | None


def in_port(node, slot: int) -> str:
    """The name of the port of ``node``'s unit that takes its input ``slot``."""
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
        else:  # the size of a whole image's output (an MVTU's out_size is one vector's)
            k = index[p]
            dtype, elems = graph.output_dtype(k), specs[k].out_elems
            bits, size = specs[k].out_bits, math.prod(graph.output_shape(k))
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
