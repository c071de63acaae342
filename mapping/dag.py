"""Mapping a DAG (issue 19): a folding for every node, the branch FIFOs, the cycle model.

:func:`map_dag` gives every node of a graph that is not a chain (or holds issue 19's node types)
its cheapest folding within one target of cycles per image (the same target for every node, so
the branches of a residual block run at the join's rate: a branch faster than the join would be
area spent for nothing), and every residual join a FIFO on its shortcut. The result is a
:class:`DagSchedule` (JSON, editable, re-applied by :meth:`DagSchedule.apply`).

Cycle model: cycles per image are the slowest unit's, over the nodes' units and everything the
top adds (forks, FIFOs, width converters, the label select:
:func:`lowbit.hw.dag.stitch.dag_stitching`), each unit's ``cycles_per_image`` with its vectors per
image (output pixels of a matrix product, a depthwise engine or a join). Steady state. Measured on
the fast path: exact on the zoo's MobileNet and ResNet (2,304 == 2,304).

The shortcut FIFO: of a join's two inputs, the shortcut is the one with fewer units since the fork
they share. Its FIFO goes on the shortcut's first edge, right after the fork
(:func:`shortcut_fifo_edges`), so that no unit of the shortcut (a strided projection's window
holds rows back) stalls the fork and with it the long branch. It holds two images of the fork's
beats, and at least :func:`~lowbit.mapping.branch_fifo.min_branch_fifo_depth` of the long branch
at full rate, its latency the sum of its units' ``latency()`` (:func:`branch_latency`). (With the
floor of a two-cycle branch instead, a 4-channel residual block of one beat per image got a
3-beat FIFO behind a 3-cycle product, and measured 5 cycles per 4 images against the mapper's 1
per image: :func:`~lowbit.mapping.branch_fifo.residual_cycles` of a 3-cycle branch and 3 beats.)
Two images, because the long branch of a residual block holds whole rows in its sliding windows
before it gives a pixel (its *lead*, :func:`~lowbit.mapping.branch_fifo.deadlocks`), and each
window's last output row waits for its whole image, so with two windows in series the lead exceeds
one image. With one image, the zoo's ResNet measured 2,327 cycles per image against 2,304: block 2's
shortcut FIFO (512 beats) filled, the fork after block 1's join stalled 23 cycles per image, and
every product before it runs at exactly the target, so the stall was never made up (Amaranth
simulation of the top, handshakes per unit). With two images it measures 2,304. A bound, not the
minimum.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .. import LowbitError
from ..boards import Board
from ..hw.dag import DAG_FAMILIES
from ..hw.dag.stitch import dag_stitching, dag_unit_spec
from ..hw.mvtu.spec import divisors
from ..hw.registry import FAMILIES
from ..ir.graph import (
    GRAPH_INPUT,
    Add,
    DepthwiseConv,
    IntegerGraph,
    MatMulThreshold,
    SlidingWindow,
    SlidingWindow1D,
)
from ..ir.resources import Resources
from .branch_fifo import MIN_BRANCH_LATENCY, min_branch_fifo_depth

__all__ = [
    "DagSchedule",
    "NodeFolding",
    "check_dag_mappable",
    "map_dag",
    "shortcut_fifo_edges",
    "shortcut_inputs",
    "branch_latency",
    "vectors_of",
]

DAG_NODE_TYPES: tuple[type, ...] = (*FAMILIES, *DAG_FAMILIES)
"""The node types the DAG top builds: the chain's and issue 19's (the depthwise engine, the 1-D
window and max-pool, the adder/joiner, the global average pool)."""


def check_dag_mappable(graph: IntegerGraph, what: str) -> None:
    """Refuse, naming the node, what the DAG top cannot build: a node type without its unit
    (:data:`DAG_NODE_TYPES`), a node read more than twice (the fork has two outputs), a last node
    that is not a matrix product giving scores."""
    for node in graph.nodes:
        name: str = node.name
        if not isinstance(node, DAG_NODE_TYPES):
            raise LowbitError(
                f"{what}: node {name!r} ({type(node).__name__}) has no hardware in a DAG "
                f"yet; the DAG top builds {', '.join(t.__name__ for t in DAG_NODE_TYPES)} nodes"
            )
        if len(graph.consumers(name)) > 2:
            raise LowbitError(
                f"{what}: node {name!r} is read {len(graph.consumers(name))} times; "
                "the stream fork takes two readers"
            )
    last = graph.nodes[-1]
    if not isinstance(last, MatMulThreshold) or last.thresholds is not None:
        raise LowbitError(
            f"{what}: the last node {last.name!r} must be a matrix product emitting scores"
        )


@dataclass(frozen=True)
class NodeFolding:
    """``pe``/``simd`` of node ``name`` (equal for a block)."""

    name: str
    pe: int
    simd: int


@dataclass(frozen=True)
class DagSchedule:
    """The foldings of a DAG's nodes (graph order) and its FIFOs ``(node, input slot, beats)``."""

    nodes: tuple[NodeFolding, ...]
    fifos: tuple[tuple[str, int, int], ...] = ()

    def apply(self, graph: IntegerGraph) -> tuple[list, dict[tuple[int, int], int]]:
        """The unit specs (graph order) and the FIFO depths ``{(node index, slot): beats}``."""
        names = [n.name for n in graph.nodes]
        if [f.name for f in self.nodes] != names:
            raise LowbitError(
                f"the schedule's nodes {[f.name for f in self.nodes][:3]}... are not the graph's "
                f"{names[:3]}... (in graph order)"
            )
        specs = []
        for i, f in enumerate(self.nodes):
            try:
                specs.append(dag_unit_spec(graph, i, pe=f.pe, simd=f.simd))
            except (TypeError, ValueError) as e:
                raise LowbitError(f"schedule: node {f.name!r}: {e}") from None
        fifos = {}
        for name, slot, depth in self.fifos:
            if name not in names:
                raise LowbitError(f"schedule: FIFO of node {name!r}, which is not in the graph")
            fifos[names.index(name), slot] = depth
        return specs, fifos

    def stage_cycles(self, graph: IntegerGraph) -> dict[str, int]:
        """Cycles per image of every unit the top holds, by name."""
        specs, fifos = self.apply(graph)
        return _stage_cycles(graph, specs, fifos)

    def cycles_per_image(self, graph: IntegerGraph) -> int:
        """The bottleneck's cycles per image (module docstring)."""
        return max(self.stage_cycles(graph).values())

    def resources(self, graph: IntegerGraph) -> Resources:
        """Estimated resources of the units, forks, FIFOs, converters and the label select."""
        specs, fifos = self.apply(graph)
        forks, edges, label = dag_stitching(graph, specs, fifos)
        parts = [s.resources() for s in specs] + [f.resources() for f in forks.values()]
        for e in edges:
            parts += [x.resources() for x in (e.fifo, e.converter) if x is not None]
        return sum(parts, Resources()) + label.resources()

    def to_dict(self) -> dict:
        return {
            "kind": "dag",
            "nodes": [{"name": f.name, "pe": f.pe, "simd": f.simd} for f in self.nodes],
            "fifos": [{"node": n, "input": s, "depth": d} for n, s, d in self.fifos],
        }

    @classmethod
    def from_dict(cls, obj: dict, source: str = "schedule") -> "DagSchedule":
        try:
            nodes = tuple(
                NodeFolding(d["name"], int(d["pe"]), int(d["simd"])) for d in obj["nodes"]
            )
            fifos = tuple((d["node"], int(d["input"]), int(d["depth"])) for d in obj["fifos"])
        except (KeyError, TypeError, ValueError) as e:
            raise LowbitError(
                f"{source}: expected 'nodes' [{{name, pe, simd}}] and 'fifos' "
                f"[{{node, input, depth}}] ({e})"
            ) from None
        return cls(nodes, fifos)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DagSchedule":
        return cls.from_dict(json.loads(Path(path).read_text()), str(path))


def vectors_of(graph: IntegerGraph, i: int) -> int:
    """Vectors per image of node ``i``'s unit: the output pixels of a matrix product on an image,
    a depthwise engine or a join; 1 for a block (its cycles are per image)."""
    node, shape = graph.nodes[i], graph.input_shape_of(i)
    if isinstance(node, (DepthwiseConv, Add)) or (
        isinstance(node, MatMulThreshold) and shape[-1] == node.mw
    ):
        return math.prod(shape[:-1])
    return 1


def _stage_cycles(graph: IntegerGraph, specs, fifos) -> dict[str, int]:
    out = {
        n.name: s.cycles_per_image(vectors_of(graph, i))
        for i, (n, s) in enumerate(zip(graph.nodes, specs))
    }
    forks, edges, label = dag_stitching(graph, specs, fifos)
    out.update({name: f.cycles_per_image() for name, f in forks.items()})
    for e in edges:
        tag = f"{e.consumer}_{e.slot}"
        if e.fifo is not None:
            out[f"fifo{tag}"] = e.fifo.cycles_per_image()
        if e.converter is not None:
            out[f"dwc{tag}"] = e.converter.cycles_per_image()
    out["label"] = label.cycles_per_image()
    return out


def _options(graph: IntegerGraph, i: int) -> list[tuple[int, int]]:
    """Every ``(pe, simd)`` of node ``i``."""
    node, shape = graph.nodes[i], graph.input_shape_of(i)
    if isinstance(node, MatMulThreshold):
        after_window = i > 0 and isinstance(graph.nodes[i - 1], (SlidingWindow, SlidingWindow1D))
        cols = graph.input_shape_of(i - 1)[-1] if after_window else node.mw
        return [(pe, simd) for pe in divisors(node.mh) for simd in divisors(cols)]
    channels = node.channels if isinstance(node, Add) else shape[-1]
    if isinstance(node, DepthwiseConv):
        channels = node.weights.shape[0]
    return [(d, d) for d in divisors(channels)]


def _paths(graph: IntegerGraph):
    """For every join ``i``: ``(i, [path of each input])``, a path being the producer, then the
    nodes before it up to and including the fork (a node read twice), or a join or the input."""
    index = {n.name: k for k, n in enumerate(graph.nodes)}

    def path(name: str) -> list[str]:
        out = [name]
        while name != GRAPH_INPUT and len(graph.consumers(name)) == 1:
            ins = graph.inputs_of(index[name])
            if len(ins) != 1:
                break
            name = ins[0]
            out.append(name)
        return out

    for i, node in enumerate(graph.nodes):
        if isinstance(node, Add):
            yield i, [path(p) for p in graph.inputs_of(i)]


def shortcut_inputs(graph: IntegerGraph) -> list[tuple[int, int]]:
    """``(join index, slot)`` of every residual join's shortcut: of its two inputs, the one with
    fewer units since the fork they share (the first on a tie)."""
    return [(i, 0 if len(a) < len(b) else 1) for i, (a, b) in _paths(graph)]


def shortcut_fifo_edges(graph: IntegerGraph) -> list[tuple[int, int]]:
    """``(node index, slot)`` where each shortcut's FIFO goes: the shortcut's first edge after the
    fork (into the first unit of the shortcut; the join itself for an identity shortcut), so a
    shortcut unit that holds rows back (a strided projection's window) never stalls the fork,
    and with it the long branch."""
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    out = []
    for i, (a, b) in _paths(graph):
        slot = 0 if len(a) < len(b) else 1
        short = (a, b)[slot]
        if len(short) == 1:
            out.append((i, slot))
        else:
            first = index[short[-2]]
            out.append((first, graph.inputs_of(first).index(short[-1])))
    return out


def branch_latency(graph: IntegerGraph, specs) -> dict[int, int]:
    """``{join index: cycles}``: the latency of each residual join's long branch, from the fork's
    handshake to the join's (:mod:`lowbit.mapping.branch_fifo`'s ``L``), the sum of the
    ``latency()`` of its units (unit ``specs``, graph order) and at least 2. Units without a
    ``latency()`` (windows, pools, the depthwise engine) count 0: they hold rows back, a lead the
    two images of the shortcut's FIFO cover; width converters on the branch are not counted."""
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    out = {}
    for i, (a, b) in _paths(graph):
        long = b if len(a) < len(b) else a  # the other input is the shortcut
        units = [specs[index[n]] for n in long[:-1]]  # from the fork (excluded) to the join
        total = sum(u.latency() for u in units if hasattr(u, "latency"))
        out[i] = max(MIN_BRANCH_LATENCY, total)
    return out


def _fifo_depths(graph: IntegerGraph, specs) -> dict[tuple[int, int], int]:
    """Two images of the fork's beats on each shortcut's first edge, and at least the model's
    minimum behind its long branch (module docstring)."""
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    latency = branch_latency(graph, specs).values()  # both in join order
    depths = {}
    for (i, slot), lat in zip(shortcut_fifo_edges(graph), latency):
        p = graph.inputs_of(i)[slot]
        if p == GRAPH_INPUT:
            beats = graph.input_size // specs[i].in_elems
        else:
            k = index[p]
            beats = math.prod(graph.output_shape(k)) // specs[k].out_elems
        depths[i, slot] = max(min_branch_fifo_depth(lat), 2 * beats)
    return depths


def _schedule(graph, choice, depths) -> DagSchedule:
    names = [n.name for n in graph.nodes]
    return DagSchedule(
        tuple(NodeFolding(n.name, pe, simd) for n, (pe, simd) in zip(graph.nodes, choice)),
        tuple((names[i], s, d) for (i, s), d in sorted(depths.items())),
    )


def _windows_follow(graph: IntegerGraph, choice, per_node, target: int) -> list[tuple[int, int]]:
    """A sliding window takes the folding of the product or depthwise engine it feeds (``SIMD``:
    the product's ``SIMD``, the engine's ``PE``), as in a chain (``folding_sources``), when that
    meets ``target``: no width converter between them, and the window no slower than its reader.
    (A window at exactly its reader's rate through a converter stalls it: measured, the ResNet's
    2,304-cycle folding ran at 2,598.)"""
    out = list(choice)
    names = [n.name for n in graph.nodes]
    for i, node in enumerate(graph.nodes):
        readers = graph.consumers(node.name)
        if not isinstance(node, (SlidingWindow, SlidingWindow1D)) or len(readers) != 1:
            continue
        j = names.index(readers[0])
        if not isinstance(graph.nodes[j], (MatMulThreshold, DepthwiseConv)):
            continue
        pe, simd = choice[j]
        want = simd if isinstance(graph.nodes[j], MatMulThreshold) else pe
        fits = [c for c, _, f in per_node[i] if f == (want, want)]
        if fits and fits[0] <= target:
            out[i] = (want, want)
    return out


def map_dag(
    graph: IntegerGraph,
    *,
    max_cycles: int | None = None,
    board: Board | None = None,
    budget: float = 0.7,
) -> DagSchedule:
    """The cheapest folding of every node within one target of cycles per image.

    With ``max_cycles``, that target; else the fastest target whose estimated resources fit
    ``budget`` times ``board``'s capacity (every kind), or without a board the fastest there is.
    "Cheapest" per node: fewest LUTs, then flip-flops, then the smaller ``PE * SIMD``.
    """
    check_dag_mappable(graph, "map")
    per_node = []
    for i in range(len(graph.nodes)):
        opts = []
        for pe, simd in _options(graph, i):
            spec = dag_unit_spec(graph, i, pe=pe, simd=simd)
            r = spec.resources()
            key = (r.lut, r.ff, pe * simd, pe)
            opts.append((spec.cycles_per_image(vectors_of(graph, i)), key, (pe, simd)))
        per_node.append(opts)
    floor = max(min(c for c, _, _ in opts) for opts in per_node)

    def pick(target: int) -> list[tuple[int, int]] | None:
        choice = []
        for opts in per_node:
            ok = [o for o in opts if o[0] <= target]
            if not ok:
                return None
            choice.append(min(ok, key=lambda o: o[1])[2])
        return _windows_follow(graph, choice, per_node, target)

    if max_cycles is not None:
        if max_cycles < floor:
            raise LowbitError(
                f"max_cycles ({max_cycles}) is below the fastest this graph folds to ({floor})"
            )
        targets = [max_cycles]
    else:
        targets = sorted({c for opts in per_node for c, _, _ in opts if c >= floor})
    for target in targets:
        choice = pick(target)
        if choice is None:
            continue
        specs = [dag_unit_spec(graph, i, pe=pe, simd=simd) for i, (pe, simd) in enumerate(choice)]
        sched = _schedule(graph, choice, _fifo_depths(graph, specs))
        if board is None or not sched.resources(graph).exceeded(board.capacity(), budget):
            return sched
    raise LowbitError(
        f"no folding of the graph fits {budget:.0%} of {board.name if board else 'the board'}"
    )
