"""Issue 16 through the command line only: a Brevitas export -> ``lowbit import`` -> ``lowbit
compile`` -> ``lowbit sim --fast --images test.npz`` prints the RTL accuracy equal to torch's.

Two models of the zoo (``tests/brevitas_zoo.py``, trained on the digits and cached): a W2A2 MLP
whose last layer has a float bias (the class map in the label select) and a ternary MLP that reads
float pixels with no input quantizer (``--input-quant UINT5:0.0625``: the pixels are k/16).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import brevitas_zoo as zoo
from lowbit.cli import main
from lowbit.ir.graph import IntegerGraph
from lowbit.quant.data import load_digits_split

pytestmark = pytest.mark.fast_sim

CASES = {  # case: (model, import options, compile options)
    "w2a2_mlp_float_bias": ("w2a2_mlp_float_bias", [], []),
    "ternary_mlp_float_in": ("ternary_mlp_float_in", ["--input-quant", "UINT5:0.0625"], []),
    # the same model taking UINT8 pixels of 1/64 on the wire through the input threshold unit (the
    # pixels k/16 are on that grid, so the model sees exactly what torch sees)
    "ternary_mlp_input_wire": (
        "ternary_mlp_float_in",
        ["--input-quant", "UINT5:0.0625"],
        ["--input-wire", "UINT8:1/64"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_import_compile_sim_gives_torchs_accuracy(case, tmp_path, capsys):
    name, import_opts, compile_opts = CASES[case]
    data = load_digits_split()
    onnx_path = zoo.export(name, tmp_path, dynamo=True)
    graph_path, out = tmp_path / "g.npz", tmp_path / "compiled"
    assert main(["import", str(onnx_path), "-o", str(graph_path), *import_opts]) == 0
    assert main(["compile", str(graph_path), "-o", str(out), *compile_opts]) == 0
    if compile_opts:
        graph_path = out / "model.npz"  # the compiled graph starts with the threshold unit
    x = zoo.model_input(name, data.x_test)
    np.savez(tmp_path / "test.npz", x=x, y=data.y_test)
    capsys.readouterr()
    report = tmp_path / "sim.json"
    assert main(["sim", str(out), "--fast", "--images", str(tmp_path / "test.npz"),
                 "--json", str(report)]) == 0
    text = capsys.readouterr().out
    res = json.loads(report.read_text())
    t = zoo.torch_outputs(name, x)
    torch_labels, untied = t.argmax(1), zoo.untied(t)
    torch_acc = float(np.mean(torch_labels == data.y_test))
    g = IntegerGraph.load(graph_path)
    ref = g.predict(g.encode(x))
    assert int(np.sum((ref != torch_labels) & untied)) == 0  # the graph decides as torch does
    assert res["label_mismatches"] == 0  # the RTL decides as the graph does
    acc = res["accuracy"]
    assert acc["labelled_images"] == 450 and acc["reference"] == float(np.mean(ref == data.y_test))
    # equal to torch's, up to the images torch itself cannot rank (top-2 within float rounding)
    assert abs(acc["rtl"] - torch_acc) * 450 <= int(np.sum(~untied))
    if untied.all():
        assert acc["rtl"] == torch_acc
    assert f"rtl {acc['rtl']:.4f}" in text
