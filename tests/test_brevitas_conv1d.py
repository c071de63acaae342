"""Issue 19, 1-D convolutions from Brevitas: two networks of ``QuantConv1d`` layers trained on the
digits read as sequences (``tests/brevitas_conv1d.py``, cached), one with a ``MaxPool1d``, exported
by both ``export_qonnx`` paths, import exactly: on every test image whose top-2 outputs are not
tied, the integer graph's prediction (and the imported model's exact execution) is torch's
argmax; the graph holds the 1-D nodes and survives its ``.npz`` round trip."""

from __future__ import annotations

import brevitas_conv1d as c1d
import brevitas_zoo as zoo
import numpy as np
import pytest

from lowbit.ir import IntegerGraph
from lowbit.ir.graph import MaxPool1D, SlidingWindow1D
from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx

EXPORTS = {"dynamo": True, "torchscript": False}


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.mark.parametrize("export", list(EXPORTS))
@pytest.mark.parametrize("name", list(c1d.MODELS))
def test_conv1d_model_imports_exactly(name, export, digits, tmp_path):
    path = c1d.export(name, tmp_path, EXPORTS[export])
    x = c1d.model_input(digits.x_test)
    out = c1d.torch_outputs(name, x)
    ref, mask = out.argmax(axis=1), zoo.untied(out)
    assert mask.sum() >= 0.9 * len(x), f"{name}: {int((~mask).sum())} tied images"
    assert (ref == digits.y_test).mean() > 0.8, f"{name} is not trained"

    res = import_onnx(path)
    g = res.graph
    assert g.input_shape == (8, 8)
    windows = [n for n in g.nodes if isinstance(n, SlidingWindow1D)]
    assert [(n.kernel, n.stride, n.pad) for n in windows] == (
        [(3, 1, 1), (3, 1, 1)] if name.endswith("pool") else [(3, 1, 1), (3, 2, 1)]
    )
    assert sum(isinstance(n, MaxPool1D) for n in g.nodes) == name.endswith("pool")
    graph_pred = g.predict(res.encode(x))
    bad = np.flatnonzero((graph_pred != ref) & mask)
    assert not bad.size, f"the integer graph disagrees with torch on {bad.size} untied images"
    bad = np.flatnonzero((res.predict(x) != ref) & mask)
    assert not bad.size, f"ImportResult.predict disagrees with torch on {bad.size} untied images"

    back = IntegerGraph.load(g.save(tmp_path / "model.npz"))
    codes = res.encode(x[:64])
    assert np.array_equal(back.scores(codes), g.scores(codes))
