# amaranth: UnusedElaboratable=no
"""Issue 19: "a FIFO depth one below the model's minimum on a residual branch lowers the measured
throughput by the amount the dataflow model predicts", on the stitched top.

A residual network built by hand as an :class:`~lowbit.ir.IntegerGraph` (input -> pointwise
product -> fork -> {long branch: pointwise products; shortcut: identity or a requantizing
threshold} -> Add -> fully connected scores -> label), folded by a :class:`DagSchedule` written
by hand and stitched by :class:`~lowbit.hw.dag.top.DagAccelerator`, runs in the Amaranth simulator.
From :mod:`lowbit.mapping.branch_fifo`, with the long branch's latency ``L`` the sum of its units'
``latency()``, the shortcut's ``Ls`` its threshold's, and the period ``P`` the bottleneck's cycles
per image over the fork's beats per image: at ``D_min`` the top measures the mapper's cycles per
image, at ``D_min - 1`` exactly :func:`residual_cycles` (a fraction: the steady state's periodic
pattern of result cycles), == in both; scores equal to the graph's oracle. The mapper
(:func:`~lowbit.mapping.dag.map_dag`) sizes each shortcut FIFO at least at that minimum
(:func:`~lowbit.mapping.dag.branch_latency`): a block of one beat per image runs at its 1 cycle.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lowbit.hw.codec import decode_result, input_beats
from lowbit.hw.dag.top import DagAccelerator, dag_stream_format
from lowbit.ir import Add, DataType, IntegerGraph, MatMulThreshold, Threshold
from lowbit.mapping.branch_fifo import (
    min_branch_fifo_depth,
    residual_cycles,
    residual_throughput,
)
from lowbit.mapping.dag import (
    DagSchedule,
    NodeFolding,
    branch_latency,
    map_dag,
    shortcut_fifo_edges,
)
from lowbit.sim.amaranth_sim import run_stream

U2, I2 = DataType.uint(2), DataType.int(2)
H, W, C = 2, 4, 4
IMAGES = 32
"""Images per run; the first :data:`WARM` results are the pipeline filling."""
WARM = 8


def _pointwise(rng, name: str, c_in: int) -> MatMulThreshold:
    return MatMulThreshold(name, U2, rng.integers(-1, 2, (C, c_in)),
                           np.sort(rng.integers(-4, 5, (C, 3)), axis=1), U2, I2)


def _network(branch: int, in_channels: int, requant: bool) -> IntegerGraph:
    """fc0 -> fork -> {``branch`` pointwise products; the shortcut, through a threshold when
    ``requant``} -> add -> scores, on ``H x W`` images of ``in_channels`` channels."""
    rng = np.random.default_rng(19)
    nodes = [_pointwise(rng, "fc0", in_channels)]
    inputs = [("",)]
    for k in range(branch):
        nodes.append(_pointwise(rng, f"b{k}", C))
        inputs.append((nodes[-2].name,))
    short = "fc0"
    if requant:
        nodes.append(Threshold("q", np.array([[1, 2, 3]]), U2, U2))
        inputs.append(("fc0",))
        short = "q"
    nodes.append(Add("add", (U2, U2), np.ones(C, dtype=int), np.array([1, 2, 1, 2]),
                     np.array([[1, 3, 5]]), U2))
    inputs.append((f"b{branch - 1}", short))
    nodes.append(MatMulThreshold("scores", U2, rng.integers(-1, 2, (3, H * W * C)), None,
                                 weight_dtype=I2))
    inputs.append(("add",))
    return IntegerGraph(U2, tuple(nodes), (H, W, in_channels), None, tuple(inputs))


def _periodic(cycles: list[int]) -> Fraction:
    """Cycles per image of the periodic pattern of result gaps after :data:`WARM`, exactly."""
    gaps = np.diff(cycles).tolist()[WARM:]
    for p in range(1, len(gaps) // 3 + 1):
        if all(gaps[k] == gaps[k + p] for k in range(len(gaps) - p)):
            return Fraction(sum(gaps[:p]), p)
    raise AssertionError(f"no periodic pattern in {gaps}")


def _measure(graph: IntegerGraph, schedule: DagSchedule, x: np.ndarray) -> Fraction:
    specs, fifos = schedule.apply(graph)
    acc = DagAccelerator(graph, specs, fifos)
    fmt = dag_stream_format(acc)
    beats = [b for image in input_beats(fmt, x) for b in image]
    run = run_stream(acc, beats, len(x), max_cycles=50 * len(beats))
    results = [decode_result(fmt, w) for w in run.outputs]
    assert [s for _, s in results] == graph.scores(x).tolist()
    assert [label for label, _ in results] == graph.predict(x).tolist()
    return _periodic(run.out_cycles)


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("branch, in_channels, requant, expected", [
    # (L, Ls, P, D_min, cycles at D_min, at D_min - 1)
    pytest.param(1, 4, False, (3, 0, 1, 4, 8, 10), id="L3-P1"),
    pytest.param(2, 4, True, (6, 1, 1, 6, 8, Fraction(64, 7)), id="L6-P1-requant"),
    pytest.param(3, 8, False, (9, 0, 2, 5, 16, Fraction(88, 5)), id="L9-P2"),
])
def test_shortcut_fifo_one_below_the_minimum_on_the_stitched_top(
        branch, in_channels, requant, expected):
    g = _network(branch, in_channels, requant)
    names = [n.name for n in g.nodes]
    # fully parallel pointwise products (one pixel per beat); fc0 over in_channels / 4 beats
    folding = tuple(NodeFolding(n, 3 if n == "scores" else C, C) for n in names)
    specs, _ = DagSchedule(folding).apply(g)
    latency = sum(specs[names.index(f"b{k}")].latency() for k in range(branch))
    short = specs[names.index("q")].latency() if requant else 0
    beats = H * W  # the fork's beats per image: one pixel of C channels each
    bottleneck = DagSchedule(folding).cycles_per_image(g)
    assert bottleneck % beats == 0
    period = bottleneck // beats
    d_min = min_branch_fifo_depth(latency, period, shortcut_latency=short)
    assert (latency, short, period, d_min) == expected[:4]

    (edge,) = shortcut_fifo_edges(g)  # right after the fork: into the threshold, or the add
    assert names[edge[0]] == ("q" if requant else "add")
    x = np.random.default_rng(0).integers(0, 4, (IMAGES, H, W, in_channels))
    got = {}
    for depth in (d_min, d_min - 1):
        schedule = DagSchedule(folding, ((names[edge[0]], edge[1], depth),))
        assert schedule.cycles_per_image(g) == bottleneck  # the mapper does not see the FIFO
        got[depth] = _measure(g, schedule, x)
    model = {d: residual_cycles(beats, latency, d, period, short) for d in got}
    assert got == model
    assert (got[d_min], got[d_min - 1]) == expected[4:]
    assert got[d_min] == bottleneck < got[d_min - 1]


def test_shortcut_units_hand_worked():
    # a threshold (1 cycle) after the FIFO holds one beat more: L = 6 needs D + 1 + 1 >= 8
    assert residual_throughput(6, 5, shortcut_latency=1) == Fraction(7, 8)
    assert residual_throughput(6, 5) == Fraction(6, 8)
    assert min_branch_fifo_depth(6, shortcut_latency=1) == 6 == min_branch_fifo_depth(6) - 1
    assert residual_cycles(8, 6, 5, shortcut_latency=1) == Fraction(64, 7)
    # the FIFO's own floor (3 at full rate: it passes one beat every two cycles at D <= 2) stays
    assert min_branch_fifo_depth(2, shortcut_latency=3) == 3
    assert residual_throughput(2, 2, shortcut_latency=3) == Fraction(1, 2)
    with pytest.raises(ValueError, match=r"^shortcut_latency must be at least 0, not -1$"):
        residual_throughput(6, 5, shortcut_latency=-1)


@pytest.mark.amaranth_sim
def test_the_mapper_sizes_the_fifo_for_the_branch_latency():
    """A 4-channel residual block of one beat per image (input -> fc0 -> add(fc0, input) ->
    scores): fc0's latency is 3, so the model's minimum is 4 beats. The mapper used to floor the
    FIFO at a two-cycle branch's 3 (two images are 2 beats here), and the top measured 5 cycles
    per 4 images against the mapper's 1: exactly the model's ``residual_cycles(1, 3, 3)``."""
    fc0 = MatMulThreshold("fc0", U2, np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0],
                                               [0, 0, 1, 1]]),
                          np.array([[1, 2, 3]] * 4), U2, I2)
    add = Add("add", (U2, U2), np.array([1] * 4), np.array([2] * 4), np.array([[2, 4, 6]]), U2)
    fc1 = MatMulThreshold("fc1", U2, np.array([[1, 0, 1, -1], [-1, 1, 0, 1], [0, -1, 1, 0]]),
                          None, weight_dtype=I2)
    g = IntegerGraph(U2, (fc0, add, fc1), (4,), None, (("",), ("fc0", ""), ("add",)))
    s = map_dag(g)
    specs, _ = s.apply(g)
    assert branch_latency(g, specs) == {1: specs[0].latency()} == {1: 3}
    assert s.fifos == (("add", 1, min_branch_fifo_depth(3)),) == (("add", 1, 4),)
    assert s.cycles_per_image(g) == 1
    x = np.random.default_rng(0).integers(0, 4, (IMAGES, 4))
    assert _measure(g, s, x) == 1
    below = DagSchedule(s.nodes, (("add", 1, 3),))
    assert _measure(g, below, x) == residual_cycles(1, 3, 3) == Fraction(5, 4)
