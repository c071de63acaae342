"""Labels that say what the model is (issue 18, point 6): ``IntegerGraph.precision_label`` names the
hidden layers' weight and activation types, with the first and last layers' weights where they
differ, and the sweep's rows, listing and plot use it."""

import csv

import numpy as np
import pytest
from mapping_models import mlp

from lowbit.cli import main
from lowbit.ir import BIPOLAR, TERNARY, DataType, GlobalAccPool, IntegerGraph, MatMulThreshold
from lowbit.ir.graph import SlidingWindow

INT2, INT4, INT8 = DataType.int(2), DataType.int(4), DataType.int(8)
UINT2, UINT8 = DataType.uint(2), DataType.uint(8)


def layer(rng, name, mw, mh, inp, weights, out=None):
    """A MatMulThreshold of ``weights`` type: ``out`` activations (1 or 2^k - 1 sorted thresholds
    in the accumulator range), or scores when ``out`` is None."""
    w = weights.sample(rng, (mh, mw))
    if out is None:
        return MatMulThreshold(name, inp, w, None, weight_dtype=weights)
    lo, hi = MatMulThreshold(name, inp, w, None, weight_dtype=weights).acc_range
    n = 1 if out is BIPOLAR else (1 << out.bits) - 1
    t = np.sort(rng.integers(lo, hi + 2, (mh, n)), axis=1)
    return MatMulThreshold(name, inp, w, t, out, weight_dtype=weights)


def chain(types, sizes=(16, 12, 8, 4), inp=UINT8):
    """An MLP of ``sizes`` whose layers have ``types`` ``(weights, activations)`` (the last layer's
    activations ignored: it emits scores)."""
    rng = np.random.default_rng(0)
    nodes, dt = [], inp
    for i, ((wt, at), mw, mh) in enumerate(zip(types, sizes, sizes[1:])):
        last = i == len(types) - 1
        nodes.append(layer(rng, f"fc{i}", mw, mh, dt, wt, None if last else at))
        dt = at
    return IntegerGraph(inp, tuple(nodes))


def test_w2a2_mlp_with_8_bit_first_and_last_layers():
    # what 'lowbit train --weights INT2 --acts UINT2' makes: INT8 first and last layers; the old
    # sweep called it W8A2 (the widest weight type)
    g = chain([(INT8, UINT2), (INT2, UINT2), (INT2, UINT2), (INT8, None)], sizes=(16, 12, 8, 6, 4))
    assert g.precision_label() == "W2A2 (first/last W8)"


def test_w2a2_mlp_with_an_8_bit_first_layer_only():
    g = chain([(INT8, UINT2), (INT2, UINT2), (INT2, None)])
    assert g.precision_label() == "W2A2 (first W8)"


def test_ternary_mlp():
    # ternary hidden layer, bipolar activations (the old label: W8A1)
    g = chain([(INT8, BIPOLAR), (TERNARY, BIPOLAR), (INT4, None)])
    assert g.precision_label() == "Wternary A1 (first W8, last W4)"
    assert chain([(TERNARY, BIPOLAR)] * 3).precision_label() == "Wternary A1"


def test_binary_mlp():
    g = mlp((16, 12, 8, 4), input_dtype=DataType.uint(5))  # bipolar throughout, 5-bit pixels in
    assert g.precision_label() == "W1A1"


def test_power_of_two_and_mixed_hidden_layers():
    pow2 = DataType.pow2(4)
    assert chain([(INT8, UINT2), (pow2, UINT2), (INT8, None)]).precision_label() == (
        "Wpow2_4 A2 (first/last W8)"
    )
    mixed = [(INT8, UINT2), (INT2, BIPOLAR), (INT4, UINT2), (INT8, None)]
    mixed = chain(mixed, sizes=(16, 12, 8, 6, 4))
    assert mixed.precision_label() == "W2/4 A2/1 (first/last W8)"


def test_one_and_two_layer_graphs():
    # no hidden layer: every layer's weights; one layer: no activations, the input's type
    assert chain([(INT8, UINT2), (INT2, None)], sizes=(16, 8, 4)).precision_label() == "W8/2 A2"
    assert chain([(INT4, UINT2), (INT4, None)], sizes=(16, 8, 4)).precision_label() == "W4A2"
    assert chain([(INT2, None)], sizes=(16, 4)).precision_label() == "W2A8"


def test_cnn():
    """Two convolutions, a global sum pool and a classifier: the pool's wide sums are no
    activation type; the hidden convolution sets W2A2."""
    rng = np.random.default_rng(1)
    nodes = (
        SlidingWindow("win0", 3),
        layer(rng, "conv0", 9, 4, UINT8, INT8, UINT2),
        SlidingWindow("win1", 3),
        layer(rng, "conv1", 36, 4, UINT2, INT2, UINT2),
        GlobalAccPool("pool", UINT2),
        layer(rng, "fc", 4, 3, DataType.uint(4), INT8, None),
    )
    g = IntegerGraph(UINT8, nodes, input_shape=(6, 6, 1))
    assert g.precision_label() == "W2A2 (first/last W8)"


@pytest.fixture
def w2a2_model(tmp_path):
    g = chain([(INT8, UINT2), (INT2, UINT2), (INT2, UINT2), (INT8, None)], sizes=(16, 12, 8, 6, 4))
    return str(g.save(tmp_path / "tfc_w2a2.npz"))


def test_sweep_rows_and_listing_say_w2a2(w2a2_model, tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", w2a2_model, "--budgets", "0.5", "--workers", "1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "  tfc_w2a2: W2A2 (first/last W8) on pynq-z2, budget 0.5: " in text
    assert "W8A2" not in text
    (row,) = csv.DictReader((out / "sweep.csv").open())
    assert row["precision"] == "W2A2 (first/last W8)"
