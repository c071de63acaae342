"""Predicted cycles equal the measured ones, with ``==``, for designs with a sparse-engine layer
(issue 16).

The schedule's cycles for a sparse layer are an estimate at an assumed activation density; the
compiled CNN with ``TruncAvgPool2d`` of the Brevitas zoo measured 576.06 cycles per image against
576 predicted. :func:`lowbit.mapping.sparse_timing.sparse_pipeline_timing` predicts the cycle each
result leaves from the data (the engine's cycle model on each image's own input vector to the
layer, coupled with the dense stages), and :func:`lowbit.sim.verify.verify_fast` compares it with
the Verilated RTL image by image.
"""

import numpy as np
import pytest
from test_sparse_placement import U2, U4, sparse_mlp, sparse_node

from lowbit.flow import compile_model
from lowbit.flow.compiled import CompiledDesign
from lowbit.hw.sparse.cycle_model import engine_cycles
from lowbit.ir import IntegerGraph
from lowbit.ir.graph import GlobalAccPool, SlidingWindow
from lowbit.mapping import Schedule
from lowbit.mapping.schedule import LayerFolding
from lowbit.mapping.sparse_timing import sparse_pipeline_timing
from lowbit.sim.verify import CyclePrediction, FastReport, predict_cycles, verify_fast


@pytest.fixture(scope="module")
def _private_cache(private_verilator_cache):
    """The RTL tests build their Verilated models in their own cache."""


def mlp():
    """A 32-16-10 MLP whose first layer (pruned, thresholds) goes on the sparse engine."""
    rng = np.random.default_rng(5)
    g = IntegerGraph(U4, (sparse_node(rng, "fc0", 32, 16, U4, 0.2, 3),
                          sparse_node(rng, "fc1", 16, 10, U2, 0.5, 0)))
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 4, 4, engine="sparse", depth=2),
                                    LayerFolding("fc1", 10, 16)))
    x = rng.integers(0, 16, (40, 32))
    x[rng.random(x.shape) < 0.5] = 0
    return g, s, x


def windowed(pw_fold=(1, 1)):
    """The zoo CNN's shape in small: a pixel-wise layer on a 4 x 4 x 2 image, a window over the
    whole image (one vector of 64), the sparse layer, a global pool, the scores."""
    rng = np.random.default_rng(5)
    pw = sparse_node(rng, "pw", 2, 4, U4, 0.9, 3)
    fc0 = sparse_node(rng, "fc0", 64, 8, U2, 0.2, 3)
    fc1 = sparse_node(rng, "fc1", 8, 4, U2, 0.6, 0)
    g = IntegerGraph(U4, (pw, SlidingWindow("win", 4, 4, 0), fc0, GlobalAccPool("flat", U2), fc1),
                     input_shape=(4, 4, 2))
    s = Schedule("pynq-z2", 100.0, (LayerFolding("pw", *pw_fold), LayerFolding("win", 4, 4),
                                    LayerFolding("fc0", 8, 4, engine="sparse"),
                                    LayerFolding("flat", 8, 8), LayerFolding("fc1", 4, 8)))
    return g, s, rng.integers(0, 16, (40, 32))


def run(g, s, x, tmp_path) -> FastReport:
    compile_model(g, tmp_path / "c", schedule=s)
    design = CompiledDesign.open(tmp_path / "c")
    report = design.report()
    return verify_fast(g, design.require(report.simulated_verilog), report.stream_format, x,
                       schedule=s)


def test_engine_reports_its_last_input_beat():
    """Three beats of one lane: zeros cost a cycle each (accepted at 0, 1, 2); a non-zero one
    behind a queue of depth 1 that is still full waits."""
    assert engine_cycles([[3, 3, 3]], [0, 0, 0], depth=1, lanes=1, rows=4).last_accept == 2
    assert engine_cycles([[3]], [5], depth=1, lanes=1, rows=4).last_accept == 0
    # beat 0 (t=0) broadcast at t=1 while beat 1 is accepted; beat 1's broadcast waits for the
    # queue (its entry leaves at t=2), so beat 2 is accepted at t=3
    assert engine_cycles([[3, 3, 3]], [5, 5, 0], depth=1, lanes=1, rows=4).last_accept == 3


@pytest.mark.fast_sim
def test_sparse_first_layer_cycles_equal_measured(tmp_path, _private_cache):
    """The layer reads the input port: the engine is the bottleneck, each result leaves the
    engine's cycles on that image after the previous one; the estimate at density 0.5 is not the
    measured rate, the prediction from the data is, image by image."""
    g, s, x = mlp()
    rep = run(g, s, x, tmp_path)
    assert rep.ok, (rep.mismatch, rep.cycles.describe())
    pred = rep.cycles
    assert pred.sparse_layer == "fc0" and pred.reason is None
    assert pred.equal is True
    assert np.array_equal(pred.out_cycles, pred.measured) and len(pred.measured) == len(x)
    assert pred.exact == rep.cycles_per_image
    assert pred.estimate == 32 and rep.cycles_per_image != 32
    spec = s.apply(g)[0]
    assert np.array_equal(np.diff(pred.out_cycles), [spec.engine.timing(v).cycles for v in x[1:]])


@pytest.mark.fast_sim
def test_whole_image_window_cycles_equal_measured(tmp_path, _private_cache):
    """Fed by a window over the whole image behind a slower pixel-wise layer (128 cycles per
    image), as in the zoo's CNN: image i's result leaves c_i - c_0 + 128 i cycles after image
    0's."""
    g, s, x = windowed()
    rep = run(g, s, x, tmp_path)
    assert rep.ok, (rep.mismatch, rep.cycles.describe())
    pred = rep.cycles
    assert pred.equal is True and pred.exact == rep.cycles_per_image
    timing = sparse_pipeline_timing(g, s.apply(g), x)
    assert timing.period == 128 and timing.late == 0
    c = timing.engine_cycles
    assert np.array_equal(pred.measured, c - c[0] + 128 * np.arange(len(x)))
    assert len(set(np.diff(pred.measured).tolist())) > 1  # the data shows in the intervals


def test_a_difference_fails_the_verification():
    pred = CyclePrediction(10, "fc0", np.array([0, 10, 21]), 10.5).with_measured([7, 17, 29])
    assert pred.measured.tolist() == [0, 10, 22]
    assert pred.equal is False and pred.first_difference == (2, 21, 22)
    assert "image 2: predicted cycle 21, measured 22" in pred.describe()
    report = FastReport(3, (), np.zeros(3), 11.0, 7, cycles=pred)
    assert not report.ok
    same = CyclePrediction(10, "fc0", np.array([0, 10, 22]), 11.0).with_measured([7, 17, 29])
    assert same.equal is True and FastReport(3, (), np.zeros(3), 11.0, 7, cycles=same).ok


def test_designs_outside_the_model_get_the_estimate_and_the_reason():
    # fed by a dense layer: its beats come over its cycles, not in one burst
    g = sparse_mlp(seed=1)
    s = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 16, 16),
                                    LayerFolding("fc1", 1, 4, engine="sparse"),
                                    LayerFolding("fc2", 10, 16)))
    x = np.random.default_rng(3).integers(0, 16, size=(8, 64))
    pred = predict_cycles(g, s, x)
    assert pred.out_cycles is None and pred.exact is None and pred.equal is None
    assert pred.estimate == s.report(g)["cycles_per_image"]
    assert pred.reason == (
        "sparse layer 'fc1' is fed by 'fc0' (MatMulThreshold), which does not deliver its vector "
        "in one burst: the exact timing covers the input port and a sliding window over the "
        "whole image"
    )
    assert pred.describe().startswith("estimate ")
    # two sparse layers
    s2 = Schedule("pynq-z2", 100.0, (LayerFolding("fc0", 8, 4, engine="sparse"),
                                     LayerFolding("fc1", 4, 4),
                                     LayerFolding("fc2", 2, 2, engine="sparse")))
    assert predict_cycles(g, s2, x).reason == (
        "the exact sparse timing covers one sparse layer, not 2: 'fc0', 'fc2'"
    )
    # the window's image comes every 16 cycles, faster than the engine takes it
    g3, s3, x3 = windowed(pw_fold=(4, 2))
    reason = predict_cycles(g3, s3, x3).reason
    assert reason.startswith("sparse layer 'fc0' is still taking image 0's vector")
    assert reason.endswith("its input FIFO would hold up 'win', which the exact timing does not "
                           "model")
