"""Constant folding in the read stage: every node whose operands are all constants is evaluated by
onnx's reference evaluator (``onnx.reference.ReferenceEvaluator``) and replaced by its outputs, so
a constant subgraph of operators lowbit does not import (Brevitas' TorchScript export of a
``TensorNorm`` keeps ``Pow``/``Sqrt``/``Div`` on its running statistics) imports. Quantizers of
constants (QONNX ``Quant``, ``BipolarQuant``, ``DequantizeLinear``...) stay for the importer's own
handlers, which keep their integer codes; folding is bounded by ``FOLD_LIMIT`` elements.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from lowbit import LowbitError
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx import read as read_stage
from lowbit.quant.onnx.importer import graphs_equal, import_onnx
from lowbit.quant.onnx.read import FOLD_LIMIT, read

from onnx_models import QDOMAIN, Builder, qdq_mlp


def _qonnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """qonnx's executor, one sample at a time (its models have batch 1)."""
    mw = ModelWrapper(model).transform(InferShapes())
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    return np.concatenate([execute_onnx(mw, {iname: x[i:i + 1]})[oname] for i in range(len(x))])


def _tensor_norm_model(rng) -> onnx.ModelProto:
    """Quant(input) -> MatMul -> (x - mean) / Pow(var + eps, 0.5) * w + b, the TorchScript form of
    BNN-PYNQ's TensorNorm: its denominator is a constant subgraph."""
    b = Builder("tensornorm", (8,))
    b.quant(0.25, 4)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (8, 4)), 2.0 ** -2, 3), name="fc")
    b.act("Sub", b.const(0.3))
    var_eps = b.node("Add", [b.const(1.7), b.const(1e-4)], name="var_eps")
    b.node("Pow", [var_eps, b.const(0.5)], name="pow", out="std")
    b.act("Div", "std")
    b.act("Mul", b.const(1.25))
    b.act("Add", b.const(-0.5))
    return b.model((4,))


def test_a_constant_subgraph_of_unsupported_operators_is_folded():
    rng = np.random.default_rng(0)
    model = _tensor_norm_model(rng)
    src = read(model)
    ops = [n.op_type for n in src.model.graph.node]
    assert "Pow" not in ops and ops.count("Add") == 1  # var + eps folded, the activation's Add kept
    # the folded tensor is the reference evaluator's float32 result, exactly
    std = {t.name: numpy_helper.to_array(t) for t in src.model.graph.initializer}["std"]
    nodes = [n for n in model.graph.node if n.name in ("var_eps", "pow")]
    sub = helper.make_graph(nodes, "sub", [], [helper.make_empty_tensor_value_info("std")],
                            model.graph.initializer)
    sub_model = helper.make_model(sub, opset_imports=model.opset_import[:1])
    want = ReferenceEvaluator(sub_model).run(None, {})[0]
    assert std.dtype == np.float32 and std.tobytes() == want.tobytes()
    # the input model is left as it was
    assert "Pow" in [n.op_type for n in model.graph.node]
    result = import_onnx(model)
    x = rng.uniform(-1, 5, (32, 8)).astype(np.float32)
    np.testing.assert_allclose(result.run(x), _qonnx(model, x), rtol=1e-6, atol=1e-6)
    # and lowbit's float executor runs the folded model (exact arithmetic against float64 steps)
    ref = onnx_ops.run(src.model, x)[model.graph.output[0].name]
    np.testing.assert_allclose(result.run(x), ref, rtol=0, atol=1e-9)


def test_supported_operators_on_constants_are_folded_too():
    b = Builder("mul", (8,))
    b.quant(0.25, 4)
    w = b.node("Mul", [b.const(np.random.default_rng(1).integers(-3, 4, (8, 3))), b.const(0.25)],
               name="scale_w")
    b.act("MatMul", b.node("Quant", [w, b.const(0.25), b.const(0.0), b.const(3.0)], domain=QDOMAIN,
                           signed=1, narrow=0, rounding_mode="ROUND", name="wq"), name="head")
    src = read(b.model((3,)))
    assert [n.op_type for n in src.model.graph.node] == ["Quant", "Quant", "MatMul"]


def test_quantizers_of_constants_keep_their_codes():
    """QONNX weight quantizers (and QDQ's DequantizeLinear) are not folded to floats: the importer
    still reads their integer codes, so the graph is the one of the unfolded model."""
    rng = np.random.default_rng(2)
    w = rng.integers(-3, 4, (8, 3)).astype(np.float32)

    def model(premultiplied: bool):
        b = Builder("wq", (8,))
        b.quant(0.25, 4)
        src = b.const(w * 0.5) if premultiplied else b.node("Mul", [b.const(w), b.const(0.5)],
                                                            name="half")
        b.act("MatMul", b.node("Quant", [src, b.const(0.5), b.const(0.0), b.const(3.0)],
                               domain=QDOMAIN, signed=1, narrow=0, rounding_mode="ROUND",
                               name="wq"), name="head")
        return b.model((3,))

    folded = read(model(False)).model
    assert "Quant" in [n.op_type for n in folded.graph.node if n.name == "wq"]
    assert graphs_equal(import_onnx(model(False)).graph, import_onnx(model(True)).graph)
    qdq = qdq_mlp(rng)
    kept = [n.op_type for n in read(qdq).model.graph.node]
    assert kept == [n.op_type for n in qdq.graph.node]  # DequantizeLinear of int8 weights kept


def test_folding_is_bounded_before_it_evaluates():
    """A constant of 2^40 elements is refused from its inferred shape, before it is computed."""
    b = Builder("big", (8,))
    b.quant(0.25, 4)
    big = b.node("ConstantOfShape", [b.const([2 ** 20, 2 ** 20], dtype=np.int64)], name="big",
                 value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]))
    b.act("Add", big)
    with pytest.raises(LowbitError, match=re.escape(
            f"<model>: node 'big' (ConstantOfShape): on constants it gives a tensor of "
            f"1099511627776 elements (shape [1048576, 1048576]); lowbit folds at most "
            f"{FOLD_LIMIT} (FOLD_LIMIT)")):
        read(b.model((8,)))


def test_folding_is_bounded_after_it_evaluates(monkeypatch):
    """A shape known only once computed (NonZero of constants) is checked on the result."""
    monkeypatch.setattr(read_stage, "FOLD_LIMIT", 10)
    b = Builder("nonzero", (8,))
    b.quant(0.25, 4)
    nz = b.node("NonZero", [b.const(np.ones(12))], name="nz")
    b.act("Add", b.node("Cast", [nz], to=TensorProto.FLOAT))
    with pytest.raises(LowbitError, match=r"^<model>: node 'nz' \(NonZero\): on constants it "
                                          r"gives a tensor of 12 elements \(shape \[1, 12\]\); "
                                          r"lowbit folds at most 10 \(FOLD_LIMIT\)$"):
        read(b.model((8,)))


def test_nondeterministic_operators_are_not_folded():
    b = Builder("random", (4,))
    b.quant(0.25, 4)
    noise = b.node("RandomNormal", [], name="noise", shape=[1, 4])
    b.act("Add", noise)
    with pytest.raises(LowbitError, match=r"^<model>: node 'noise' \(RandomNormal\): operator "
                                          r"'RandomNormal' is not supported"):
        read(b.model((4,)))


# -- Brevitas' TorchScript export of a TensorNorm --------------------------------------------------


def test_brevitas_tensornorm_torchscript(tmp_path):
    import torch
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    # brevitas_examples ships with the [brevitas] extra that make test installs: never skipped
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    class LFC(torch.nn.Module):
        def __init__(self):
            super().__init__()
            bw = {"weight_quant": SignedBinaryWeightPerTensorConst, "bias": False}
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc0 = qnn.QuantLinear(16, 12, **bw)
            self.bn0 = torch.nn.BatchNorm1d(12)
            self.act0 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst,
                                          return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(12, 5, **bw)
            self.tn = TensorNorm()

        def forward(self, x):
            return self.tn(self.fc1(self.act0(self.bn0(self.fc0(self.inp(x))))))

    torch.manual_seed(0)
    net = LFC()
    with torch.no_grad():
        net.bn0.running_mean.uniform_(-2, 2)
        net.bn0.running_var.uniform_(0.5, 3)
        net.tn.running_mean.fill_(0.75)
        net.tn.running_var.fill_(2.5)
        net.tn.weight.fill_(0.8)
        net.tn.bias.fill_(0.1)
    net.eval()
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (64, 16)).astype(np.float32) / 128  # the 8-bit input's grid
    path = tmp_path / "lfc.onnx"
    export_qonnx(net, torch.from_numpy(x[:1]), str(path), dynamo=False)
    assert "Pow" in [n.op_type for n in onnx.load(path).graph.node]
    result = import_onnx(path)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    ours = result.run(x)
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)
    assert np.array_equal(result.predict(x), want.argmax(1))
