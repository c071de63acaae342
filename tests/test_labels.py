"""Labels that say what the model is (issue 18, point 6): ``IntegerGraph.precision_label`` names the
hidden layers' weight and activation types, with the first and last layers' weights where they
differ, and the sweep's rows, listing and plot use it."""

import csv

import numpy as np
import pytest
from mapping_models import mlp

from lowbit.cli import main
from lowbit.flow.sweep import pareto_figure, run_sweep, sweep_points
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


def ddr_rows(tmp_path):
    """A 128-384-384-10 MLP that streams fc1 and fc2 from DDR on cora-z7-10 at 3 % (the mapper's
    own decision, test_ddr_weights), and on chip at 50 %; and the W2A2 model on pynq-z2."""
    big = str(mlp((128, 384, 384, 10), seed=4).save(tmp_path / "mlp384.npz"))
    return run_sweep(sweep_points([big], ["cora-z7-10", "pynq-z2"], budgets=[0.03, 0.5]), workers=1)


def test_sweep_rows_name_the_ddr_layers(tmp_path):
    rows = {(r["board"], r["value"]): r for r in ddr_rows(tmp_path)}
    assert rows[("cora-z7-10", 0.03)]["ddr_layers"] == ["fc1", "fc2"]
    assert rows[("cora-z7-10", 0.5)]["ddr_layers"] == []


def test_pareto_plot_marks_boards_models_budgets_and_ddr(tmp_path, w2a2_model):
    import matplotlib.pyplot as plt

    w2a2 = run_sweep(sweep_points([w2a2_model], ["pynq-z2"], budgets=[0.5]), workers=1)
    rows = ddr_rows(tmp_path) + w2a2
    fig = pareto_figure(rows)
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:4] == ["mlp384: W1A1", "tfc_w2a2: W2A2 (first/last W8)", "cora-z7-10", "pynq-z2"]
    assert "weights from DDR" in legend and "Pareto front" in legend
    assert ax.get_title() == "lowbit sweep: throughput vs LUTs (budget 0.03, budget 0.5)"
    notes = {t.get_text() for t in ax.texts}
    assert "budget 0.03; DDR: fc1, fc2" in notes and "budget 0.5" in notes
    # one marker per board: the two boards' points of one model differ in marker
    paths = {}
    for coll in ax.collections:
        if coll.get_facecolors().size:  # the DDR rings are hollow
            paths.setdefault(tuple(map(tuple, coll.get_facecolors().round(3))), []).append(
                coll.get_paths()[0].vertices.tobytes()
            )
    assert any(len(set(v)) == 2 for v in paths.values())
    plt.close(fig)


def test_sweep_csv_and_listing_name_the_ddr_layers(tmp_path, capsys):
    big = str(mlp((128, 384, 384, 10), seed=4).save(tmp_path / "mlp384.npz"))
    out = tmp_path / "sw"
    argv = ["sweep", big, "--boards", "cora-z7-10", "--budgets", "0.03", "--workers", "1"]
    assert main([*argv, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mlp384: W1A1 on cora-z7-10, budget 0.03: " in text
    assert text.rstrip().endswith("LUT; weights of fc1, fc2 from DDR")
    (row,) = csv.DictReader((out / "sweep.csv").open())
    assert row["ddr_layers"] == "fc1 fc2"


def test_build_names_the_ddr_layer_as_map_does(tmp_path, capsys):
    """'lowbit build' said 'weights of layer unit 1 from DDR' where 'map' says 'fc1: weights in
    DDR'; build.json's weight ports carry the layer's name too."""
    import json

    from lowbit.mapping import Schedule
    from lowbit.mapping.schedule import LayerFolding

    model = mlp((64, 128, 64, 10), seed=5).save(tmp_path / "m.npz")
    folding = (LayerFolding("fc0", 16, 16), LayerFolding("fc1", 4, 32, weights="ddr"),
               LayerFolding("fc2", 2, 4))
    Schedule("pynq-z2", 100.0, folding).save(tmp_path / "s.json")
    assert main(["compile", str(model), "--schedule", str(tmp_path / "s.json"),
                 "-o", str(tmp_path / "c")]) == 0
    argv = ["build", str(tmp_path / "c"), "--board", "pynq-z2", "-o", str(tmp_path / "b")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "  weights of fc1 from DDR: fetcher 0 on ps7/S_AXI_HP1 (" in out
    assert "layer unit" not in out
    (port,) = json.loads((tmp_path / "b" / "build.json").read_text())["weight_ports"]
    assert port["layer"] == "fc1" and port["unit"] == 1
