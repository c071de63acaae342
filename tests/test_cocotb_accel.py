"""The stitched accelerator's Verilog under cocotb + Verilator, checked against sw_reference.

The cocotb coroutines live in ``lowbit.sim.tb_accel`` (the CLI runs the same testbench); these are
the pytest launchers, one build directory per parameter set.
"""

import numpy as np
import pytest

from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.sim.accel_sim import RunSpec, simulate

pytestmark = pytest.mark.cocotb

FOLDINGS = {
    "dwc-between-every-layer": [(2, 3), (3, 4), (2, 6)],
    "fully-folded": [(1, 1), (1, 1), (1, 1)],
}


@pytest.mark.parametrize("folding", list(FOLDINGS), ids=list(FOLDINGS))
def test_accelerator_bit_exact_and_on_cycle_model(folding, rng, random_graph, tmp_path):
    graph = random_graph(rng)
    specs = [MVTUSpec(n, pe=pe, simd=simd) for n, (pe, simd) in zip(graph.nodes, FOLDINGS[folding])]
    x = rng.integers(0, 17, (40, graph.input_size))
    runs = [RunSpec("steady"), RunSpec("throttled-seed7", 0.5, 0.4, 7), RunSpec("throttled-seed8", 0.3, 0.9, 8)]
    report = simulate(graph, specs, x, tmp_path, runs=runs)
    for run in report.runs:
        assert run["checked"] == len(x), run["name"]
        assert run["mismatched_images"] == 0, (run["name"], run["mismatches"])
    assert list(report.labels) == list(graph.predict(x))
    assert report.steady["cycles_per_image"] == max(s.cycles() for s in specs)


def test_testbench_reports_a_wrong_design_with_layer_index_values_and_waves(rng, random_graph, flip_last_layer_weight, tmp_path):
    graph = random_graph(rng)
    # Hardware built from a graph whose last layer differs in one weight bit from the reference.
    wrong = flip_last_layer_weight(graph, 2, 5)
    last = graph.nodes[-1]
    specs = [MVTUSpec(n, pe=1, simd=2) for n in wrong.nodes]
    x = rng.integers(0, 17, (30, graph.input_size))
    report = simulate(graph, specs, x, tmp_path, runs=[RunSpec("steady", images=30)])
    expected = graph.scores(x)
    got = wrong.scores(x)
    differing = int(np.sum((expected != got).any(axis=1)))
    assert differing > 0
    assert report.mismatches == differing
    first = report.steady["mismatches"][0]
    image = int(np.flatnonzero((expected != got).any(axis=1))[0])
    assert first["item"] == image
    assert first["where"] == f"{last.name}.scores"
    assert first["index"] == 2
    assert (first["got"], first["expected"]) == (int(got[image, 2]), int(expected[image, 2]))
    assert report.waves is not None and report.waves.endswith((".fst", ".vcd"))
