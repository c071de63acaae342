"""The folding search: PE and SIMD for every layer, for the highest throughput a board can hold.

The pipeline's throughput is set by its slowest layer (``ARITHMETIC.md`` section 7), so the search
minimises the bottleneck ``max over layers of cycles`` subject to the estimated resources staying
within ``budget`` times the board's capacity, kind by kind (LUT, FF, BRAM36, DSP). Only divisors
are considered (``PE | MH``, ``SIMD | MW``); costs come from the specs' own ``cycles()`` and
``resources()``, so the search knows no operator by name.

Algorithm (exact for the per-layer costs, which are separable): collect every cycle count any
layer can reach; for each target ``T`` in ascending order, give each layer its cheapest folding
with at most ``T`` cycles and accept the first ``T`` whose total fits. "Cheapest" is tried under a
few orders: the sum over kinds of the share of the board a folding uses, then LUTs first, then
BRAM first (ties go to fewer LUTs, fewer BRAM, fewer FFs, then the smaller ``PE * SIMD``). The
width converters between layers depend on two neighbouring choices; they are counted in the fit
check but not in the per-layer choice. Because the per-layer choice does not depend on the
budget, a larger budget never gives a slower schedule.

Every stage counts, not only the matrix products: a sliding-window generator, a pool or an input
threshold unit takes the folding of the product it feeds or follows
(:func:`~lowbit.mapping.schedule.folding_sources`), so a product's candidate is priced at the
slowest of itself and those blocks (a stride-2 window generator can take more cycles than the
product it feeds: ``SWGSpec.cycles``), each as :func:`~lowbit.mapping.schedule.pipeline_cycles`
counts it. The first stage's cycles include the input stream (see :mod:`lowbit.mapping.schedule`):
on a board whose AXI-HP port is narrower than the input, unfolding the first layer further buys
nothing. So the schedule returned meets its target by the report's own cycles.

With ``max_cycles`` or ``target_fps`` the search instead returns the cheapest schedule that meets
the target.

Engines: a fully connected layer with pruned integer weights (weight density at most
:data:`SPARSE_MAX_DENSITY`, at most 255 distinct non-zero values) also gets candidates on the
EIE-style sparse engine (:class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec`: ``PE`` = its
processing elements, ``SIMD`` = input lanes, queue depth 8), with cycles from the engine's cycle
model on the layer's own weights and activations of density ``act_density``. They compete with the
MVTU foldings under the same rule, so the layer lands on the sparse engine exactly when that is the
cheaper way to meet the bottleneck; :func:`lowbit.mapping.placement.placement_reasons` says why.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, replace
from typing import cast

import numpy as np

from .. import LowbitError
from ..boards import Board, get_board
from ..hw.mvtu.spec import MVTUSpec, streams_weights
from ..hw.registry import FAMILIES, MatMulSpec, SearchContext, candidates
from ..hw.sparse.layer_spec import SPARSE_MAX_DENSITY
from ..ir.datatypes import Kind
from ..ir.graph import IntegerGraph, MatMulThreshold, SlidingWindow
from ..ir.resources import RESOURCE_KINDS, Resources
from .schedule import (
    Schedule,
    complete_layers,
    ddr_stream_bits,
    folding_sources,
    input_dtypes,
    node_spec,
    pipeline_resources,
    unit_cycles,
    vectors_per_image,
)

__all__ = [
    "search_folding",
    "check_mappable",
    "DEFAULT_BUDGET",
    "SPARSE_MAX_DENSITY",
    "folding_of",
    "layer_options",
    "cheapness",
    "activation_densities",
]

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 0.7
"""Share of each resource of the board the search may use by default (room for the DMA, the
interconnect and the place-and-route slack)."""


@dataclass(frozen=True, eq=False)
class _Candidate:
    spec: MatMulSpec
    cycles: int  # per image: the slowest stage whose cycles follow from this folding
    resources: Resources
    stage: str = ""  # the node of that stage


def folding_of(spec) -> tuple:
    """``(SIMD, PE)`` or ``(SIMD, PE, options)`` of a matrix-product spec, for
    :func:`~lowbit.mapping.schedule.complete_layers`."""
    options = spec.schedule_options()
    return (spec.simd, spec.pe, options) if options else (spec.simd, spec.pe)


class _Stages:
    """Cycles per image of the nodes of ``graph`` as
    :func:`~lowbit.mapping.schedule.pipeline_cycles` counts them (the first bounded by the image
    through ``port_bits``, the last by the scores), the blocks' at the folding
    :func:`~lowbit.mapping.schedule.folding_sources` gives them."""

    def __init__(self, graph: IntegerGraph, port_bits: int | None, ddr_bits: int | None):
        self.graph = graph
        self.port_bits = port_bits
        self.ddr_bits = ddr_bits
        self.vectors = vectors_per_image(graph)
        self.sources = folding_sources(graph)
        self.dtypes = input_dtypes(graph)
        self._blocks: dict[tuple[int, int], int] = {}

    def cycles(self, i: int, spec) -> int:
        """Cycles of node ``i`` folded as ``spec``."""
        return unit_cycles(
            spec,
            self.vectors[i],
            self.ddr_bits,
            self.port_bits,
            first=i == 0,
            last=i == len(self.graph.nodes) - 1,
        )

    def block(self, k: int, simd: int, pe: int) -> int:
        """Cycles of block ``k`` when the product its folding follows has ``simd`` and ``pe``."""
        f = self.sources[k].folding(simd, pe)
        if (k, f) not in self._blocks:
            node = self.graph.nodes[k]
            shape = self.graph.input_shape_of(k)
            try:
                spec = node_spec(node, shape, self.dtypes[k], pe=f, simd=f)
            except (TypeError, ValueError) as e:
                raise LowbitError(f"layer {node.name!r}: {e}") from None
            self._blocks[k, f] = self.cycles(k, spec)
        return self._blocks[k, f]

    def of(self, product: int | None) -> list[int]:
        """The blocks whose folding follows from matrix product ``product`` (``None``: none)."""
        return [k for k, src in self.sources.items() if src.product == product]

    def floor(self) -> tuple[int, str]:
        """The slowest block whose folding follows from no product, and its name (``(0, "")``
        without one)."""
        return max(
            ((self.block(k, 1, 1), self.graph.nodes[k].name) for k in self.of(None)),
            key=lambda t: t[0],
            default=(0, ""),
        )


def layer_options(
    graph: IntegerGraph,
    i: int,
    port_bits: int | None,
    act_density: float | None = None,
    ddr_bits: int | None = None,
) -> list[_Candidate]:
    """Every folding of matrix product ``i`` of ``graph`` (MVTU, and sparse engine where eligible)
    with its cycles per image and estimated resources.

    A product after a sliding window takes ``SIMD`` channels of a pixel per beat, so its ``SIMD``
    divides the channels ``C``, not only ``MW``.

    A candidate's cycles are those of the slowest stage whose folding follows from it, as
    :func:`~lowbit.mapping.schedule.pipeline_cycles` counts them with the AXI-HP port of
    ``port_bits``: the product itself, and the blocks that take its folding
    (:func:`~lowbit.mapping.schedule.folding_sources`: the sliding window that feeds it, pools after
    it, input threshold units), the first stage bounded by the image's input stream, the last by
    the scores' output stream.
    """
    node = graph.nodes[i]
    stages = _Stages(graph, port_bits, ddr_bits)
    conv = i > 0 and isinstance(graph.nodes[i - 1], SlidingWindow)
    columns = graph.input_shape_of(i - 1)[-1] if conv else node.mw
    blocks = stages.of(i)
    # node is a MatMulThreshold, whose families (MVTU, sparse engine) give MatMulSpecs
    specs = cast(
        "list[MatMulSpec]",
        candidates(node, SearchContext(columns, stages.vectors[i], act_density, ddr_bits)),
    )
    options = []
    for spec in specs:
        cycles, k = max(
            [(stages.cycles(i, spec), -i)]
            + [(stages.block(k, spec.simd, spec.pe), -k) for k in blocks]
        )  # the first of the slowest stages, as the report names it
        options.append(_Candidate(spec, cycles, spec.resources(), graph.nodes[-k].name))
    return options


def activation_densities(graph: IntegerGraph, x, *, per_column: bool = False) -> dict:
    """Share of non-zero input activations of every fully connected matrix product of ``graph`` on
    inputs ``x`` (a bipolar value is never zero), by layer name: what the sparse engine can skip.

    With ``per_column``, one share per input column (rounded to 4 decimals), the profile that
    :class:`~lowbit.hw.sparse.layer_spec.SparseLayerSpec` draws its model's vectors from.
    """

    x = graph.check_input(x)
    outputs = graph.trace(x)
    out: dict[str, float | tuple[float, ...]] = {}
    for i, node in enumerate(graph.nodes):
        if not isinstance(node, MatMulThreshold):
            continue
        a = np.asarray(x if i == 0 else outputs[i - 1]).reshape(len(x), -1)
        if a.shape[1] != node.mw:
            continue  # a convolution: vectors per pixel, not the sparse engine's case
        if node.input_dtype.kind is Kind.BIPOLAR:
            out[node.name] = 1.0
        elif per_column:
            col = (a != 0).mean(axis=0)
            out[node.name] = tuple(round(float(v), 4) for v in col) if col.any() else 1.0
        else:
            out[node.name] = max(float(np.count_nonzero(a)) / a.size, 1e-6)
    return out


def _density_of(act_density, node) -> float | None:
    if act_density is None or isinstance(act_density, (int, float)):
        return act_density
    return act_density.get(node.name)


def _candidates(
    graph: IntegerGraph, port_bits: int | None, act_density=None, ddr_bits: int | None = None
) -> list[list[_Candidate]]:
    """Foldings of every matrix product (the other nodes follow from them, see
    :func:`~lowbit.mapping.schedule.complete_layers`). ``act_density`` is one density for every
    layer or a mapping from layer name to density (a layer missing from it stays on the MVTU).

    A block whose folding follows from no product (a pool before the first one: ``SIMD`` 1) bounds
    every candidate's cycles from below."""
    floor, name = _Stages(graph, port_bits, ddr_bits).floor()
    return [
        [
            c if c.cycles >= floor else replace(c, cycles=floor, stage=name)
            for c in layer_options(graph, i, port_bits, _density_of(act_density, node), ddr_bits)
        ]
        for i, node in enumerate(graph.nodes)
        if isinstance(node, MatMulThreshold)
    ]


def cheapness(r: Resources, board: Board) -> float:
    """The sum over resource kinds of the share of ``board`` that ``r`` uses (the search's first
    measure of "cheaper")."""
    capacity = board.capacity()
    total = 0.0
    for kind in RESOURCE_KINDS:
        used, available = getattr(r, kind), getattr(capacity, kind)
        total += used / available if available else (math.inf if used else 0.0)
    return total


def _orders(board: Board, clock_mhz: float = 100.0):
    """Sort keys for "cheapest", tried in turn for each target. DDR bandwidth counts as a resource:
    a layer streaming its weights uses the share of the board's DDR bandwidth its stream needs at
    its own rate (so on-chip weights win whenever they fit)."""

    def ddr(c: _Candidate) -> float:
        spec = c.spec
        # a streaming spec is an MVTUSpec (streams_weights)
        if not _streams(c) or not isinstance(spec, MVTUSpec) or not board.ddr_bandwidth_gbps:
            return 0.0
        bits_per_s = spec.weight_stream_bits * clock_mhz * 1e6 / max(1, spec.cycles())
        return 1.0 + bits_per_s / (board.ddr_bandwidth_gbps * 1e9)

    def share(c: _Candidate) -> float:
        return cheapness(c.resources, board) + ddr(c)

    def tail(c: _Candidate):
        return (c.resources.ff, c.spec.pe * c.spec.simd, c.spec.pe)

    return (
        lambda c: (share(c), c.resources.lut, c.resources.bram36, *tail(c)),
        lambda c: (ddr(c), c.resources.lut, c.resources.bram36, *tail(c)),
        lambda c: (ddr(c), c.resources.bram36, c.resources.lut, *tail(c)),
    )


class _Cheapest:
    """For one layer and one order: the cheapest candidate with at most ``T`` cycles, by
    bisection."""

    def __init__(self, options: list[_Candidate], key):
        options = sorted(options, key=lambda c: (c.cycles, key(c)))
        self.cycles = [c.cycles for c in options]
        self.best: list[_Candidate] = []
        for c in options:
            if not self.best or key(c) < key(self.best[-1]):
                self.best.append(c)
            else:
                self.best.append(self.best[-1])

    def __call__(self, target: int) -> _Candidate | None:
        i = bisect.bisect_right(self.cycles, target) - 1
        return self.best[i] if i >= 0 else None


def _pick(per_layer: list[_Cheapest], target: int) -> list[_Candidate]:
    """Every layer's cheapest candidate with at most ``target`` cycles (the search's targets are
    never below a layer's fastest folding, so each layer has one)."""
    choice = []
    for i, pick in enumerate(per_layer):
        c = pick(target)
        if c is None:
            raise LowbitError(f"matrix product {i} has no folding of {target} cycles or fewer")
        choice.append(c)
    return choice


def _total(choice: list[_Candidate], graph: IntegerGraph) -> Resources:
    if graph.is_mlp:  # the units are the candidates: reuse their estimates
        return pipeline_resources([c.spec for c in choice], [c.resources for c in choice])[0]
    return pipeline_resources(_all_specs(graph, choice))[0]


def _all_specs(graph: IntegerGraph, choice: list[_Candidate]) -> list:
    layers = complete_layers(graph, [folding_of(c.spec) for c in choice])
    return Schedule(board="-", clock_mhz=1.0, layers=tuple(layers)).apply(graph)


def _over_message(total: Resources, board: Board, budget: float) -> str:
    parts = []
    capacity = board.capacity()
    for kind in total.exceeded(capacity, budget):
        available = getattr(capacity, kind)
        parts.append(
            f"{getattr(total, kind):g} {kind} (budget {budget * available:g} = "
            f"{budget:g} x {available:g})"
        )
    return "; ".join(parts)


def _check_budget(budget) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= 1:
        raise LowbitError(f"budget must be a fraction in (0, 1], not {budget!r}")
    return float(budget)


def _search(
    graph,
    board: Board,
    budget: float,
    clock_mhz: float,
    limit: int | None,
    act_density,
    ddr_bits: int | None,
):
    """The search proper: ``(schedule or None, (candidates, cheapest, targets))``."""
    layers = _candidates(graph, board.axi_hp_width_bits, act_density, ddr_bits)
    cheapest = [
        [_Cheapest(options, key) for options in layers] for key in _orders(board, clock_mhz)
    ]
    fastest = max(min(c.cycles for c in options) for options in layers)
    targets = sorted({c.cycles for options in layers for c in options if c.cycles >= fastest})

    if limit is not None:
        if limit < fastest:
            slowest = max(layers, key=lambda options: min(c.cycles for c in options))
            raise LowbitError(
                f"the target of {limit} cycles per image is out of reach: even fully unfolded, "
                f"layer {min(slowest, key=lambda c: c.cycles).stage!r} takes {fastest} cycles"
            )
        targets = [t for t in targets if t <= limit][::-1]  # cheapest first
    max_streams = max(0, board.axi_hp_ports - 1)
    external = None
    if ddr_bits is not None:
        key = _orders(board, clock_mhz)[0]
        external = [
            _Cheapest(ext, key) if (ext := [c for c in options if _streams(c)]) else None
            for options in layers
        ]

    seen = set()
    for target in targets:
        for per_layer in cheapest:
            choice = _pick(per_layer, target)
            if external is not None:
                choice = _spill(choice, external, target, graph, board, budget, max_streams)
            ident = tuple(id(c) for c in choice)
            if ident in seen:
                continue
            seen.add(ident)
            if sum(_streams(c) for c in choice) > max_streams:
                continue
            total = _total(choice, graph)
            logger.debug(
                "target %d cycles: %s -> %s",
                target,
                [(c.spec.pe, c.spec.simd) for c in choice],
                total,
            )
            if total.fits(board.capacity(), budget):
                bottleneck = max(c.cycles for c in choice)
                logger.info(
                    "folding on %s within %.0f%% of resources: %d cycles per image (%.1f images/s "
                    "at %g MHz), %s",
                    board.name,
                    100 * budget,
                    bottleneck,
                    clock_mhz * 1e6 / bottleneck,
                    clock_mhz,
                    total,
                )
                return Schedule(
                    board=board.name,
                    clock_mhz=clock_mhz,
                    layers=tuple(complete_layers(graph, [folding_of(c.spec) for c in choice])),
                ), (layers, cheapest, targets)
    return None, (layers, cheapest, targets)


def _streams(c: _Candidate) -> int:
    return int(streams_weights(c.spec))


def _overflow(total: Resources, board: Board, budget: float) -> float:
    capacity = board.capacity()
    return sum(
        max(0.0, getattr(total, k) - budget * getattr(capacity, k)) / max(1, getattr(capacity, k))
        for k in RESOURCE_KINDS
    )


def _spill(choice, external, target, graph, board, budget, max_streams):
    """Greedily move layers to their cheapest DDR-streaming folding that meets ``target`` until the
    choice fits (or no port is left): each step moves the layer that removes the most overflow."""
    total = _total(choice, graph)
    while (
        not total.fits(board.capacity(), budget) and sum(_streams(c) for c in choice) < max_streams
    ):
        best = None
        for i, c in enumerate(choice):
            pick = None if _streams(c) or external[i] is None else external[i](target)
            if pick is None:
                continue
            trial = choice[:i] + [pick] + choice[i + 1 :]
            t = _total(trial, graph)
            score = _overflow(t, board, budget)
            if best is None or score < best[0]:
                best = (score, trial, t)
        if best is None or best[0] >= _overflow(total, board, budget):
            break
        _, choice, total = best
    return choice


def check_mappable(graph: IntegerGraph, what: str) -> None:
    """Refuse, naming the node, a graph the mapper cannot fold yet: one that is not a chain (a
    fork or a join: :meth:`IntegerGraph.dag_nodes`) or holds a node of a type without a hardware
    family (:data:`lowbit.hw.registry.FAMILIES`).

    Raises
    ------
    LowbitError
        ``"<what>: node '<name>' (<type>) ..."``. A DAG is folded by
        :func:`lowbit.mapping.dag.map_dag` (``lowbit map`` and ``lowbit compile`` call it).
    """
    for node in graph.nodes:
        if type(node) not in FAMILIES:
            raise LowbitError(
                f"{what}: node {node.name!r} ({type(node).__name__}) has no hardware yet; the "
                f"mapper folds {', '.join(t.__name__ for t in FAMILIES)} nodes (a DAG: "
                "lowbit.mapping.dag.map_dag, which 'lowbit map' and 'lowbit compile' call)"
            )
    if not graph.is_chain:
        graph.require_chain(what)


def search_folding(
    graph: IntegerGraph,
    board: str | Board,
    *,
    budget: float = DEFAULT_BUDGET,
    clock_mhz: float | None = None,
    max_cycles: int | None = None,
    target_fps: float | None = None,
    act_density: float | None = 0.5,
    ddr_weights: bool = True,
) -> Schedule:
    """Choose PE and SIMD for every node of ``graph`` on ``board``.

    Parameters
    ----------
    graph : IntegerGraph
    board : str or Board
        A board name (see :func:`lowbit.boards.get_board`) or record.
    budget : float
        Share of each resource kind (LUT, FF, BRAM36, DSP) of the board the estimate may use.
    clock_mhz : float, optional
        Fabric clock; by default the board's ``fabric_clock_mhz``.
    max_cycles : int, optional
        Stop at this many cycles per image: return the cheapest schedule that meets it.
    target_fps : float, optional
        As ``max_cycles``, given as images per second at ``clock_mhz``.
    act_density : float, mapping or None
        Expected share of non-zero input activations of pruned fully connected layers, for the
        sparse engine's cycle model: one value for all, or per layer name (e.g. measured by
        :func:`activation_densities`); ``None`` keeps every layer on the MVTU.
    ddr_weights : bool
        When nothing fits with every weight on chip, let matrix products stream their weights from
        DDR (one AXI-HP port each, at :func:`~lowbit.mapping.schedule.ddr_stream_bits` per cycle;
        at most one layer per spare port), preferring the placements that move the fewest bits.

    Returns
    -------
    Schedule
        Without a target, the schedule with the fewest cycles per image that fits; with one, the
        cheapest that meets it.

    Raises
    ------
    LowbitError
        If no folding fits the budget (naming the resources over it and by how much), if a target
        is faster than any folding, or if ``budget``, ``clock_mhz`` or a target is not valid, or
        if the graph is not a chain or holds a node no hardware implements yet
        (:func:`check_mappable`).
    """
    check_mappable(graph, "map")
    board = get_board(board)
    budget = _check_budget(budget)
    clock_mhz = board.fabric_clock_mhz if clock_mhz is None else clock_mhz
    if isinstance(clock_mhz, bool) or not isinstance(clock_mhz, (int, float)) or not clock_mhz > 0:
        raise LowbitError(f"clock_mhz must be a positive number, not {clock_mhz!r}")
    limit = None
    if max_cycles is not None:
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
            raise LowbitError(f"max_cycles must be a positive integer, not {max_cycles!r}")
        limit = max_cycles
    if target_fps is not None:
        if (
            isinstance(target_fps, bool)
            or not isinstance(target_fps, (int, float))
            or not target_fps > 0
        ):
            raise LowbitError(f"target_fps must be a positive number, not {target_fps!r}")
        fps_cycles = math.floor(clock_mhz * 1e6 / target_fps)
        if fps_cycles < 1:
            raise LowbitError(f"target_fps ({target_fps:g}) is above the clock ({clock_mhz:g} MHz)")
        limit = fps_cycles if limit is None else min(limit, fps_cycles)

    if act_density is not None and not isinstance(act_density, dict):
        if (
            isinstance(act_density, bool)
            or not isinstance(act_density, (int, float))
            or not 0 < act_density <= 1
        ):
            raise LowbitError(f"act_density must lie in (0, 1], not {act_density!r}")
    found, (layers, cheapest, targets) = _search(
        graph, board, budget, clock_mhz, limit, act_density, None
    )
    ddr = ddr_stream_bits(board, clock_mhz) if ddr_weights else None
    if found is None and ddr is not None:
        # spill: let layers stream their weights from DDR (cheapest first counts the DDR traffic)
        found, _ = _search(graph, board, budget, clock_mhz, limit, act_density, ddr)
        if found is not None:
            logger.info(
                "on chip the graph does not fit %s within %g; streaming the weights of %s from DDR "
                "(%d bits per cycle each)",
                board.name,
                budget,
                ", ".join(found.ddr_layers),
                ddr,
            )
    if found is not None:
        return found

    worst = targets[0] if limit is not None else targets[-1]
    total = _total([pick(worst) for pick in cheapest[0]], graph)
    if limit is not None:
        raise LowbitError(
            f"no folding of {limit} cycles per image or fewer fits {board.name} within a budget of "
            f"{budget:g}: the cheapest needs {_over_message(total, board, budget)}"
        )
    also = " (also with weights streamed from DDR)" if ddr is not None else ""
    raise LowbitError(
        f"the graph does not fit {board.name} within a budget of {budget:g}{also}: even the "
        f"cheapest folding needs {_over_message(total, board, budget)}"
    )
