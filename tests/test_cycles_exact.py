"""Predicted cycles per image equal the measured ones, with ``==`` (issue 16, item 7).

A compiled ternary MLP reported 5 predicted cycles per image and measured 4.0: its 64 UINT5 pixels
are 320 bits, five cycles through pynq-z2's 64-bit AXI-HP port, and the report's
``cycles_per_image`` counted that port, but the accelerator's Verilog takes one beat of ``SIMD``
pixels per cycle whatever its width (here 16 x 5 = 80 bits: four beats, four cycles). The report
now predicts what the Verilog does and gives the port's bounds apart (``input_stream_cycles``,
``output_stream_cycles``); the folding search still counts them, so it does not unfold a layer
beyond what the port can feed.
"""

import numpy as np
import pytest

from lowbit.flow import compile_model, verify_compiled_fast
from lowbit.ir import TERNARY, DataType, IntegerGraph, MatMulThreshold
from lowbit.mapping import Schedule
from lowbit.mapping.schedule import LayerFolding

pytestmark = pytest.mark.fast_sim


@pytest.fixture(scope="module", autouse=True)
def _private_cache(private_verilator_cache):
    """Every module builds its Verilated models in its own cache."""


def ternary_mlp(sizes, in_dtype, hidden=DataType.uint(2), seed=0) -> IntegerGraph:
    """A ternary-weight MLP: ``in_dtype`` inputs, ``hidden`` activations, scores out."""
    rng = np.random.default_rng(seed)
    nodes, dtype = [], in_dtype
    for i, (mw, mh) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(-1, 2, (mh, mw))
        if i == len(sizes) - 2:
            nodes.append(MatMulThreshold(f"fc{i}", dtype, w, None, weight_dtype=TERNARY))
            break
        lo, hi = MatMulThreshold("probe", dtype, w, None, weight_dtype=TERNARY).acc_range
        t = np.sort(rng.integers(lo // 4, hi // 4 + 2, (mh, 3)), axis=1)
        nodes.append(MatMulThreshold(f"fc{i}", dtype, w, t, hidden, weight_dtype=TERNARY))
        dtype = hidden
    return IntegerGraph(in_dtype, tuple(nodes))


CASES = {
    # 64 UINT5 pixels, 16 a beat (80 bits): 4 beats; fc0 (16 / 16) * (64 / 16) = 4 cycles,
    # fc1 (10 / 10) * (16 / 4) = 4; the 64-bit port would take ceil(320 / 64) = 5
    "input-port": ((64, 16, 10), DataType.uint(5), (("fc0", 16, 16), ("fc1", 10, 4)), 4, 5, 2),
    # 8 UINT2 pixels in one beat, every layer unfolded: 1 cycle; the ten 7-bit scores
    # (|score| <= 16 * 3 = 48) are 70 bits, ceil(70 / 64) = 2 cycles through the port
    "output-port": ((8, 16, 10), DataType.uint(2), (("fc0", 16, 8), ("fc1", 10, 16)), 1, 1, 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_predicted_cycles_equal_measured(case, tmp_path):
    sizes, in_dtype, folding, cycles, in_port, out_port = CASES[case]
    graph = ternary_mlp(sizes, in_dtype)
    schedule = Schedule("pynq-z2", 100.0, tuple(LayerFolding(*f) for f in folding))
    report = compile_model(graph, tmp_path / "out", schedule=schedule)
    assert report.cycles_per_image == cycles
    assert (report.mapping["input_stream_cycles"], report.mapping["output_stream_cycles"]) == \
        (in_port, out_port)
    assert report.mapping["throughput_fps"] == 100e6 / cycles
    x = np.random.default_rng(1).integers(0, in_dtype.max + 1, (400, sizes[0]))
    rep = verify_compiled_fast(tmp_path / "out", x)
    assert rep.ok, rep.mismatch
    assert rep.cycles_per_image == report.cycles_per_image


def test_searched_ternary_mlp(tmp_path):
    """The issue's flow: the mapper's own folding of a 64-16-10 ternary MLP on UINT5 pixels."""
    graph = ternary_mlp((64, 16, 10), DataType.uint(5), seed=2)
    report = compile_model(graph, tmp_path / "out", budget=0.7)
    assert report.mapping["input_stream_cycles"] == 5
    x = np.random.default_rng(3).integers(0, 32, (300, 64))
    rep = verify_compiled_fast(tmp_path / "out", x)
    assert rep.ok, rep.mismatch
    assert rep.cycles_per_image == report.cycles_per_image
