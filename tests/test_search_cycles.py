"""The folding search prices every stage, not only the matrix products (issue 17).

A sliding-window generator, a pool or an input threshold unit takes the folding of the product it
feeds or follows (:func:`lowbit.mapping.schedule.complete_layers`), so its cycles follow from that
product's folding; since the window generator's cycle model is exact (``SWGSpec.cycles``), a
stride-2 window can take more cycles than the product it feeds and set the bottleneck. The schedule
the search returns must meet its target by the same :func:`~lowbit.mapping.pipeline_cycles` that
:meth:`~lowbit.mapping.Schedule.report` and :func:`~lowbit.mapping.placement.placement_reasons` use.
"""

import itertools
import logging

import numpy as np
import pytest
from mapping_models import random_node

from lowbit import LowbitError
from lowbit.boards import get_board
from lowbit.ir import DataType, IntegerGraph, SlidingWindow
from lowbit.ir.graph import GlobalAccPool, Threshold
from lowbit.mapping import Schedule, pipeline_cycles, search_folding
from lowbit.mapping.folding import folding_of, layer_options
from lowbit.mapping.schedule import complete_layers, ddr_stream_bits, vectors_per_image

U2 = DataType.uint(2)
U4 = DataType.uint(4)


def cnn(h=6, w=5, c=2, k=3, s=2, p=0, m=4, classes=3, wire=False, seed=0) -> IntegerGraph:
    """``SlidingWindow(k, s, p) -> conv (m channels, UINT2) -> GlobalAccPool -> fc (scores)`` on a
    UINT2 image ``(h, w, c)``; with ``wire``, an input threshold unit (UINT4 -> UINT2) first."""
    rng = np.random.default_rng(seed)
    swg = SlidingWindow("swg", k, s, p)
    (oh, ow, mw), _ = swg.infer((h, w, c), U2)
    conv = random_node(rng, "conv", mw, m, U2, 3)
    pool = GlobalAccPool("pool", conv.output_dtype)
    _, pooled = pool.infer((oh, ow, m), conv.output_dtype)
    fc = random_node(rng, "fc", m, classes, pooled, 0)
    nodes = [swg, conv, pool, fc]
    dtype = U2
    if wire:
        nodes.insert(0, Threshold("thr", np.array([[4, 8, 12]]), U4, U2))
        dtype = U4
    return IntegerGraph(dtype, tuple(nodes), input_shape=(h, w, c))


def bounded_cycles(graph, schedule, board) -> list[int]:
    """Every stage's cycles per image as the search must count them: the report's
    :func:`pipeline_cycles` with the board's AXI-HP port bounding the image in and the scores out
    (what :func:`placement_reasons` uses)."""
    ddr = ddr_stream_bits(board, schedule.clock_mhz)
    return pipeline_cycles(
        schedule.apply(graph), board.axi_hp_width_bits, vectors_per_image(graph), ddr
    )


# -- the stride-2 window of the docstring of hw/stream/swg.py ------------------------------------
#
# A 6 x 5 image, K = 3, S = 2, one beat per pixel (SIMD = C = 2): OH = OW = 2, so the generator
# emits 2 * 2 * 9 = 36 beats per image from 30 input beats, but the last output row of an image
# waits for all 6 rows and the next image's rows wait for the ring to release them: 41 cycles
# (steady_cycles(6, 5, 1, 3, 2, 0, 6), hw/stream/swg.py). The product it feeds, fully unfolded
# (PE = 4, SIMD = 2), takes 4 vectors * (4/4) * (18/2) = 36 cycles: the window is the bottleneck.


def test_a_target_below_the_window_generator_is_out_of_reach():
    g = cnn()
    with pytest.raises(
        LowbitError,
        match=r"^the target of 40 cycles per image is out of reach: even fully unfolded, "
        r"layer 'swg' takes 41 cycles$",
    ):
        search_folding(g, "pynq-z2", max_cycles=40)
    with pytest.raises(LowbitError, match=r"^the target of 40 cycles per image is out of reach"):
        search_folding(g, "pynq-z2", clock_mhz=100.0, target_fps=100e6 / 40)


def test_the_window_generator_sets_the_bottleneck_the_search_claims(caplog):
    g = cnn()
    board = get_board("pynq-z2")
    for target in (None, 41):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="lowbit.mapping.folding"):
            s = search_folding(g, board, max_cycles=target)
        report = s.report(g)
        assert [layer["cycles"] for layer in report["layers"]] == [41, 36, 4, 12]
        assert (report["cycles_per_image"], report["bottleneck"]) == (41, "swg")
        assert bounded_cycles(g, s, board) == [41, 36, 4, 12]
        (claim,) = [r.getMessage() for r in caplog.records if "cycles per image" in r.getMessage()]
        assert ": 41 cycles per image (" in claim


def test_the_window_generator_counts_in_its_products_options():
    """A candidate of the product is priced at its slowest stage: the window at the product's
    SIMD (41 cycles at SIMD 2, 82 at SIMD 1: two beats per pixel), the pool after it at its PE."""
    g = cnn()
    by_folding = {
        (c.spec.pe, c.spec.simd): c.cycles
        for c in layer_options(g, 1, get_board("pynq-z2").axi_hp_width_bits)
    }
    # conv: 4 vectors * (4 / PE) * (18 / SIMD); window 41 (SIMD 2) or 82 (SIMD 1)
    assert by_folding == {
        (4, 2): 41, (2, 2): 72, (1, 2): 144, (4, 1): 82, (2, 1): 144, (1, 1): 288,
    }


# -- against every folding -----------------------------------------------------------------------

GRAPHS = {
    "stride 2": dict(),
    "stride 2, padded": dict(h=7, w=7, c=4, k=3, s=2, p=1, m=2),
    "stride 3 > kernel": dict(h=5, w=9, c=2, k=2, s=3, m=6),
    "input threshold unit": dict(wire=True),
    "wide pixels": dict(h=6, w=6, c=8, k=3, s=2, m=2, classes=2),
}


def every_schedule(g, board):
    """Every combination of the products' candidates, completed as the search completes them."""
    port = board.axi_hp_width_bits
    mm = [i for i, n in enumerate(g.nodes) if hasattr(n, "mw")]
    options = [layer_options(g, i, port) for i in mm]
    for choice in itertools.product(*options):
        layers = complete_layers(g, [folding_of(c.spec) for c in choice])
        yield Schedule(board.name, board.fabric_clock_mhz, tuple(layers))


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_every_target_is_met_exactly_as_the_report_counts(name):
    """The fastest reachable bottleneck over every folding is what the search finds without a
    target; every target at or above it is met; every target below it is refused."""
    g = cnn(**GRAPHS[name])
    board = get_board("pynq-z2")
    best = min(max(bounded_cycles(g, s, board)) for s in every_schedule(g, board))
    fastest = search_folding(g, board, budget=1.0, act_density=None)
    assert max(bounded_cycles(g, fastest, board)) == best
    for target in range(best - 3, 4 * best):
        if target < best:
            with pytest.raises(LowbitError, match="out of reach"):
                search_folding(g, board, budget=1.0, act_density=None, max_cycles=target)
            continue
        s = search_folding(g, board, budget=1.0, act_density=None, max_cycles=target)
        assert max(bounded_cycles(g, s, board)) <= target, target
        assert s.report(g)["cycles_per_image"] <= target, target
