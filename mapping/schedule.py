"""The mapper's decisions as an artefact: a schedule that round-trips through JSON.

A :class:`Schedule` names a board, a fabric clock and one :class:`LayerFolding` (PE, SIMD) per
graph node, in order. Users may edit the JSON file and re-apply it; :meth:`Schedule.apply` checks
it against the graph and :meth:`Schedule.report` predicts its throughput and resources.

The performance model (``ARITHMETIC.md`` section 7, FINN):

* a layer takes ``spec.cycles()`` cycles per image, ``(MH / PE) * (MW / SIMD)`` for an MVTU;
* a layer whose weights stream from DDR at ``r`` bits per cycle (:func:`ddr_stream_bits`) takes at
  least ``ceil(B / r)`` cycles for the ``B`` weight bits it reads per image. This one term is an
  upper bound, not exact: the stream's credit carries over from image to image
  (:class:`~lowbit.hw.axi.ddr_model.WeightStreamer`), so when the stream is the bottleneck
  consecutive images take ``floor(B / r)`` or ``ceil(B / r)`` cycles, ``B / r`` on average (8192
  bits at 56 a cycle: 146 or 147, every 7 images exactly 1024);
* the accelerator (``lowbit_top``) starts an image every ``max`` of these cycles (the bottleneck:
  exactly what its Verilog does with the input always valid and the output always ready, what
  simulation measures) and finishes one at most their sum after it started (the latency bound);
  its ports take one beat per cycle (the first unit's ``SIMD`` elements, the label select's
  result), never more than a unit's own cycles;
* on the board, one AXI-HP port feeds the input DMA: at most ``axi_hp_width_bits`` bits per cycle
  when the board records that width, so the image streams in over
  ``ceil(MW * B / min(SIMD * B, port))`` cycles (:func:`input_stream_cycles`) and the scores out
  over ``ceil(MH * B_out / min(PE * B_out, port))`` (:func:`output_stream_cycles`). The report
  gives both apart from the accelerator's cycles; the folding search counts them in the first and
  last units' cycles (:func:`unit_cycles`), so it does not unfold a layer beyond what the port
  can feed.

Resources are the sum of the units' estimates (:mod:`lowbit.hw.cost`) and of the stream width
converters between consecutive units whose stream widths differ (``PE_l * out_bits_l`` bits out of
one, ``SIMD_l+1 * in_bits_l+1`` bits into the next).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .. import LowbitError
from .._io import atomic_write
from ..boards import Board, board_names, get_board
from ..hw.mvtu.spec import MAX_PIPELINE, streams_weights
from ..hw.registry import ENGINES as ENGINE_FAMILIES
from ..hw.registry import NodeSpec, stitching, unit_spec
from ..hw.sparse.layer_spec import check_act_density
from ..hw.unit import UnitSpec
from ..ir.datatypes import DataType
from ..ir.files import parse_json, read_limited
from ..ir.graph import IntegerGraph, MatMulThreshold, SlidingWindow, Threshold
from ..ir.resources import RESOURCE_KINDS, Resources
from ..limits import LIMITS, check
from .timing import added_latency, fmax_entry

__all__ = [
    "LayerFolding",
    "Schedule",
    "SCHEDULE_FORMAT",
    "SCHEDULE_VERSION",
    "input_stream_cycles",
    "output_stream_cycles",
    "layer_cycles",
    "pipeline_cycles",
    "pipeline_resources",
    "vectors_per_image",
    "stage_cycles",
    "stream_widths",
    "node_spec",
    "complete_layers",
    "folding_sources",
    "FoldingSource",
    "unit_cycles",
    "input_dtypes",
    "ENGINES",
    "WEIGHT_PLACEMENTS",
    "ddr_stream_bits",
]

logger = logging.getLogger(__name__)

SCHEDULE_FORMAT = "lowbit-schedule"
SCHEDULE_VERSION = 1


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


WEIGHT_PLACEMENTS = ("onchip", "ddr")
"""Where a layer's weights live: on chip (block RAM, LUTRAM or logic) or in DDR, streamed in."""

ENGINES = tuple(ENGINE_FAMILIES)
"""Engines a matrix product can be placed on: the dense MVTU, or the EIE-style sparse engine
(:class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec`; ``pe`` is then its PEs, ``simd`` its input
lanes)."""


@dataclass(frozen=True)
class LayerFolding:
    """The folding of one graph node: ``pe`` rows and ``simd`` columns in parallel.

    ``engine="sparse"`` places a fully connected layer on the sparse engine with ``pe`` PEs,
    ``simd`` input lanes, activation queues of ``depth`` and the activation density
    ``act_density`` its cycles are predicted at. ``weights="ddr"`` streams an MVTU's weights from
    DDR through an AXI-HP port instead of holding them on chip. ``pipeline`` adds register stages
    to an MVTU or a threshold unit (``MVTUSpec.pipeline``: 1 the tree's output, 2 also the
    accumulator, and with parallel MACs 3 also a register inside each lane's popcount or adder
    tree, 4 also the weight and input words read from memory, 5 and 6 a second and a third
    register inside each tree; the label select after a pipelined last layer is pipelined too, to
    its deepest after depth 3 to 6): each costs a cycle of latency
    and some flip-flops, and shortens the unit's longest path (:mod:`lowbit.hw.fmax`).
    """

    name: str
    pe: int
    simd: int
    engine: str = "mvtu"
    depth: int = 8
    act_density: float | tuple[float, ...] = 0.5
    weights: str = "onchip"
    pipeline: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"layer name must be a string, not {self.name!r}")
        for field in ("pe", "simd", "depth"):
            v = getattr(self, field)
            if not _is_count(v):
                name = field if field == "depth" else field.upper()
                raise ValueError(
                    f"layer {self.name!r}: {name} must be a positive integer, not {v!r}"
                )
        if not isinstance(self.pipeline, int) or isinstance(self.pipeline, bool) or not (
            0 <= self.pipeline <= MAX_PIPELINE
        ):
            raise ValueError(
                f"layer {self.name!r}: pipeline must be an integer in [0, {MAX_PIPELINE}], "
                f"not {self.pipeline!r}"
            )
        if self.weights not in WEIGHT_PLACEMENTS:
            raise ValueError(
                f"layer {self.name!r}: weights must be one of "
                f"{', '.join(map(repr, WEIGHT_PLACEMENTS))}, not {self.weights!r}"
            )
        if self.weights == "ddr" and self.engine != "mvtu":
            raise ValueError(
                f"layer {self.name!r}: weights='ddr' takes the MVTU engine, not {self.engine!r}"
            )
        if self.engine not in ENGINES:
            raise ValueError(
                f"layer {self.name!r}: engine must be one of {', '.join(map(repr, ENGINES))}, "
                f"not {self.engine!r}"
            )
        object.__setattr__(
            self,
            "act_density",
            check_act_density(self.act_density, None, f"layer {self.name!r}: act_density"),
        )


# -- the performance model -----------------------------------------------------------------------


def _stream_cycles(elements: int, per_beat: int, bits: int, port_bits: int | None) -> int:
    """Cycles to move ``elements`` of ``bits`` at ``per_beat`` per cycle, at most ``port_bits`` a
    cycle."""
    per_cycle = per_beat * bits if port_bits is None else min(per_beat * bits, port_bits)
    return math.ceil(elements * bits / per_cycle)


def input_stream_cycles(spec, port_bits: int | None = None) -> int:
    """Cycles to stream one input image into ``spec``, the first unit of a pipeline.

    The unit takes ``in_elems`` elements of ``in_bits`` per cycle, ``in_size`` per image (``SIMD``
    of ``MW`` for an MVTU; ``SIMD`` channels of ``H * W * C`` for a sliding-window generator or
    pool). With ``port_bits`` given, no more than that many bits arrive per cycle.
    """
    return _stream_cycles(spec.in_size, spec.in_elems, spec.in_bits, port_bits)


def output_stream_cycles(spec: UnitSpec, port_bits: int | None = None) -> int:
    """Cycles to stream one output vector out of ``spec``, the last unit of a pipeline.

    The unit emits ``PE`` elements of ``out_bits`` per beat; with ``port_bits`` given, no more than
    that many bits leave per cycle.
    """
    return _stream_cycles(spec.out_size, spec.out_elems, spec.out_bits, port_bits)


def layer_cycles(spec: NodeSpec, vectors_per_image: int = 1) -> int:
    """Cycles per image of a unit that processes ``vectors_per_image`` vectors per image.

    A convolution lowered to a matrix-vector product (im2col) needs one vector per output pixel,
    ``OFM_DIM ** 2`` (``ARITHMETIC.md`` section 7); a fully-connected layer one.
    """
    if (
        isinstance(vectors_per_image, bool)
        or not isinstance(vectors_per_image, int)
        or vectors_per_image < 1
    ):
        raise ValueError(f"vectors_per_image must be a positive integer, not {vectors_per_image!r}")
    return spec.cycles() * vectors_per_image


def vectors_per_image(graph: IntegerGraph) -> list[int]:
    """Input vectors per image of every node: ``OH * OW`` for a matrix product on the pixels of an
    image (a convolution after a sliding window), 1 for everything else."""
    out = []
    for i, node in enumerate(graph.nodes):
        shape = graph.input_shape_of(i)
        out.append(
            math.prod(shape[:-1])
            if isinstance(node, MatMulThreshold) and shape[-1] == node.mw
            else 1
        )
    return out


def ddr_stream_bits(board: Board, clock_mhz: float) -> int | None:
    """Weight bits per fabric cycle one DDR weight stream gets: an AXI-HP port's width, or the
    board's DDR bandwidth shared by every HP port but the one of the image DMA, whichever is
    smaller (``None`` when the board has no DDR figure or no spare port). Conservative on purpose:
    the same rate whether one layer or several stream, so a layer's cycles do not depend on the
    others' placement."""
    if board.ddr_bandwidth_gbps is None or board.axi_hp_ports < 2:
        return None
    per_cycle = board.ddr_bandwidth_gbps * 1e3 / clock_mhz
    share = math.floor(per_cycle / (board.axi_hp_ports - 1))
    width = board.axi_hp_width_bits or share
    return max(1, min(width, share))


def stage_cycles(spec: UnitSpec, vectors: int = 1, ddr_bits: int | None = None) -> int:
    """Cycles per image of one unit (:meth:`~lowbit.hw.unit.UnitSpec.cycles_per_image`): a unit
    whose weights stream from DDR also waits for them at ``ddr_bits`` per cycle (rounded up: each
    image takes that or one cycle less, see the module's performance model)."""
    try:
        return spec.cycles_per_image(vectors, ddr_bits)
    except ValueError as e:
        raise LowbitError(str(e)) from None


def pipeline_cycles(
    specs: list,
    port_bits: int | None = None,
    vectors: list[int] | None = None,
    ddr_bits: int | None = None,
) -> list[int]:
    """Cycles per image of each unit, the first one bounded below by its input stream and the last
    one by its output stream. ``vectors`` (see :func:`vectors_per_image`) defaults to one per unit;
    ``ddr_bits`` is the rate of a DDR weight stream (:func:`ddr_stream_bits`)."""
    vectors = [1] * len(specs) if vectors is None else vectors
    last = len(specs) - 1
    return [
        unit_cycles(spec, v, ddr_bits, port_bits, first=k == 0, last=k == last)
        for k, (spec, v) in enumerate(zip(specs, vectors))
    ]


def unit_cycles(
    spec: UnitSpec,
    vectors: int = 1,
    ddr_bits: int | None = None,
    port_bits: int | None = None,
    *,
    first: bool = False,
    last: bool = False,
) -> int:
    """Cycles per image of one unit in a pipeline (one entry of :func:`pipeline_cycles`): its
    :func:`stage_cycles`, bounded below by the input stream when it is the ``first`` unit and by
    the output stream when it is the ``last``."""
    cycles = stage_cycles(spec, vectors, ddr_bits)
    if first:
        cycles = max(cycles, input_stream_cycles(spec, port_bits))
    if last:
        cycles = max(cycles, output_stream_cycles(spec, port_bits))
    return cycles


def stream_widths(spec: UnitSpec) -> tuple[int, int, int]:
    """``(input elements per beat, output elements per beat, output element bits)`` of a unit."""
    return spec.in_elems, spec.out_elems, spec.out_bits


def pipeline_resources(
    specs: list, unit_resources: list[Resources] | None = None
) -> tuple[Resources, list[Resources]]:
    """Total estimated resources of the units, the width converters between them and the label
    select after the last (:func:`lowbit.hw.registry.stitching`: all the accelerator holds).
    ``unit_resources``, when given, are the units' own estimates (the search has them already).

    Returns
    -------
    total : Resources
    converters : list of Resources
        One per pair of consecutive units (zero where the stream widths agree).
    """
    if unit_resources is None:
        unit_resources = [s.resources() for s in specs]
    dwcs, label = stitching(specs)
    converters = [Resources() if c is None else c.resources() for c in dwcs]
    total = sum(unit_resources, Resources()) + sum(converters, Resources())
    return total + label.resources(), converters


def input_dtypes(graph: IntegerGraph) -> list[DataType]:
    """The data type of the input of every node of ``graph``."""
    out, dtype = [], graph.input_dtype
    for i, node in enumerate(graph.nodes):
        out.append(dtype)
        dtype = node.infer(graph.input_shape_of(i), dtype)[1]
    return out


node_spec = unit_spec
"""The spec of one node folded by ``pe``/``simd`` (:func:`lowbit.hw.registry.unit_spec`)."""


@dataclass(frozen=True)
class FoldingSource:
    """Where the folding of a node that is not a matrix product comes from
    (:func:`folding_sources`): ``SIMD = PE = gcd(v, *channels)`` with ``v`` the ``side`` (``"simd"``
    or ``"pe"``) of matrix product ``product`` (a node index), or ``v = 1`` when ``product`` is
    ``None``."""

    product: int | None
    side: str
    channels: tuple[int, ...]

    def folding(self, simd: int, pe: int) -> int:
        """The node's ``SIMD`` (and ``PE``) when its product has ``simd`` and ``pe``."""
        v = 1 if self.product is None else (simd if self.side == "simd" else pe)
        return math.gcd(v, *self.channels)


def folding_sources(graph: IntegerGraph) -> dict[int, FoldingSource]:
    """The rule of :func:`complete_layers` for every node of ``graph`` that is not a matrix product,
    by node index: a sliding window takes the ``SIMD`` of the product it feeds; a pool (or any
    other block) the elements per beat of the node before it; an input threshold unit (a
    :class:`~lowbit.ir.graph.Threshold` before every other node) those of the node after it; each
    reduced to divide the channels of its input (``C``), so that a beat holds channels of one pixel
    and no width converter is needed where the widths can agree.

    Each such node's folding follows from one matrix product's (or from none: ``SIMD`` 1), so the
    folding search can price a product's candidate with the blocks that follow from it.
    """
    nodes = graph.nodes
    lead = 0
    while isinstance(nodes[lead], Threshold):
        lead += 1
    out: dict[int, FoldingSource] = {}

    def via(j: int, side: str, c: int) -> FoldingSource:
        """The rule of a node that takes ``side`` of node ``j``, reduced to divide ``c``."""
        if j not in out:  # a matrix product
            return FoldingSource(j, side, (c,))
        src = out[j]
        return FoldingSource(src.product, src.side, (*src.channels, c))

    for i in range(lead, len(nodes)):
        node = nodes[i]
        if isinstance(node, MatMulThreshold):
            continue
        c = graph.input_shape_of(i)[-1]
        if isinstance(node, SlidingWindow):
            after = range(i + 1, len(nodes))
            nxt = next((j for j in after if isinstance(nodes[j], MatMulThreshold)), None)
            out[i] = FoldingSource(nxt, "simd", (c,))
        elif i == lead:
            out[i] = FoldingSource(None, "pe", (c,))
        else:
            out[i] = via(i - 1, "pe", c)
    for i in reversed(range(lead)):
        out[i] = via(i + 1, "simd", graph.input_shape_of(i)[-1])
    return dict(sorted(out.items()))


def complete_layers(graph: IntegerGraph, matmul_folding) -> list[LayerFolding]:
    """A :class:`LayerFolding` for every node of ``graph`` from ``(SIMD, PE)`` of its matrix
    products (or ``(SIMD, PE, options)``, ``options`` the keyword arguments of :class:`LayerFolding`
    such as ``engine="sparse"``).

    The other nodes follow :func:`folding_sources`: a sliding window gets the ``SIMD`` of the
    product it feeds (its greatest common divisor with the channels ``C``, so that a beat holds
    channels of one pixel); a pool gets the elements per beat of the unit before it (again reduced
    to divide ``C``), so that no width converter is needed where the widths can agree.
    """
    matmul_folding = list(matmul_folding)
    mm_index = [i for i, n in enumerate(graph.nodes) if isinstance(n, MatMulThreshold)]
    if len(matmul_folding) != len(mm_index):
        raise LowbitError(
            f"expected (SIMD, PE) for {len(mm_index)} matrix products, not {len(matmul_folding)}"
        )
    per_node = {
        i: (f[0], f[1], f[2] if len(f) > 2 else {}) for i, f in zip(mm_index, matmul_folding)
    }
    sources = folding_sources(graph)
    layers: list[LayerFolding] = []
    for i, node in enumerate(graph.nodes):
        if i in per_node:
            simd, pe, extra = per_node[i]
            layers.append(LayerFolding(node.name, pe, simd, **extra))
            continue
        src = sources[i]
        simd, pe, _ = per_node[src.product] if src.product is not None else (1, 1, {})
        f = src.folding(simd, pe)
        layers.append(LayerFolding(node.name, f, f))
    return layers


# -- the schedule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """PE/SIMD for every node of a graph, for one board and fabric clock.

    Attributes
    ----------
    board : str
        Name of the board (see :func:`lowbit.boards.get_board`).
    clock_mhz : float
        Fabric clock the throughput is predicted at.
    layers : tuple of LayerFolding
        One per graph node, in graph order.
    """

    board: str
    clock_mhz: float
    layers: tuple[LayerFolding, ...]

    def __post_init__(self):
        if not isinstance(self.board, str):
            raise TypeError(f"board must be a board name, not {self.board!r}")
        if (
            isinstance(self.clock_mhz, bool)
            or not isinstance(self.clock_mhz, (int, float))
            or not math.isfinite(self.clock_mhz)
            or not 0 < self.clock_mhz <= LIMITS.clock_mhz
        ):
            raise ValueError(
                f"clock_mhz must be a positive number of MHz up to {LIMITS.clock_mhz:g}, "
                f"not {self.clock_mhz!r}"
            )
        object.__setattr__(self, "clock_mhz", float(self.clock_mhz))
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("a schedule needs at least one layer")
        for layer in layers:
            if not isinstance(layer, LayerFolding):
                raise TypeError(f"layers must be LayerFolding records, not {layer!r}")
        object.__setattr__(self, "layers", layers)

    @property
    def ddr_layers(self) -> tuple[str, ...]:
        """Names of the layers whose weights stream from DDR."""
        return tuple(layer.name for layer in self.layers if layer.weights == "ddr")

    # -- applying it to a graph ------------------------------------------------------------------

    def apply(self, graph: IntegerGraph) -> list[NodeSpec]:
        """The hardware specs of ``graph`` folded as this schedule says.

        Raises
        ------
        LowbitError
            If the layers do not match the graph's nodes by count and name, or a PE/SIMD does not
            fit its node; the message names the layer.
        """
        nodes = graph.nodes
        if len(self.layers) != len(nodes):
            raise LowbitError(
                f"the schedule has {len(self.layers)} layers "
                f"({', '.join(repr(layer.name) for layer in self.layers)}) but the graph has "
                f"{len(nodes)} nodes ({', '.join(repr(n.name) for n in nodes)})"
            )
        specs = []
        for i, (layer, node, dtype) in enumerate(zip(self.layers, nodes, input_dtypes(graph))):
            if layer.name != node.name:
                raise LowbitError(
                    f"layer {i} of the schedule is {layer.name!r} but node {i} of the graph "
                    f"is {node.name!r}"
                )
            try:
                specs.append(
                    node_spec(
                        node,
                        graph.input_shape_of(i),
                        dtype,
                        pe=layer.pe,
                        simd=layer.simd,
                        engine=layer.engine,
                        depth=layer.depth,
                        act_density=layer.act_density,
                        weights=layer.weights,
                        pipeline=layer.pipeline,
                    )
                )
            except (TypeError, ValueError) as e:
                raise LowbitError(f"layer {layer.name!r}: {e}") from None
        return specs

    def report(self, graph: IntegerGraph, *, board: Board | None = None) -> dict:
        """Predicted performance and resources of ``graph`` under this schedule.

        Parameters
        ----------
        graph : IntegerGraph
        board : Board, optional
            The board to compare resources with; by default the one named by the schedule.

        Returns
        -------
        dict
            ``board``, ``clock_mhz``; ``layers`` (per node ``name``, ``op``, ``mw``, ``mh`` (``"-"``
            for a window or pool), ``pe``, ``simd``, ``cycles`` per image (an MVTU's per-vector
            cycles times its vectors per image), ``resources``); ``width_converters``;
            ``label_select`` (``classes``, ``pe``, ``score_bits``, ``resources``, and with the
            last node's class map ``class_map_bits``, the width of the values it compares);
            ``input_stream_cycles`` and ``output_stream_cycles`` (the image and its scores
            through the board's AXI-HP port; when one exceeds ``cycles_per_image``, the DMA
            bounds the board's rate); ``cycles_per_image`` (the accelerator's bottleneck, what
            its Verilog does and simulation measures) and ``bottleneck`` (the layer that sets
            it); ``throughput_fps`` and ``time_per_image_us`` at the clock;
            ``latency_cycles`` and ``latency_us`` (upper bound: the sum of the layers' cycles and
            of ``pipeline_latency_cycles``, the cycles the pipeline registers add, exactly);
            ``fmax`` (:func:`lowbit.mapping.timing.fmax_entry`: each unit's estimated Fmax on the
            board's family, the slowest and the images per second at it);
            ``resources``, per kind ``{"used": ..., "available": ..., "fraction": ...}``. Resources
            are estimates.
        """
        board = get_board(self.board) if board is None else board
        specs = self.apply(graph)
        port = board.axi_hp_width_bits
        ddr = ddr_stream_bits(board, self.clock_mhz)
        vectors = vectors_per_image(graph)
        cycles = pipeline_cycles(specs, None, vectors, ddr)  # the accelerator's own ports
        total, converters = pipeline_resources(specs)
        bottleneck = max(cycles)
        which = specs[cycles.index(bottleneck)].node.name
        hz = self.clock_mhz * 1e6
        added = added_latency(specs)
        return {
            "board": board.name,
            "clock_mhz": self.clock_mhz,
            "layers": [
                {
                    "name": s.node.name,
                    "op": type(s.node).__name__,
                    "engine": s.ENGINE,
                    "mw": getattr(s, "mw", "-"),
                    "mh": getattr(s, "mh", "-"),
                    "pe": s.out_elems,
                    "simd": s.in_elems,
                    "weights": "ddr" if streams_weights(s) else "onchip",
                    "pipeline": getattr(s, "pipeline", 0),
                    "cycles": stage_cycles(s, v, ddr),
                    "share_of_bottleneck": c / bottleneck,
                    "resources": s.resources().as_dict(),
                }
                for s, c, v in zip(specs, cycles, vectors)
            ],
            "width_converters": [
                {
                    "after": a.node.name,
                    "in_bits": stream_widths(a)[1] * stream_widths(a)[2],
                    "out_bits": stream_widths(b)[0] * stream_widths(a)[2],
                    "resources": r.as_dict(),
                }
                for a, b, r in zip(specs, specs[1:], converters)
            ],
            "label_select": _label_entry(specs),
            "input_stream_cycles": input_stream_cycles(specs[0], port),
            "output_stream_cycles": output_stream_cycles(specs[-1], port),
            "cycles_per_image": bottleneck,
            "bottleneck": which,
            "throughput_fps": hz / bottleneck,
            "time_per_image_us": bottleneck / self.clock_mhz,
            "latency_cycles": sum(cycles) + added,
            "latency_us": (sum(cycles) + added) / self.clock_mhz,
            "pipeline_latency_cycles": added,
            "fmax": fmax_entry(specs, board, self.clock_mhz, bottleneck),
            "memory": _memory_roofline(specs, board, hz / bottleneck, vectors, ddr, self.clock_mhz),
            "resources": {
                kind: _utilisation(getattr(total, kind), getattr(board.capacity(), kind))
                for kind in RESOURCE_KINDS
            },
        }

    def check_fits(
        self, graph: IntegerGraph, *, board: Board | None = None, budget: float = 1.0
    ) -> None:
        """Refuse a schedule whose estimated resources exceed ``budget`` times the board's capacity.

        Raises
        ------
        LowbitError
            Naming the resource, the total against the capacity, and the layer that uses most of it
            (the layer alone when it exceeds the capacity by itself).
        """
        board = get_board(self.board) if board is None else board
        specs = self.apply(graph)
        total, _ = pipeline_resources(specs)
        capacity = board.capacity()
        over = total.exceeded(capacity, budget)
        if not over:
            return
        kind = over[0]
        worst = max(specs, key=lambda spec: getattr(spec.resources(), kind))
        used = getattr(worst.resources(), kind)
        limit = budget * getattr(capacity, kind)
        alone = " by itself" if used > limit else ""
        also = f" (also over: {', '.join(over[1:])})" if len(over) > 1 else ""
        raise LowbitError(
            f"the schedule does not fit {board.name}: it needs {getattr(total, kind):g} {kind}, "
            f"{limit:g} available; layer {worst.node.name!r} "
            f"(PE={getattr(worst, 'pe', worst.simd)}, SIMD={worst.simd}) uses {used:g} "
            f"{kind}{alone}{also}"
        )

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> str:
        """The schedule as a JSON document (only the decisions; predictions come from
        :meth:`report`)."""
        head = {
            "format": SCHEDULE_FORMAT,
            "version": SCHEDULE_VERSION,
            "board": self.board,
            "clock_mhz": self.clock_mhz,
        }
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
        layers = [json.dumps(_layer_json(layer)) for layer in self.layers]
        # one layer per line, so that a user can edit the schedule by hand
        return (
            "{\n"
            + "\n".join(lines)
            + '\n  "layers": [\n    '
            + ",\n    ".join(layers)
            + "\n  ]\n}\n"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (a temporary file, then ``os.replace``)."""
        path = atomic_write(path, self.to_json())
        logger.info("wrote schedule for %s to %s", self.board, path)
        return path

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<schedule>") -> "Schedule":
        """Parse a schedule written by :meth:`to_json` (text, or UTF-8 bytes).

        Raises
        ------
        LowbitError
            Naming ``source`` and the first bad field (``layers[1].simd``).
        """
        doc = parse_json(text, source)  # its depth bounded before parsing
        if not isinstance(doc, dict):
            raise LowbitError(f"{source}: expected a JSON object, not {type(doc).__name__}")
        if doc.get("format") != SCHEDULE_FORMAT or doc.get("version") != SCHEDULE_VERSION:
            raise LowbitError(
                f"{source}: expected format {SCHEDULE_FORMAT!r} version {SCHEDULE_VERSION}, "
                f"got {doc.get('format')!r} version {doc.get('version')!r}"
            )
        _check_keys(doc, {"format", "version", "board", "clock_mhz", "layers"}, "", source)
        board, clock, layers = doc["board"], doc["clock_mhz"], doc["layers"]
        if not isinstance(board, str) or not board:
            _bad(source, "board", "a board name", board)
        if not _known_board(board):
            _bad(source, "board", f"a known board ({', '.join(board_names())})", board)
        if (
            isinstance(clock, bool)
            or not isinstance(clock, (int, float))
            or not math.isfinite(clock)
            or clock <= 0
        ):
            _bad(source, "clock_mhz", "a positive number", clock)
        check(f"{source}: field 'clock_mhz'", "clock frequency (MHz)", clock, LIMITS.clock_mhz)
        if not isinstance(layers, list) or not layers:
            _bad(source, "layers", "a non-empty list", layers)
        parsed = []
        for i, layer in enumerate(layers):
            where = f"layers[{i}]"
            if not isinstance(layer, dict):
                _bad(source, where, "an object with name, pe and simd", layer)
            _check_keys(
                {k: v for k, v in layer.items() if k not in _OPTIONAL},
                {"name", "pe", "simd"},
                where + ".",
                source,
            )
            if not isinstance(layer["name"], str):
                _bad(source, where + ".name", "a string", layer["name"])
            for field in ("pe", "simd", "depth"):
                if field in layer and not _is_count(layer[field]):
                    _bad(source, f"{where}.{field}", "a positive integer", layer[field])
            pipeline = layer.get("pipeline", 0)
            if (
                not isinstance(pipeline, int)
                or isinstance(pipeline, bool)
                or not 0 <= pipeline <= MAX_PIPELINE
            ):
                _bad(source, where + ".pipeline", f"an integer in [0, {MAX_PIPELINE}]", pipeline)
            engine = layer.get("engine", "mvtu")
            if engine not in ENGINES:
                _bad(source, where + ".engine", " or ".join(map(repr, ENGINES)), engine)
            weights = layer.get("weights", "onchip")
            if weights not in WEIGHT_PLACEMENTS:
                _bad(source, where + ".weights", " or ".join(map(repr, WEIGHT_PLACEMENTS)), weights)
            if weights == "ddr" and engine != "mvtu":
                _bad(source, where + ".weights", "'onchip' for the sparse engine", weights)
            density = layer.get("act_density", 0.5)
            try:
                parsed.append(
                    LayerFolding(
                        layer["name"],
                        layer["pe"],
                        layer["simd"],
                        engine=engine,
                        depth=layer.get("depth", 8),
                        weights=weights,
                        act_density=tuple(density) if isinstance(density, list) else density,
                        pipeline=pipeline,
                    )
                )
            except (TypeError, ValueError):
                _bad(
                    source,
                    where + ".act_density",
                    "a number in (0, 1] or a list of per-column values in [0, 1]",
                    density,
                )
        return cls(board=board, clock_mhz=clock, layers=tuple(parsed))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Schedule":
        """Read a schedule file; errors name the file and the bad field."""
        path = Path(path)
        return cls.from_json(read_limited(path, "schedule file"), source=str(path))


_OPTIONAL = ("engine", "depth", "act_density", "weights", "pipeline")


def _layer_json(layer: LayerFolding) -> dict:
    out = {"name": layer.name, "pe": layer.pe, "simd": layer.simd}
    if layer.weights != "onchip":
        out["weights"] = layer.weights
    if layer.pipeline:
        out["pipeline"] = layer.pipeline
    if layer.engine != "mvtu":
        d = layer.act_density
        out.update(
            engine=layer.engine,
            depth=layer.depth,
            act_density=[round(v, 4) for v in d] if isinstance(d, tuple) else d,
        )
    return out


def _label_entry(specs) -> dict:
    label = stitching(specs)[1]
    entry = {
        "classes": label.classes,
        "pe": label.pe,
        "score_bits": label.score_bits,
        "resources": label.resources().as_dict(),
    }
    if label.class_map is not None:  # the label select compares mapped values of this width
        entry["class_map_bits"] = label.value_bits
    return entry


def _memory_roofline(
    specs: list,
    board: Board,
    compute_fps: float,
    vectors: list[int],
    ddr_bits: int | None,
    clock_mhz: float,
) -> dict:
    """Per layer, where its weights live and, for those streamed from DDR, the throughput their
    stream allows; and the whole-model roofline: streaming every layer's weights once per image
    through the PS's AXI-HP ports bounds the throughput by ``min(DDR bandwidth, ports x width x
    clock) / weight bits per image``.
    """
    layers, streamed_bits = [], 0
    weight_bits = 0
    for s, v in zip(specs, vectors):
        if s.ENGINE == "sparse":
            bits = s.engine.image.encoded_bits(
                pointer_bits=s.engine.pointer_bits, codebook_bits=s.engine.weight_bits
            )
            layers.append({"layer": s.node.name, "placement": "onchip", "weight_bits": bits})
        elif s.ENGINE == "mvtu":
            bits = s.mw * s.mh * s.node.weight_dtype.bits
            entry = {"layer": s.node.name, "placement": "onchip", "weight_bits": bits}
            if streams_weights(s) and ddr_bits is not None:
                per_image = s.weight_stream_bits * v
                cycles = s.weight_stream_cycles(v, ddr_bits)
                streamed_bits += per_image
                entry.update(
                    placement="ddr",
                    ddr_bits_per_image=per_image,
                    stream_bits_per_cycle=ddr_bits,
                    stream_cycles=cycles,
                    stream_fps_bound=clock_mhz * 1e6 / cycles,
                )
            layers.append(entry)
        else:
            continue
        weight_bits += bits
    ddr = board.ddr_bandwidth_gbps
    streamed = None
    if ddr is not None and board.axi_hp_ports:
        limit = ddr
        if board.axi_hp_width_bits is not None:
            limit = min(
                ddr, board.axi_hp_ports * board.axi_hp_width_bits * board.fabric_clock_mhz / 1e3
            )
        streamed = limit * 1e9 / weight_bits if weight_bits else None
    ddr_use = streamed_bits * compute_fps
    placement = (
        "on-chip"
        if not streamed_bits
        else ("ddr" if all(e["placement"] == "ddr" for e in layers) else "mixed")
    )
    return {
        "placement": placement,
        "weight_bits": weight_bits,
        "ddr_bandwidth_gbps": ddr,
        "streamed_fps_bound": streamed,
        "compute_fps": compute_fps,
        "layers": layers,
        "ddr_bits_per_image": streamed_bits,
        "ddr_gbps_used": ddr_use / 1e9,
        "ddr_fraction_used": (ddr_use / (ddr * 1e9)) if ddr and streamed_bits else 0.0,
    }


def _utilisation(used, available) -> dict:
    if available:
        fraction = used / available
    else:
        fraction = 0.0 if not used else math.inf
    return {"used": used, "available": available, "fraction": fraction}


def _known_board(name: str) -> bool:
    try:
        get_board(name)
    except LowbitError:
        return False
    return True


def _bad(source: str, field: str, expected: str, value) -> None:
    raise LowbitError(f"{source}: field {field!r} must be {expected}, not {value!r}")


def _check_keys(obj: dict, allowed: set[str], prefix: str, source: str) -> None:
    missing = sorted(allowed - obj.keys())
    if missing:
        raise LowbitError(f"{source}: missing field {prefix + missing[0]!r}")
    unknown = sorted(obj.keys() - allowed)
    if unknown:
        raise LowbitError(f"{source}: unknown field {prefix + unknown[0]!r}")
