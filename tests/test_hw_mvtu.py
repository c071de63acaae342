# amaranth: UnusedElaboratable=no
"""The MVTU in the Amaranth simulator against its node's reference, bit for bit and cycle for cycle.

Second test layer (STYLE.md, Tests): ``MatrixVectorThresholdUnit(spec)`` is driven with a few
vectors back to back and its output beats are compared with ``spec.reference`` (which delegates to
``sw_reference``). In steady state (``valid`` and ``ready`` always high) the interval between the
last output beats of consecutive vectors must equal ``spec.cycles()`` exactly; with random
throttling (seed in the test id) only the values are checked.
"""

import numpy as np
import pytest

from lowbit.hw._util import pack_words
from lowbit.hw.verilog import to_verilog
from lowbit.hw.mvtu.unit import MatrixVectorThresholdUnit
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.sim.amaranth_sim import run_stream

UINT3, INT3 = DataType.uint(3), DataType.int(3)
INPUTS = {"bipolar": BIPOLAR, "uint3": UINT3, "int3": INT3}
# Output mode -> number of thresholds per channel (None: integer scores).
OUTPUTS = {"bipolar": 1, "uint2": 3, "scores": None}

# (MW, MH, PE, SIMD)
SHAPES = [
    (1, 1, 1, 1),      # smallest
    (1, 3, 1, 1),      # MW = 1
    (5, 1, 1, 1),      # MH = 1, SF = 5
    (4, 4, 4, 4),      # PE = MH and SIMD = MW: NF * SF == 1
    (6, 4, 4, 6),      # NF * SF == 1, non-power-of-two MW
    (12, 6, 2, 3),     # SF = 4, NF = 3
    (12, 6, 3, 4),     # SF = 3 (not a power of two), NF = 2
    (12, 6, 2, 6),     # SF = 2, NF = 3
    (10, 6, 3, 5),     # SF = 2, NF = 2
    (12, 6, 6, 1),     # SF = 12, NF = 1
    (10, 6, 1, 10),    # SF = 1, NF = 6
    (9, 5, 5, 3),      # SF = 3, NF = 1
    (15, 9, 3, 5),     # SF = 3, NF = 3
    (64, 8, 2, 16),    # wider popcount
]


def _shape_id(shape):
    return "MW{}-MH{}-PE{}-SIMD{}".format(*shape)


def _make_node(rng, mw, mh, input_dtype, n_thresholds, name):
    """Random bit weights; thresholds drawn from the full range [lo, hi + 1], extremes included."""
    weights = rng.integers(0, 2, size=(mh, mw))
    probe = MatMulThreshold(name, input_dtype, weights, None)
    if n_thresholds is None:
        return probe
    lo, hi = probe.acc_range
    t = rng.integers(lo, hi + 2, size=(mh, n_thresholds))
    t[0, 0] = lo
    t[-1, -1] = hi + 1
    if mh > 1:
        t[1 % mh, 0] = hi + 1
        t[-2 % mh, -1] = lo
    t = np.sort(t, axis=1)
    out = BIPOLAR if n_thresholds == 1 else DataType.uint(n_thresholds.bit_length())
    return MatMulThreshold(name, input_dtype, weights, t, out)


def _make_inputs(rng, dtype, mw, n):
    """``n`` vectors: all-max, all-min, then random over the whole range of ``dtype``."""
    lo, hi = dtype.stored_range
    x = dtype.sample(rng, (n, mw))
    x[0], x[1] = hi, lo
    return x


def _case(shape, in_name, out_name, seed=0):
    mw, mh, pe, simd = shape
    rng = np.random.default_rng([seed, mw, mh, pe, simd, list(INPUTS).index(in_name), list(OUTPUTS).index(out_name)])
    name = f"{_shape_id(shape)}-{in_name}-{out_name}"
    node = _make_node(rng, mw, mh, INPUTS[in_name], OUTPUTS[out_name], name)
    spec = MVTUSpec(node, pe=pe, simd=simd)
    x = _make_inputs(rng, node.input_dtype, mw, 5)
    return spec, x


def _run(spec, x, **throttle):
    """Simulate ``spec``'s MVTU on the rows of ``x``; return outputs ``(B, MH)`` and the run."""
    dut = MatrixVectorThresholdUnit(spec)
    ib, ob = dut.in_shape.width, dut.out_shape.width
    sf, simd, pe = spec.synapse_folds, spec.simd, spec.pe
    beats = [pack_words(row[s * simd:(s + 1) * simd], ib) for row in x for s in range(sf)]
    # A generous bound, so that a hardware bug that loses beats fails fast instead of hanging.
    max_cycles = 20 * (len(x) * (spec.cycles() + sf + spec.neuron_folds) + 50)
    run = run_stream(dut, beats, len(x) * spec.neuron_folds, max_cycles=max_cycles, **throttle)
    values = []
    for word in run.outputs:
        for p in range(pe):
            v = (word >> (p * ob)) & ((1 << ob) - 1)
            if dut.out_shape.signed and v >> (ob - 1):
                v -= 1 << ob
            values.append(v)
    return np.array(values, dtype=np.int64).reshape(len(x), spec.mh), run


def _assert_equal_outputs(spec, got, ref):
    assert got.shape == ref.shape
    bad = np.argwhere(got != ref)
    if len(bad):
        b, j = bad[0]
        raise AssertionError(f"node {spec.node.name!r}: vector {b} output {j}: hardware {got[b, j]} != "
                             f"reference {ref[b, j]} ({len(bad)} mismatches in total)")


STEADY = [pytest.param(shape, i, o, id=f"{_shape_id(shape)}-{i}-{o}")
          for shape in SHAPES for i in INPUTS for o in OUTPUTS]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("shape, in_name, out_name", STEADY)
def test_mvtu_steady_state(shape, in_name, out_name):
    spec, x = _case(shape, in_name, out_name)
    ref = spec.reference(x)
    got, run = _run(spec, x)
    _assert_equal_outputs(spec, got, ref)
    # Interval between the last output beats of consecutive vectors: exactly NF * SF cycles.
    nf = spec.neuron_folds
    last_beats = np.array(run.out_cycles[nf - 1::nf])
    assert np.diff(last_beats).tolist() == [spec.cycles()] * (len(x) - 1), \
        f"node {spec.node.name!r}: output cycles {run.out_cycles}, expected {spec.cycles()} per vector"


def _throttled_params():
    params, k = [], 0
    for shape in SHAPES:
        for i in INPUTS:
            # One output mode per (shape, input) pair, rotating, so every combination is throttled
            # somewhere without tripling the run time.
            o = list(OUTPUTS)[k % len(OUTPUTS)]
            seed = 100 + k
            params.append(pytest.param(shape, i, o, seed, id=f"{_shape_id(shape)}-{i}-{o}-seed{seed}"))
            k += 1
        k += 1
    return params


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("shape, in_name, out_name, seed", _throttled_params())
def test_mvtu_throttled(shape, in_name, out_name, seed):
    spec, x = _case(shape, in_name, out_name, seed)
    got, _ = _run(spec, x, seed=seed, valid_prob=0.5, ready_prob=0.4)
    _assert_equal_outputs(spec, got, spec.reference(x))


# -- parameter validation -------------------------------------------------------------------------

def _plain_node(mw, mh, name="fc"):
    return MatMulThreshold(name, BIPOLAR, np.zeros((mh, mw), dtype=np.uint8), None)


def test_simd_must_divide_mw():
    with pytest.raises(ValueError, match=r"^SIMD \(5\) must divide MW \(64\)"):
        MVTUSpec(_plain_node(64, 4), pe=1, simd=5)


def test_pe_must_divide_mh():
    with pytest.raises(ValueError, match=r"^PE \(3\) must divide MH \(10\)"):
        MVTUSpec(_plain_node(8, 10), pe=3, simd=1)


@pytest.mark.parametrize("value, exc, pattern", [
    (1.5, TypeError, r"^PE must be an integer, not 1\.5$"),
    ("2", TypeError, r"^PE must be an integer, not '2'$"),
    (True, TypeError, r"^PE must be an integer, not True$"),
    (0, ValueError, r"^PE must be a positive integer, not 0$"),
    (-2, ValueError, r"^PE must be a positive integer, not -2$"),
])
def test_pe_kind_and_value(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        MVTUSpec(_plain_node(8, 4), pe=value, simd=1)


@pytest.mark.parametrize("value, exc, pattern", [
    (2.0, TypeError, r"^SIMD must be an integer, not 2\.0$"),
    (0, ValueError, r"^SIMD must be a positive integer, not 0$"),
])
def test_simd_kind_and_value(value, exc, pattern):
    with pytest.raises(exc, match=pattern):
        MVTUSpec(_plain_node(8, 4), pe=1, simd=value)


def test_mvtu_rejects_non_spec():
    with pytest.raises(TypeError, match=r"^spec must be an MVTUSpec, not "):
        MatrixVectorThresholdUnit(_plain_node(8, 4))


# -- Verilog --------------------------------------------------------------------------------------

def test_verilog_smoke():
    spec, _ = _case((12, 6, 3, 4), "uint3", "uint2")
    text = to_verilog(MatrixVectorThresholdUnit(spec))
    assert "module lowbit_top" in text
    for port in ("i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"):
        assert port in text, port
