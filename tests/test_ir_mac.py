"""The MAC kind of a layer (``lowbit.ir.mac``) and the DataType helpers every layer shares
(``stored_range``, ``sample``, ``signed_bits``, ``index_bits``, ``clog2``), on hand-worked cases."""

import json

import numpy as np
import pytest

from lowbit.hw.mvtu.spec import MAC_KINDS, MVTUSpec
from lowbit.ir import (
    BIPOLAR,
    TERNARY,
    DataType,
    GlobalAccPool,
    MacKind,
    MacOp,
    MatMulThreshold,
    MaxPool,
    SlidingWindow,
    clog2,
    index_bits,
    mac_kind,
    signed_bits,
)
from lowbit.ir.mac import WEIGHT_KINDS, WEIGHT_TYPES
from lowbit.quant.train.net import ActSpec, WeightSpec, init_net, parse_arch

U3, I3, U8 = DataType.uint(3), DataType.int(3), DataType.uint(8)
P3, P4, W2, W4 = DataType.pow2(3), DataType.pow2(4), DataType.int(2), DataType.int(4)


def _node(input_dtype, weight_dtype, mh=2, mw=3):
    w = weight_dtype.sample(np.random.default_rng(0), (mh, mw))
    return MatMulThreshold("n", input_dtype, w, None, weight_dtype=weight_dtype)


# -- mac_kind ----------------------------------------------------------------------------------

# (input, weights) -> kind: every input kind against every weight kind
KINDS = [
    (BIPOLAR, BIPOLAR, MacKind.XNOR),
    (BIPOLAR, TERNARY, MacKind.TERNARY),
    (BIPOLAR, P3, MacKind.SHIFT),
    (BIPOLAR, W2, MacKind.MULTIBIT),
    (U3, BIPOLAR, MacKind.ADDSUB),  # bipolar weights on integer inputs: add or subtract
    (U3, TERNARY, MacKind.TERNARY),
    (U3, P4, MacKind.SHIFT),
    (U3, W4, MacKind.MULTIBIT),
    (I3, BIPOLAR, MacKind.ADDSUB),
    (I3, TERNARY, MacKind.TERNARY),
    (I3, P3, MacKind.SHIFT),
    (I3, W2, MacKind.MULTIBIT),
    (U8, BIPOLAR, MacKind.ADDSUB),
]


@pytest.mark.parametrize("input_dtype, weight_dtype, kind", KINDS, ids=lambda v: str(v))
def test_mac_kind_of_every_input_and_weight_type(input_dtype, weight_dtype, kind):
    node = _node(input_dtype, weight_dtype)
    assert mac_kind(node) is kind
    assert node.mac_kind is kind
    assert MacKind.of(weight_dtype, bipolar_input=input_dtype is BIPOLAR) is kind
    assert node.xnor == (kind is MacKind.XNOR)
    spec = MVTUSpec(node, pe=1, simd=1)
    assert spec.kind is kind and spec.kind == kind.value


def test_every_weight_kind_has_a_mac_kind_on_both_inputs():
    covered = {(i is BIPOLAR, w.kind) for i, w, _ in KINDS}
    assert covered == {(b, k) for b in (True, False) for k in WEIGHT_KINDS}
    assert {k for _, _, k in KINDS} == set(MacKind)


def test_the_values_are_the_hardware_strings():
    assert [k.value for k in MacKind] == ["xnor", "addsub", "ternary", "shift", "multibit"]
    assert MAC_KINDS == tuple(MacKind) == ("xnor", "addsub", "ternary", "shift", "multibit")
    assert (
        MacKind.SHIFT == "shift"
        and str(MacKind.SHIFT) == "shift"
        and f"{MacKind.ADDSUB}" == "addsub"
    )
    assert json.dumps({"kind": MacKind.XNOR}) == '{"kind": "xnor"}'
    assert MacKind("multibit") is MacKind.MULTIBIT


def test_the_arithmetic_of_each_kind():
    assert {k: k.op for k in MacKind} == {
        MacKind.XNOR: MacOp.XNOR,
        MacKind.ADDSUB: MacOp.ADD,
        MacKind.TERNARY: MacOp.ADD,
        MacKind.SHIFT: MacOp.SHIFT,
        MacKind.MULTIBIT: MacOp.MULTIPLY,
    }
    assert [op.value for op in MacOp] == ["xnor", "add", "shift", "multiply"]


@pytest.mark.parametrize(
    "node",
    [SlidingWindow("sw", 3), MaxPool("mp", 2), GlobalAccPool("gap", U3), None, "xnor"],
    ids=["sliding-window", "maxpool", "global-acc-pool", "none", "str"],
)
def test_mac_kind_of_a_node_without_a_matrix_product(node):
    with pytest.raises(TypeError, match=r"node must be a MatMulThreshold, not"):
        mac_kind(node)


def test_mac_kind_of_errors():
    with pytest.raises(TypeError, match=r"weight_dtype must be a DataType, not 'BIPOLAR'"):
        MacKind.of("BIPOLAR", bipolar_input=True)
    with pytest.raises(TypeError, match=r"bipolar_input must be a bool, not 1"):
        MacKind.of(BIPOLAR, bipolar_input=1)
    with pytest.raises(
        ValueError, match=r"weight_dtype must be BIPOLAR, TERNARY, POW2_<b> or INT<k>, not"
    ):
        MacKind.of(U3, bipolar_input=False)
    assert WEIGHT_TYPES == "BIPOLAR, TERNARY, POW2_<b> or INT<k>"
    with pytest.raises(
        ValueError, match=r"node 'n': weight_dtype must be BIPOLAR, TERNARY, POW2_<b> or INT<k>"
    ):
        MatMulThreshold("n", U3, np.zeros((1, 1), int), None, weight_dtype=U3)


def test_training_schemes_classify_as_the_type_they_export():
    """``WeightSpec.dtype`` (what ``op_counts`` classifies) is the type of the quantized weights."""
    rng = np.random.default_rng(0)
    for scheme in ("binary", "bc", "ternary", "ttq", "log2:3", "int:3", "dorefa:2"):
        spec = WeightSpec.parse(scheme)
        net = init_net(
            parse_arch("mlp:4", 3),
            spec,
            ActSpec.parse("int:2"),
            U3,
            (5,),
            rng,
            first_bits=None,
            last_bits=None,
        )
        assert net.quantized_weights(0).dtype == spec.dtype, scheme
    assert WeightSpec.parse("float").dtype is None
    assert WeightSpec.parse("inq:4").dtype == P4


# -- the accumulator width of a node -----------------------------------------------------------


def test_acc_bits_hand_worked():
    # popcount of 64 XNORs: [0, 64], thresholds up to 65 -> UINT7
    assert _node(BIPOLAR, BIPOLAR, mw=64).acc_bits == 7
    # UINT3 x TERNARY, MW = 3: [-21, 21], thresholds up to 22: max(bits(20), bits(22)) + 1 = 6
    assert _node(U3, TERNARY).acc_bits == 6
    # BIPOLAR x INT2, MW = 3: products in [-2, 2], [-6, 6] -> [-6, 7]: max(bits(5), bits(7)) + 1 = 4
    assert _node(BIPOLAR, W2).acc_bits == 4


# -- stored_range and sample -------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, expected",
    [
        (BIPOLAR, (0, 1)),  # bits
        (U3, (0, 7)),
        (I3, (-4, 3)),
        (TERNARY, (-1, 1)),
        (P3, (-4, 4)),  # max_exponent = 2^(3-1) - 2 = 2
        (P4, (-64, 64)),  # max_exponent = 2^(4-1) - 2 = 6
        (DataType.uint(1), (0, 1)),
    ],
    ids=str,
)
def test_stored_range(dtype, expected):
    assert dtype.stored_range == expected


@pytest.mark.parametrize("dtype", [BIPOLAR, U3, I3, U8, TERNARY, P3, P4, W2, W4], ids=str)
def test_sample_range_and_dtype(dtype):
    v = dtype.sample(np.random.default_rng(1), (40, 7))
    lo, hi = dtype.stored_range
    assert v.shape == (40, 7) and v.dtype == np.int64
    assert lo <= v.min() and v.max() <= hi and dtype.contains(v)
    assert len(np.unique(v)) > 1


def test_sample_draws_are_the_seeded_draws_the_tests_used():
    shape = (5, 6)
    for dtype in (BIPOLAR, U3, I3, TERNARY, W2):
        lo, hi = dtype.stored_range
        expected = np.random.default_rng(7).integers(lo, hi + 1, shape)
        assert (dtype.sample(np.random.default_rng(7), shape) == expected).all()
    rng = np.random.default_rng(7)
    expected = np.where(
        rng.random(shape) < 0.2, 0, 1 << rng.integers(0, P4.max_exponent + 1, shape)
    ) * rng.choice([-1, 1], shape)
    assert (P4.sample(np.random.default_rng(7), shape) == expected).all()


def test_sample_pow2_zeros():
    assert (P3.sample(np.random.default_rng(0), 100, pow2_zeros=1.0) == 0).all()
    v = P3.sample(np.random.default_rng(0), 100, pow2_zeros=0.0)
    assert (v != 0).all() and set(np.abs(v)) <= {1, 2, 4}


# -- widths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lo, hi, bits",
    [
        (-4, 3, 3),  # INT3 is [-4, 3]
        (0, 7, 4),  # 7 needs three magnitude bits and a sign
        (-1, 0, 1),  # one bit: {-1, 0}
        (-5, 0, 4),  # INT3 stops at -4
        (-8, 7, 4),
        (-9, 0, 5),
        (-1, 255, 9),
        (-2, 1, 2),
        (-3, 1, 3),  # -3 needs [-4, 3]
        (3, 3, 4),  # ranges without 0 keep the formula's value
        (-4, -4, 4),
        (0, 0, 2),
    ],
)
def test_signed_bits(lo, hi, bits):
    assert signed_bits(lo, hi) == bits


def test_signed_bits_errors_and_for_range():
    with pytest.raises(ValueError, match=r"lo \(3\) must not exceed hi \(2\)"):
        signed_bits(3, 2)
    with pytest.raises(TypeError, match=r"lo must be an integer, not 1.5"):
        signed_bits(1.5, 2)
    assert DataType.for_range(-4, 3) == I3 and DataType.for_range(-5, 3) == DataType.int(4)
    assert DataType.for_range(0, 7) == U3


@pytest.mark.parametrize(
    "n, index, signal",
    [
        (0, 0, 1),
        (1, 0, 1),
        (2, 1, 1),
        (3, 2, 2),
        (4, 2, 2),
        (5, 3, 3),
        (8, 3, 3),
        (9, 4, 4),
        (64, 6, 6),
        (65, 7, 7),
    ],
)
def test_index_bits_and_clog2(n, index, signal):
    """``index_bits``: bits to tell ``n`` items apart (none for one); ``clog2``: a signal's width
    for such an index, at least one bit."""
    assert index_bits(n) == index
    assert clog2(n) == signal
