"""Brevitas interop: small Brevitas models exported with ``export_qonnx`` and imported by lowbit.

lowbit's integer execution must equal Brevitas' own quantized forward pass on the same inputs:
the integer activations of every quantized layer (``QuantTensor.int()``), the integer class scores
of the last layer, and so the class decision of every sample (ties to the lowest index on both
sides); and the qonnx executor's activations on the exported file, bit for bit. Needs the
``[brevitas]`` extra (``make test`` installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

import torch  # the [brevitas] extra (make test installs it): these tests never skip
import brevitas.nn as qnn  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.quant import (SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst,  # noqa: E402
                            SignedTernaryWeightPerTensorConst)

from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from lowbit.ir.graph import values  # noqa: E402
from lowbit.quant.onnx.importer import import_onnx  # noqa: E402
from lowbit.sw_reference import argmax_lowest  # noqa: E402


def _bn(bn, rng):
    with torch.no_grad():
        c = bn.num_features
        bn.running_mean.copy_(torch.tensor(rng.normal(0, 2, c)))
        bn.running_var.copy_(torch.tensor(rng.uniform(0.5, 3, c)))
        bn.weight.copy_(torch.tensor(rng.normal(0, 1, c)))  # some negative: channels are negated
        bn.bias.copy_(torch.tensor(rng.normal(0, 1, c)))
    return bn


class W1A1MLP(torch.nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc0 = qnn.QuantLinear(16, 12, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.bn0 = _bn(torch.nn.BatchNorm1d(12), rng)
        self.act0 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(12, 4, bias=False, weight_quant=SignedBinaryWeightPerTensorConst,
                                   return_quant_tensor=True)
        self.acts = [self.act0]

    def forward(self, x):
        return self.fc1(self.act0(self.bn0(self.fc0(self.inp(x)))))


class W2A2MLP(torch.nn.Module):
    def __init__(self, rng, weight_quant=None):
        super().__init__()
        wq = {"weight_quant": weight_quant} if weight_quant else {"weight_bit_width": 2}
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc0 = qnn.QuantLinear(16, 12, bias=False, **wq)
        self.bn0 = _bn(torch.nn.BatchNorm1d(12), rng)
        self.act0 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(12, 10, bias=True, **wq)
        self.act1 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(10, 4, bias=False, **wq, return_quant_tensor=True)
        self.acts = [self.act0, self.act1]

    def forward(self, x):
        x = self.act0(self.bn0(self.fc0(self.inp(x))))
        return self.fc2(self.act1(self.fc1(x)))


class W1A1CNN(torch.nn.Module):
    def __init__(self, rng):
        super().__init__()
        b = {"weight_quant": SignedBinaryWeightPerTensorConst, "bias": False}
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0 = qnn.QuantConv2d(1, 4, 3, **b)
        self.bn0 = _bn(torch.nn.BatchNorm2d(4), rng)
        self.act0 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv1 = qnn.QuantConv2d(4, 6, 3, **b)
        self.bn1 = _bn(torch.nn.BatchNorm2d(6), rng)
        self.act1 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(6 * 2 * 2, 3, weight_quant=SignedBinaryWeightPerTensorConst, bias=False,
                                  return_quant_tensor=True)
        self.acts = [self.act0, self.act1]

    def forward(self, x):
        x = self.pool(self.act0(self.bn0(self.conv0(self.inp(x)))))
        x = self.act1(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(x, 1))


class W2A2CNN(torch.nn.Module):
    """Padded 2-bit convolutions (zero padding is the code 0 of the unsigned activations), batch-norm, max-pool."""

    def __init__(self, rng):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv0 = qnn.QuantConv2d(1, 4, 3, padding=1, bias=False, weight_bit_width=2)
        self.bn0 = _bn(torch.nn.BatchNorm2d(4), rng)
        self.act0 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.pool = torch.nn.MaxPool2d(2)
        self.conv1 = qnn.QuantConv2d(4, 4, 3, padding=1, bias=True, weight_bit_width=2)
        self.act1 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(4 * 3 * 3, 3, bias=False, weight_bit_width=2, return_quant_tensor=True)
        self.acts = [self.act0, self.act1]

    def forward(self, x):
        x = self.pool(self.act0(self.bn0(self.conv0(self.inp(x)))))
        x = self.act1(self.conv1(x))
        return self.fc(torch.flatten(x, 1))


MODELS = {
    "W1A1-MLP": (W1A1MLP, (16,)),
    "W2A2-MLP": (W2A2MLP, (16,)),
    "W1A1-CNN-BN": (W1A1CNN, (1, 10, 10)),
    "W2A2-CNN-padded": (W2A2CNN, (1, 6, 6)),
    "ternary-weights": (lambda rng: W2A2MLP(rng, SignedTernaryWeightPerTensorConst), (16,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_brevitas_export_matches_brevitas_forward(name, tmp_path):
    rng = np.random.default_rng(17)
    torch.manual_seed(17)
    make, shape = MODELS[name]
    model = make(rng).eval()
    path = tmp_path / f"{name}.onnx"
    export_qonnx(model, torch.randn(1, *shape), str(path))
    result = import_onnx(path)

    x = torch.randn(24, *shape) * 1.5
    captured = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: captured.__setitem__(i, out))
             for i, m in enumerate(model.acts)]
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    brevitas_scores = out.int().numpy().astype(np.int64)  # the last layer's integer accumulator

    codes = result.encode(x.numpy())
    trace = result.graph.trace(codes)
    scores = trace[-1]
    # integer class scores and the decision on every sample
    assert scores.shape == brevitas_scores.shape
    bad = np.argwhere(scores != brevitas_scores)
    assert not bad.size, f"{name}: scores differ at {tuple(bad[0])}: lowbit {scores[tuple(bad[0])]} vs " \
                         f"Brevitas {brevitas_scores[tuple(bad[0])]} ({len(bad)} in all)"
    assert np.array_equal(argmax_lowest(scores), argmax_lowest(brevitas_scores))
    # the float outputs agree on every sample whose best score is unique
    top2 = np.sort(scores, axis=1)[:, -2:]
    unique = top2[:, 1] > top2[:, 0]
    assert np.array_equal(result.run(x.numpy()).argmax(1)[unique], out.value.numpy().argmax(1)[unique])

    # integer activations of every quantized layer equal Brevitas' QuantTensor.int()
    layers = [i for i, n in enumerate(result.graph.nodes) if getattr(n, "thresholds", None) is not None]
    assert len(layers) == len(model.acts)
    for k, i in enumerate(layers):
        node = result.graph.nodes[i]
        theirs = captured[k].int().numpy().astype(np.int64)
        scale, offset = result.layer_scales[node.name]
        assert all(o == 0 for o in offset), f"{name} {node.name}: zero point expected"
        np.testing.assert_allclose([float(s) for s in scale], float(captured[k].scale), rtol=1e-6)
        mine = values(trace[i], node.output_dtype)
        if mine.ndim == 4:
            mine = np.transpose(mine, (0, 3, 1, 2))
        bad = np.argwhere(mine != theirs)
        assert not bad.size, f"{name} layer {node.name}: codes differ at {tuple(bad[0])}: lowbit " \
                             f"{mine[tuple(bad[0])]} vs Brevitas {theirs[tuple(bad[0])]} ({len(bad)} in all)"

    # the qonnx executor on the exported file: every activation quantizer's output is code * scale in float32,
    # bit for bit the same as lowbit's codes times the same float32 scale
    mw = cleanup_model(ModelWrapper(str(path)))
    inits = {t.name for t in mw.graph.initializer}
    quants = [n.output[0] for n in mw.graph.node if n.op_type in ("Quant", "BipolarQuant", "IntQuant")
              and n.input[0] not in inits][1:]  # the first one quantizes the input
    assert len(quants) == len(layers)
    for b in range(4):
        ctx = execute_onnx(mw, {mw.graph.input[0].name: x[b:b + 1].numpy()}, return_full_exec_context=True)
        for t, i in zip(quants, layers):
            node = result.graph.nodes[i]
            scale, _ = result.layer_scales[node.name]
            mine = values(trace[i][b:b + 1], node.output_dtype).astype(np.float32) * np.float32(float(scale[0]))
            if mine.ndim == 4:
                mine = np.transpose(mine, (0, 3, 1, 2))
            assert np.array_equal(mine, ctx[t]), f"{name}: sample {b}, layer {node.name} differs from qonnx"
