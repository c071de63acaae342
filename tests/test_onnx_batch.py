"""Batch-agnostic ``ImportResult.encode``/``run``/``predict``: B rows give what B calls on single
rows give, also for a model exported with batch 1 whose input part reshapes to a constant shape of
batch 1 (``x.view(1, -1)``, a ``Flatten`` exported as ``Reshape [1, -1]``): the float executor
(:func:`lowbit.quant.onnx.ops.run`) applies such a ``Reshape`` (or a ``Flatten`` of axis 0) of
the input to each row, as the export applies it to its one row.
"""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx

from onnx_models import Builder

BATCHES = [1, 2, 7]


def _mlp(first: str):
    """A batch-1 export that flattens its (1, 4, 4) input before the input quantizer."""
    rng = np.random.default_rng(4)
    b = Builder(first, (1, 4, 4))
    if first == "reshape":
        b.act("Reshape", b.const([1, -1], dtype=np.int64))
    else:
        b.act("Flatten", axis=0)
    b.quant(0.25, 4)
    b.act("Gemm", b.qweight(rng.normal(0, 1, (16, 6)), 0.25, 2, narrow=True),
          b.const(rng.normal(0, 1, 6)), name="fc0")
    b.act("Relu")
    b.quant(0.5, 2)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (6, 3)), 0.25, 3), name="head")
    return b.model((3,))


def _rows(f, x):
    return np.concatenate([f(x[i:i + 1]) for i in range(len(x))])


@pytest.mark.parametrize("first", ["reshape", "flatten-axis0"])
@pytest.mark.parametrize("batch", BATCHES)
def test_batch_of_rows_equals_single_rows(first, batch):
    model = _mlp(first)
    result = import_onnx(model)
    x = np.random.default_rng(batch).uniform(-1, 4, (batch, 1, 4, 4)).astype(np.float32)
    assert result.encode(x).shape[0] == batch
    for f in (result.encode, result.run, result.predict):
        assert np.array_equal(f(x), _rows(f, x)), f.__name__
    # the float executor too, on the model's output
    out = model.graph.output[0].name
    ref = onnx_ops.run(model, x)[out]
    assert np.array_equal(ref, _rows(lambda r: onnx_ops.run(model, r)[out], x))


def test_a_reshape_of_a_constant_is_not_split_into_rows():
    """Only tensors computed from the input are batched: a constant reshaped to batch 1 stays."""
    b = Builder("bias", (8,))
    b.act("Reshape", b.const([1, -1], dtype=np.int64))
    bias = b.node("Reshape", [b.const(np.arange(8.0)), b.const([1, -1], dtype=np.int64)], name="rb")
    b.act("Add", bias)
    model = b.model((8,), qonnx=False)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    out = onnx_ops.run(model, x)[model.graph.output[0].name]
    assert np.array_equal(out, x + np.arange(8.0))


def test_a_reshape_to_the_inputs_own_batch_is_not_split_into_rows():
    """``x.view(x.size(0), -1)``: a target computed from the input holds the batch already."""
    b = Builder("shape", (2, 4))
    n = b.node("Gather", [b.node("Shape", ["x"]), b.const(0, dtype=np.int64)], axis=0)
    target = b.node("Concat", [b.node("Unsqueeze", [n, b.const([0], dtype=np.int64)]),
                               b.const([-1], dtype=np.int64)], axis=0)
    b.act("Reshape", target)
    model = b.model((8,), qonnx=False)
    x = np.random.default_rng(0).normal(size=(5, 2, 4)).astype(np.float32)
    assert np.array_equal(onnx_ops.run(model, x)[model.graph.output[0].name], x.reshape(5, 8))


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_brevitas_view_batch_one(tmp_path, dynamo):
    """A Brevitas MLP whose forward is written for batch 1 (``x.view(1, -1)``)."""
    import torch
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx

    class ViewMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc0 = qnn.QuantLinear(16, 8, bias=False, weight_bit_width=4)
            self.act0 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(8, 3, bias=False, weight_bit_width=4)

        def forward(self, x):
            return self.fc1(self.act0(self.fc0(self.inp(x.view(1, -1)))))

    torch.manual_seed(1)
    net = ViewMLP().eval()
    x = np.random.default_rng(2).integers(-128, 128, (7, 1, 4, 4)).astype(np.float32) / 128
    path = tmp_path / "view.onnx"
    export_qonnx(net, torch.from_numpy(x[:1]), str(path), dynamo=dynamo)
    result = import_onnx(path)
    with torch.no_grad():  # the torch model itself runs one row at a time
        want = np.concatenate([net(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))])
    for batch in BATCHES:
        xb = x[:batch]
        for f in (result.encode, result.run, result.predict):
            assert np.array_equal(f(xb), _rows(f, xb)), f.__name__
        np.testing.assert_allclose(result.run(xb), want[:batch], rtol=1e-5, atol=1e-6)
        assert np.array_equal(result.predict(xb), want[:batch].argmax(1))
