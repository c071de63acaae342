# amaranth: UnusedElaboratable=no
"""The MAC arrays of the MVTU (ternary, shift-add, multi-bit, integer first layer; parallel and
bit-serial) in the Amaranth simulator, against ``sw_reference`` through the node, bit for bit and
cycle for cycle; and the LUT6-friendly popcount against ``bin(n).count("1")``.

Grid per kind: smallest, non-power-of-two shapes and folds, ``PE = MH`` with ``SIMD = MW``, a
fully folded layer; steady state (cycles == ``spec.cycles()``) and random ``valid`` / ``ready``
throttling (seed in the test id).
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.sim import Simulator

from lowbit.hw._util import pack_words
from lowbit.hw.mvtu.mac import counter, popcount
from lowbit.hw.mvtu.unit import MatrixVectorThresholdUnit
from lowbit.hw.mvtu.spec import MVTUSpec
from lowbit.ir import BIPOLAR, DataType, MatMulThreshold
from lowbit.ir.datatypes import TERNARY
from lowbit.sim.amaranth_sim import run_stream

U2, U3, U8, I3, I4 = DataType.uint(2), DataType.uint(3), DataType.uint(8), DataType.int(3), DataType.int(4)
P3, P4, W2, W4 = DataType.pow2(3), DataType.pow2(4), DataType.int(2), DataType.int(4)

# (name, input type, weight type)
KINDS = [
    ("ternary-bipolar", BIPOLAR, TERNARY),
    ("ternary-uint3", U3, TERNARY),
    ("ternary-int3", I3, TERNARY),
    ("shift-bipolar", BIPOLAR, P3),
    ("shift-uint3", U3, P4),
    ("shift-int3", I3, P3),
    ("w2a2", U2, W2),
    ("w4a4", I4, W4),
    ("w2-bipolar", BIPOLAR, W2),
    ("first-uint8-binary", U8, BIPOLAR),
    ("first-uint8-ternary", U8, TERNARY),
    ("first-uint8-w4", U8, W4),
]
# (MW, MH, PE, SIMD)
SHAPES = [(1, 1, 1, 1), (12, 6, 3, 4), (15, 9, 3, 5), (6, 4, 4, 6), (10, 3, 1, 1)]
# output mode -> number of thresholds (None: scores)
OUTPUTS = [None, 1, 3]


def make_node(rng, name, mw, mh, in_dtype, w_dtype, n_thr):
    w = w_dtype.sample(rng, (mh, mw))  # zeros included for ternary and power-of-two types
    probe = MatMulThreshold(name, in_dtype, w, None, weight_dtype=w_dtype)
    if n_thr is None:
        return probe
    lo, hi = probe.acc_range
    t = rng.integers(lo, hi + 2, (mh, n_thr))
    t[0, 0] = lo
    t[-1, -1] = hi + 1
    t = np.sort(t, axis=1)
    out = BIPOLAR if n_thr == 1 else DataType.uint(n_thr.bit_length())
    return MatMulThreshold(name, in_dtype, w, t, out, weight_dtype=w_dtype)


def make_inputs(rng, dtype, mw, n):
    lo, hi = dtype.stored_range
    x = dtype.sample(rng, (n, mw))
    x[0], x[1] = hi, lo
    return x


def run_mvtu(spec, x, **throttle):
    """Simulate ``spec``'s MVTU on the rows of ``x``; outputs ``(B, MH)`` and the run."""
    dut = MatrixVectorThresholdUnit(spec)
    ib, ob = dut.in_shape.width, dut.out_shape.width
    sf, simd, pe = spec.synapse_folds, spec.simd, spec.pe
    beats = [pack_words(row[k * simd:(k + 1) * simd], ib) for row in x for k in range(sf)]
    max_cycles = 20 * (len(x) * (spec.cycles() + sf + spec.neuron_folds) + 50)
    run = run_stream(dut, beats, len(x) * spec.neuron_folds, max_cycles=max_cycles, **throttle)
    vals = []
    for word in run.outputs:
        for p in range(pe):
            v = (word >> (p * ob)) & ((1 << ob) - 1)
            if dut.out_shape.signed and v >> (ob - 1):
                v -= 1 << ob
            vals.append(v)
    return np.array(vals, dtype=np.int64).reshape(len(x), spec.mh), run


def assert_same(spec, got, ref):
    bad = np.argwhere(got != ref)
    if len(bad):
        b, j = bad[0]
        raise AssertionError(f"node {spec.node.name!r} ({spec.kind}, {spec.mac}): vector {b} output {j}: "
                             f"hardware {got[b, j]} != reference {ref[b, j]} ({len(bad)} mismatches)")


def _case(kind_name, shape, mac, n_thr, seed):
    mw, mh, pe, simd = shape
    _, in_dtype, w_dtype = next(k for k in KINDS if k[0] == kind_name)
    rng = np.random.default_rng([seed, mw, mh, pe, simd, [k[0] for k in KINDS].index(kind_name)])
    node = make_node(rng, f"{kind_name}-{mw}x{mh}", mw, mh, in_dtype, w_dtype, n_thr)
    spec = MVTUSpec(node, pe=pe, simd=simd, mac=mac)
    return spec, make_inputs(rng, in_dtype, mw, 4)


def _params(throttled):
    out, k = [], 0
    for name, _, _ in KINDS:
        for mac in ("parallel", "serial"):
            for shape in SHAPES:
                n_thr = OUTPUTS[k % len(OUTPUTS)]
                seed = 300 + k if throttled else 0
                k += 1
                sid = "MW{}-MH{}-PE{}-SIMD{}".format(*shape)
                out.append(pytest.param(name, shape, mac, n_thr, seed,
                                        id=f"{name}-{mac}-{sid}-thr{n_thr}" + (f"-seed{seed}" if throttled else "")))
    return out


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind_name, shape, mac, n_thr, seed", _params(False))
def test_mac_steady_state(kind_name, shape, mac, n_thr, seed):
    spec, x = _case(kind_name, shape, mac, n_thr, seed)
    got, run = run_mvtu(spec, x)
    assert_same(spec, got, spec.reference(x))
    nf = spec.neuron_folds
    last = np.array(run.out_cycles[nf - 1::nf])
    assert np.diff(last).tolist() == [spec.cycles()] * (len(x) - 1), \
        f"node {spec.node.name!r}: output cycles {run.out_cycles}, expected {spec.cycles()} per vector"


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind_name, shape, mac, n_thr, seed",
                         [p for i, p in enumerate(_params(True)) if i % 2 == 0])
def test_mac_throttled(kind_name, shape, mac, n_thr, seed):
    spec, x = _case(kind_name, shape, mac, n_thr, seed)
    got, _ = run_mvtu(spec, x, seed=seed, valid_prob=0.5, ready_prob=0.4)
    assert_same(spec, got, spec.reference(x))


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("kind_name, mac", [("ternary-uint3", "parallel"), ("w2a2", "serial"), ("shift-int3", "parallel"),
                                            ("first-uint8-w4", "parallel")])
def test_reset_in_the_middle_of_a_stream_recovers(kind_name, mac):
    """Reset while a vector is half streamed in and the previous one is being computed: the unit
    then computes fresh vectors exactly (no stale buffer bank, accumulator or output beat)."""
    spec, x = _case(kind_name, (12, 6, 3, 4), mac, 3, 11)
    dut = MatrixVectorThresholdUnit(spec)
    sf, simd, ib = spec.synapse_folds, spec.simd, dut.in_shape.width
    stale = make_inputs(np.random.default_rng(99), spec.node.input_dtype, spec.mw, 3)
    beats = [pack_words(row[k * simd:(k + 1) * simd], ib) for rows in (stale, x) for row in rows for k in range(sf)]
    cut = 2 * sf + sf // 2  # in the middle of the third stale vector
    beats = beats[:cut] + beats[3 * sf:]
    run = run_stream(dut, beats, len(x) * spec.neuron_folds, reset_after=cut, ready_prob=0.7, seed=5,
                     max_cycles=20000)
    ob = dut.out_shape.width
    got = np.array([(w >> (p * ob)) & ((1 << ob) - 1) for w in run.outputs for p in range(spec.pe)])
    assert_same(spec, got.reshape(len(x), spec.mh), spec.reference(x))


# -- spec: kinds, storage, cycles, accumulator widths ---------------------------------------------

def test_kinds_follow_the_types():
    rng = np.random.default_rng(0)
    kinds = {name: MVTUSpec(make_node(rng, name, 4, 2, i, w, None), pe=1, simd=1).kind for name, i, w in KINDS}
    assert kinds["ternary-bipolar"] == kinds["first-uint8-ternary"] == "ternary"
    assert kinds["shift-uint3"] == "shift" and kinds["w4a4"] == "multibit"
    assert kinds["first-uint8-binary"] == "addsub"
    assert MVTUSpec(make_node(rng, "b", 4, 2, BIPOLAR, BIPOLAR, None), pe=1, simd=1).kind == "xnor"


def test_serial_cycles_count_bit_plane_pairs():
    rng = np.random.default_rng(1)
    node = make_node(rng, "w4a4", 12, 6, I4, W4, 1)
    assert MVTUSpec(node, pe=3, simd=4).cycles() == 2 * 3
    assert MVTUSpec(node, pe=3, simd=4, mac="serial").cycles() == 2 * 3 * 4 * 4
    bip = make_node(rng, "w2b", 12, 6, BIPOLAR, W2, 1)
    assert MVTUSpec(bip, pe=3, simd=4, mac="serial").cycles() == 2 * 3 * 2 * 2


def test_accumulator_width_from_operand_ranges():
    rng = np.random.default_rng(2)
    # UINT8 pixels x ternary over 27 inputs: [-6885, 6885] -> 14 bits signed
    node = make_node(rng, "first", 27, 4, U8, TERNARY, None)
    assert node.acc_range == (-27 * 255, 27 * 255)
    assert MVTUSpec(node, pe=1, simd=1).acc_bits == 14
    # XNOR over 64: popcount 0..64, thresholds up to 65 -> 7 bits unsigned
    assert MVTUSpec(make_node(rng, "x", 64, 2, BIPOLAR, BIPOLAR, 1), pe=1, simd=1).acc_bits == 7
    # serial: partial sums bounded by MW * sum|coef_x| * sum|coef_w| = 27 * 255 * 3
    assert MVTUSpec(node, pe=1, simd=1, mac="serial").acc_bits == (27 * 255 * 3 + 1).bit_length() + 1


def test_pow2_and_ternary_encodings():
    rng = np.random.default_rng(3)
    node = make_node(rng, "p", 4, 1, U3, P4, None)
    spec = MVTUSpec(node, pe=1, simd=4)
    # POW2_4: 3-bit exponent code (0 = zero, j + 1 for 2^j), sign on top
    assert spec.encode_lane(np.array([0, 1, -4, 32])) == (0 | (1 << 4) | ((0b1000 | 3) << 8) | (6 << 12))
    tern = MVTUSpec(make_node(rng, "t", 3, 1, U3, TERNARY, None), pe=1, simd=3)
    assert tern.encode_lane(np.array([1, 0, -1])) == 0b101 | (0b001 << 3)


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"mac": "bitserial"}, ValueError, r"^mac must be one of 'parallel', 'serial', not 'bitserial'$"),
    ({"weight_ram": "ultra"}, ValueError,
     r"^weight_ram must be one of 'auto', 'block', 'distributed', 'external', not 'ultra'$"),
    ({"weights_writable": 1}, TypeError, r"^weights_writable must be a bool, not 1$"),
])
def test_spec_validation(kwargs, exc, pattern):
    node = make_node(np.random.default_rng(4), "fc", 4, 2, U3, W2, None)
    with pytest.raises(exc, match=pattern):
        MVTUSpec(node, pe=1, simd=1, **kwargs)


def test_serial_xnor_is_rejected():
    node = make_node(np.random.default_rng(5), "bin", 4, 2, BIPOLAR, BIPOLAR, None)
    with pytest.raises(ValueError, match=r"^node 'bin': mac='serial' needs a non-bipolar input or weight type"):
        MVTUSpec(node, pe=1, simd=1, mac="serial")


# -- popcount -------------------------------------------------------------------------------------

def _eval_comb(n_in, build, vectors):
    """Evaluate a combinational function of ``n_in`` bits in the Amaranth simulator."""
    m = Module()
    a = Signal(n_in)
    out = build(m, [a[i] for i in range(n_in)])
    y = Signal(out.shape())
    m.d.comb += y.eq(out)
    results = []

    async def bench(ctx):
        for v in vectors:
            ctx.set(a, v)
            results.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("n", range(1, 8))
def test_counter_exhaustive(n):
    vectors = list(range(1 << n))
    got = _eval_comb(n, lambda m, bits: Cat(*counter(bits)), vectors)
    assert got == [bin(v).count("1") for v in vectors]


@pytest.mark.amaranth_sim
@pytest.mark.parametrize("n, fanin", [(n, f) for n in (1, 2, 3, 5, 6, 7, 8, 13, 17, 32, 64, 100) for f in (1, 2, 3)])
def test_popcount(n, fanin):
    rng = random.Random(n * 10 + fanin)
    vectors = [0, (1 << n) - 1] + [rng.getrandbits(n) for _ in range(60)]
    if n <= 8:
        vectors = list(range(1 << n))
    got = _eval_comb(n, lambda m, bits: popcount(m, bits, fanin=fanin), vectors)
    bad = [(v, g) for v, g in zip(vectors, got) if g != bin(v).count("1")]
    assert not bad, f"popcount of {n} bits (fanin {fanin}): input {bad[0][0]:#x} gave {bad[0][1]}"
    assert popcount(Module(), [Signal() for _ in range(n)], fanin=fanin).shape().width == max(1, n.bit_length())


def test_popcount_has_one_adder_only():
    """The compressor levels are XOR / AND / OR logic: the only ``$add`` cell is the final adder."""
    from amaranth.back import rtlil

    m = Module()
    a, y = Signal(64), Signal(7)
    m.d.comb += y.eq(popcount(m, [a[i] for i in range(64)], fanin=2))
    text = rtlil.convert(m, ports=[a, y])
    assert text.count("cell $add") == 1
    assert text.count("cell $xor") > 20
