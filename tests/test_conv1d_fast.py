"""Issue 19, 1-D convolution networks from Brevitas to bit-exact RTL: the zoo's ``conv1d_w4a4``
(``tests/brevitas_conv1d.py``: two ``QuantConv1d`` layers, the second of stride 2, and a
``QuantLinear``) and ``conv1d_w4a4_pool`` (a ``MaxPool1d(2)`` instead of the stride) imported,
compiled for the PYNQ-Z2 and run on the fast path over the whole digits test split (floats encoded
by the graph's input quantizer, in its ``(L, C)`` order): every score equal to the oracle's under
throttling, the labels equal, cycles per image == the DAG mapper's model."""

from __future__ import annotations

import json

import brevitas_conv1d as c1d
import numpy as np
import pytest

from lowbit.cli.app import main
from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx


@pytest.mark.fast_sim
@pytest.mark.parametrize("name", ["conv1d_w4a4", "conv1d_w4a4_pool"])
def test_conv1d_network_compiles_and_runs_bit_exact(name, tmp_path):
    res = import_onnx(c1d.export(name, tmp_path, False))
    model = res.graph.save(tmp_path / "model.npz")
    d = load_digits_split()
    x = c1d.model_input(d.x_test).transpose(0, 2, 1)  # the graph's (L, C) order
    np.savez(tmp_path / "seq.npz", x=x, y=d.y_test)
    out = tmp_path / "out"
    assert main(["compile", str(model), "--board", "pynq-z2", "-o", str(out)]) == 0
    argv = ["sim", str(out), "--fast", "--images", str(tmp_path / "seq.npz"), "--json",
            str(tmp_path / "s.json")]
    assert main(argv) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["ok"] and s["labels_equal_reference"] and s["label_mismatches"] == 0
    assert all(r["mismatched_images"] == 0 for r in s["runs"])
    assert s["cycles_per_image_measured"] == s["cycles_predicted"]["estimate"]
