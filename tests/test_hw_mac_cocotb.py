"""Every MAC kind on cocotb + Verilator, in one build: a stitched chain of MVTUs of all kinds.

The layers (UINT8 pixels -> ternary first layer -> W2A2 bit-parallel -> W2A2 bit-serial ->
power-of-two shift-add -> ternary on bipolar inputs -> XNOR -> bipolar x INT4 bit-serial scores)
run as one accelerator under the cocotb testbench of :mod:`lowbit.sim.tb_accel` (driver, monitors,
a model fed by the monitored inputs, an in-order scoreboard): bit-exact against ``sw_reference``
for every image, steady state and with random ``valid`` / ``ready`` throttling; the measured
cycles per image equal the bottleneck layer's ``cycles()`` (a bit-serial layer, so the serial
cycle model is what is measured).
"""

import numpy as np
import pytest

from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, IntegerGraph, MatMulThreshold
from lowbit.ir.datatypes import TERNARY
from lowbit.sim.accel_sim import RunSpec, simulate

pytestmark = pytest.mark.cocotb

U2, U8, W2, W4, P3 = DataType.uint(2), DataType.uint(8), DataType.int(2), DataType.int(4), DataType.pow2(3)
# (name, MW, MH, input, weights, thresholds (None: scores), PE, SIMD, mac)
LAYERS = [
    ("first_ternary", 12, 10, U8, TERNARY, 3, 2, 3, "parallel"),
    ("w2a2_parallel", 10, 8, U2, W2, 3, 4, 5, "parallel"),
    ("w2a2_serial", 8, 6, U2, W2, 3, 3, 4, "serial"),
    ("shift", 6, 8, U2, P3, 1, 2, 3, "parallel"),
    ("ternary_bipolar", 8, 6, BIPOLAR, TERNARY, 1, 3, 4, "parallel"),
    ("xnor", 6, 6, BIPOLAR, BIPOLAR, 1, 2, 6, "parallel"),
    ("w4_serial_scores", 6, 4, BIPOLAR, W4, None, 2, 3, "serial"),
]


def _graph_and_specs(rng):
    nodes, specs = [], []
    for name, mw, mh, in_dt, w_dt, n_thr, pe, simd, mac in LAYERS:
        w = w_dt.sample(rng, (mh, mw))
        probe = MatMulThreshold(name, in_dt, w, None, weight_dtype=w_dt)
        if n_thr is None:
            node = probe
        else:
            lo, hi = probe.acc_range
            # thresholds around the middle of the reachable range, so outputs vary
            span = max(1, (hi - lo) // 4)
            t = np.sort(rng.integers(-span, span + 1, (mh, n_thr)) + (lo + hi) // 2, axis=1)
            node = MatMulThreshold(name, in_dt, w, t, BIPOLAR if n_thr == 1 else U2, weight_dtype=w_dt)
        nodes.append(node)
        specs.append(MVTUSpec(node, pe=pe, simd=simd, mac=mac))
    return IntegerGraph(U8, tuple(nodes)), specs


def test_every_mac_kind_bit_exact_and_on_the_cycle_model(tmp_path):
    rng = np.random.default_rng(2024)
    graph, specs = _graph_and_specs(rng)
    assert {s.kind for s in specs} == {"ternary", "multibit", "shift", "xnor"}
    assert {s.mac for s in specs} == {"parallel", "serial"}
    x = rng.integers(0, 256, (24, graph.input_size))
    runs = [RunSpec("steady"), RunSpec("throttled-seed3", 0.5, 0.4, 3, 12), RunSpec("throttled-seed4", 0.3, 0.9, 4, 12)]
    report = simulate(graph, specs, x, tmp_path, runs=runs)
    for run in report.runs:
        assert run["mismatched_images"] == 0, (run["name"], run["mismatches"])
        assert run["checked"] == (len(x) if run["name"] == "steady" else 12), run["name"]
    assert list(report.labels) == list(graph.predict(x))
    bottleneck = max(s.cycles() for s in specs)
    assert bottleneck == specs[-1].cycles() == 2 * 2 * (2 * 4)  # NF * SF * bipolar planes * INT4 planes
    assert report.steady["cycles_per_image"] == bottleneck
