"""Issue 19, import: the zoo's two networks that are not chains (``tests/brevitas_zoo.py``,
``DAG_MODELS``), a ResNet-style CNN (three residual blocks, one with a 1x1-projection shortcut,
each ``Add`` joining the main branch's and the shortcut's own 4-bit quantizers) and a
MobileNet-v1-style CNN (three depthwise-separable blocks, 4-bit), trained with Brevitas on the
digits (cached) and exported by both ``export_qonnx`` paths, import exactly: on every test image
whose top-2 outputs are not tied, the integer graph's prediction (and the imported model's exact
execution) is torch's argmax, with the chain forms (block-diagonal depthwise, windowed pooling) and
with the native nodes (``DepthwiseConv``, ``GlobalAvgPool``).
"""

from __future__ import annotations

import brevitas_zoo as zoo
import numpy as np
import pytest

from lowbit.ir import Add, DepthwiseConv, GlobalAvgPool, IntegerGraph, Threshold
from lowbit.quant.data import load_digits_split
from lowbit.quant.onnx.importer import import_onnx

EXPORTS = {"dynamo": True, "torchscript": False}

CASES = [
    pytest.param(name, export, native, id=f"{name}-{export}-{'native' if native else 'chain'}")
    for name in zoo.DAG_MODELS
    for export in EXPORTS
    for native in (False, True)
]


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.mark.parametrize("name, export, native", CASES)
def test_dag_model_imports_exactly(name, export, native, digits, tmp_path):
    path = zoo.export(name, tmp_path, EXPORTS[export])
    x = zoo.model_input(name, digits.x_test)
    out = zoo.torch_outputs(name, x)
    ref, mask = out.argmax(axis=1), zoo.untied(out)
    assert mask.sum() >= 0.9 * len(x), f"{name}: {int((~mask).sum())} tied images"
    assert (ref == digits.y_test).mean() > 0.8, f"{name} is not trained"

    res = import_onnx(path, native_nodes=native, **zoo.import_kwargs(name))
    g = res.graph
    graph_pred = g.predict(res.encode(x))
    bad = np.flatnonzero((graph_pred != ref) & mask)
    assert not bad.size, f"the integer graph disagrees with torch on {bad.size} untied images"
    bad = np.flatnonzero((res.predict(x) != ref) & mask)
    assert not bad.size, f"ImportResult.predict disagrees with torch on {bad.size} untied images"

    kinds = {type(n) for n in g.nodes}
    if name == "resnet_w4a4":
        adds = [n for n in g.nodes if isinstance(n, Add)]
        assert len(adds) == 3 and not g.is_chain
        # each Add reads its main branch and its shortcut, and its input is also read by a branch
        for n in adds:
            i = g.nodes.index(n)
            assert len(set(g.inputs_of(i))) == 2
            # the shortcut's own scale makes p / q a ratio of float32 mantissas (~2^24); the
            # simplest coefficients with the same outputs on every code pair are far smaller
            assert max(n.wa.max(), n.wb.max()) < 2**8 and n.acc_bits <= 12
        forks = [n.name for n in g.nodes if len(g.consumers(n.name)) > 1]
        assert len(forks) == 3
        # the identity shortcuts' own quantizers: Threshold nodes (native) or 1x1 identity products
        assert sum(isinstance(n, Threshold) for n in g.nodes) == (2 if native else 0)
    else:
        assert g.is_chain
        assert (DepthwiseConv in kinds) == native
        if native:
            assert sum(isinstance(n, DepthwiseConv) for n in g.nodes) == 3
    assert (GlobalAvgPool in kinds) == native

    back = IntegerGraph.load(g.save(tmp_path / "model.npz"))
    assert back.inputs == g.inputs
    codes = res.encode(x[:64])
    assert np.array_equal(back.scores(codes), g.scores(codes))
