"""The sparse engine's Verilog under cocotb + Verilator: bit-exact against sw_reference, cycles
equal to the cycle model. One Verilator build per N; the layers are loaded at run time.

The coroutines live in ``lowbit.sim.tb_sparse``; these are the pytest launchers.
"""

import numpy as np
import pytest

from lowbit.hw.sparse.engine_spec import SparseEngineSpec
from lowbit.sim.sparse_sim import SparseLayer, SparseRun, simulate
from lowbit.sw_reference.sparse import encode_sparse

pytestmark = pytest.mark.cocotb

# N -> (rows, cols, depth, lanes, entries_per_word): rows not multiples of N; >16 rows per PE
# so that zero runs longer than 15 occur.
ENGINES = {1: (37, 23, 2, 4, 2), 4: (70, 29, 4, 3, 4), 16: (290, 40, 8, 4, 2)}
WEIGHT_DENSITIES = (0.01, 0.1, 0.5)
ACT_DENSITIES = (0.1, 0.3, 1.0)


def _layers(rng, pes, rows, cols):
    layers = []
    for d in WEIGHT_DENSITIES:
        idx = rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < d)
        idx[:, rng.integers(0, cols)] = 0                                   # an empty column
        cb = np.concatenate([[0], rng.integers(-128, 128, 15)])
        x = [np.zeros(cols, dtype=np.int64)]                                # an all-zero vector
        x += [rng.integers(-4000, 4000, cols) * (rng.random(cols) < a) for a in ACT_DENSITIES]
        layers.append(SparseLayer(encode_sparse(idx, cb, pes), np.array(x)))
    return layers


def _has_long_runs(image):
    return any(((pe.v == 0) & (pe.z == 15)).any() for pe in image.pe_images)


def _spec(pes):
    rows, cols, depth, lanes, epw = ENGINES[pes]
    return SparseEngineSpec(rows=rows, cols=cols, pes=pes, depth=depth, lanes=lanes, entries_per_word=epw,
                            capacity=-(-rows // pes) * cols, shift=4, relu=pes != 4, out_bits=16)


@pytest.fixture(scope="module")
def n1_workdir(tmp_path_factory):
    """One traced N=1 build shared by the N=1 test and the wrong-design test (its waves need no rebuild)."""
    return tmp_path_factory.mktemp("sparse_n1")


@pytest.mark.parametrize("pes", sorted(ENGINES), ids=[f"N{n}" for n in sorted(ENGINES)])
def test_sparse_engine_bit_exact_and_cycles_equal_model(pes, tmp_path, n1_workdir):
    rows, cols = ENGINES[pes][:2]
    rng = np.random.default_rng(100 + pes)
    spec = _spec(pes)
    layers = _layers(rng, pes, rows, cols)
    assert _has_long_runs(layers[0].image)
    runs = [SparseRun(f"layer{k}-steady", k) for k in range(len(layers))]
    runs.append(SparseRun("layer2-throttled-seed5", 2, 0.6, 0.5, 5))
    report = simulate(spec, layers, n1_workdir if pes == 1 else tmp_path, runs=runs, trace=pes == 1)
    for run in report.runs:
        assert run["checked"] == len(layers[run["layer"]].x), run["name"]
        assert run["mismatched_vectors"] == 0, (run["name"], run["mismatches"])
        assert run["status_mismatches"] == [], run["name"]
    for run in report.runs[:len(layers)]:
        layer = layers[run["layer"]]
        assert run["outputs"] == spec.reference(layer.x, layer.image).tolist()
        assert run["cycles"] == [spec.timing(x, layer.image).cycles for x in layer.x]


def test_testbench_reports_row_values_and_waves_for_a_wrong_design(n1_workdir):
    rng = np.random.default_rng(5)
    spec = _spec(1)
    rows, cols, pes = spec.rows, spec.cols, 1
    idx = rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < 0.5)
    cb = np.concatenate([[0], np.arange(1, 16)])
    wrong = idx.copy()
    wrong[7, 0] = 3 if idx[7, 0] != 3 else 4                                # one weight differs
    x = np.zeros((2, cols), dtype=np.int64)
    x[0, 0] = 100
    layer = SparseLayer(encode_sparse(idx, cb, pes), x, hw_image=encode_sparse(wrong, cb, pes))
    report = simulate(spec, [layer], n1_workdir, runs=[SparseRun("steady", 0)], trace=True)
    run = report.runs[0]
    assert run["mismatched_vectors"] == 1
    first = run["mismatches"][0]
    assert (first["item"], first["where"], first["index"]) == (0, "row", 7)
    # shift 4 rounds half up: 100 * w / 16.
    assert (first["got"], first["expected"]) == ((100 * wrong[7, 0] + 8) >> 4, (100 * idx[7, 0] + 8) >> 4)
    assert report.waves is not None and report.waves.endswith(".vcd")
