"""The stitched CNV accelerator (windows -> MVTUs -> pools ... -> FC -> label) against sw_reference.

A scaled-down CNV-W1A1 (same topology as BNN-PYNQ's, channels x 1/8, the published folding shrunk
to divisors) keeps the suite fast; the full-size CNV-W1A1 / CNV-W2A2 runs (>= 4 images each, cycles
per image within 1 % of 32,768 / 115,200) are in ``benchmarks/cnv_accel.py`` because a full-size
Verilator build alone takes minutes.

* fast path (compiled Verilator): 6 random images back to back, bit-exact, steady-state cycles per
  image equal to the schedule's bottleneck (``==``); the same under random valid/ready throttling; a
  reset in the middle of the first image, then all images again, bit-exact;
* cocotb on Verilator: 2 images through the same design with the accelerator testbench.
"""

import numpy as np
import pytest

from lowbit.flow.steps import zoo_schedule
from lowbit.hw.top import Accelerator, stream_format
from lowbit.hw.codec import decode_results, input_words
from lowbit.hw.verilog import write_verilog
from lowbit.quant import builtin as zoo
from lowbit.sw_reference import argmax_lowest

WIDTH = 0.125


VARIANTS = ["cnv-w1a1", "cnv-w2a2"]


def _design(name, tmp_path_factory):
    model = zoo.build(name, width=WIDTH, seed=5)
    schedule = zoo_schedule(model.name, model.graph, model.matmul_folding, "ultra96-v2")
    specs = schedule.apply(model.graph)
    acc = Accelerator(specs)
    path = tmp_path_factory.mktemp("cnv") / "lowbit_top.v"
    write_verilog(acc, path)
    report = schedule.report(model.graph)
    return model.graph, specs, path, stream_format(acc), report["cycles_per_image"]


@pytest.fixture(scope="module")
def cnv_design(tmp_path_factory):
    return _design("cnv-w1a1", tmp_path_factory)


@pytest.fixture(scope="module", params=VARIANTS)
def any_cnv_design(request, tmp_path_factory):
    return _design(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(21).integers(0, 256, (6, 32 * 32 * 3))


@pytest.mark.fast_sim
def test_scaled_cnv_fast_path_bit_exact_and_on_the_cycle_model(any_cnv_design, images):
    from lowbit.sim.verify import Pattern, verify_fast

    graph, _, path, fmt, predicted = any_cnv_design
    rep = verify_fast(graph, path, fmt, images,
                      patterns=[Pattern("steady"), Pattern("throttled-seed9", 0.6, 0.5, 9)])
    assert rep.mismatch is None, str(rep.mismatch)
    assert rep.ok, rep.runs
    assert [r["mismatched_images"] for r in rep.runs] == [0, 0]
    assert list(rep.labels) == list(graph.predict(images))
    assert rep.cycles_per_image == predicted


@pytest.mark.fast_sim
def test_scaled_cnv_w1a1_recovers_from_a_reset_mid_image(cnv_design, images):
    from lowbit.sim.fast import VerilatedModel

    graph, _, path, fmt, _ = cnv_design
    beats = input_words(fmt, images)
    with VerilatedModel.build(path) as model:
        model.reset()
        partial = model.stream(beats[: fmt.beats_per_image // 2], 1, max_cycles=fmt.beats_per_image)
        assert partial.timed_out  # stopped in the middle of the first image
        model.reset()
        res = model.stream(beats, len(images))
    assert not res.timed_out
    labels, scores = decode_results(fmt, res.outputs)
    expected = graph.scores(images)
    bad = np.argwhere(scores != expected)
    assert not len(bad), f"image {bad[0][0]} score {bad[0][1]}: got {scores[tuple(bad[0])]}, " \
                         f"expected {expected[tuple(bad[0])]}"
    assert (labels == argmax_lowest(expected)).all()


@pytest.mark.cocotb
def test_scaled_cnv_w1a1_under_cocotb(cnv_design, images, tmp_path):
    from lowbit.sim.accel_sim import RunSpec, simulate

    graph, specs, _, _, predicted = cnv_design
    report = simulate(graph, specs, images[:2], tmp_path, runs=[RunSpec("steady", images=2)])
    run = report.steady
    assert run["checked"] == 2 and run["mismatched_images"] == 0, run["mismatches"]
    assert list(report.labels) == list(graph.predict(images[:2]))
