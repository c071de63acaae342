"""QONNX ``Trunc``: both versions read as qonnx defines them, checked against qonnx's executor.

qonnx 1.0 (``qonnx/custom_op/general/trunc.py``) has two versions: v1 with the inputs (x, scale,
zero point, input bit width, output bit width), whose output keeps the input scale,
``(rounding(round(x / scale + zp) / 2^(in - out)) - zp) * scale``; and v2 (what Brevitas 0.13
exports, the QONNX domain at version 2) with (x, scale, zero point, input bit width, output
scale, output bit width), which clips to the output bit width before rounding and rescales to the
output scale. A widening ``Trunc`` (output bit width above the input's) is an exact left shift.
The importer's integer graph, and lowbit's float executor, must compute what qonnx computes; and a
real Brevitas model ending in ``TruncAvgPool2d`` imports through both exporters and computes what
torch computes.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_shapes import InferShapes

from lowbit import LowbitError
from lowbit.ir.graph import values
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx

from onnx_models import QDOMAIN, Builder


def _qonnx(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """qonnx's executor, one sample at a time (its models have batch 1)."""
    mw = ModelWrapper(model).transform(InferShapes())
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    return np.concatenate([execute_onnx(mw, {iname: x[i:i + 1]})[oname] for i in range(len(x))])


def _trunc(b: Builder, *, version, scale, zp, ibw, obw, out_scale=None, signed=True, narrow=False,
           mode="FLOOR"):
    ins = [b.const(scale), b.const(zp), b.const(float(ibw))]
    ins += [b.const(float(obw))] if version == 1 else [b.const(out_scale), b.const(float(obw))]
    attrs = {"rounding_mode": mode}
    if version == 2:
        attrs.update(signed=int(signed), narrow=int(narrow))
    return b.act("Trunc", *ins, domain=QDOMAIN, name="trunc", **attrs)


def _model(b: Builder, version: int, out_shape) -> onnx.ModelProto:
    m = b.model(out_shape)
    m.opset_import[1].version = version  # qonnx picks Trunc_v1 or Trunc_v2 by the domain's version
    return m


def _trunc_model(rng, **trunc):
    """Quant(input) -> MatMul -> Trunc -> MatMul head (power-of-two scales: every value exact in
    float32). The first layer's dot products have the scale 0.25 the Trunc reads."""
    b = Builder(f"trunc_v{trunc['version']}", (8,))
    b.quant(0.25, 4, signed=True)
    b.act("MatMul", b.qweight(rng.normal(0, 2, (8, 8)), 1.0, 3), name="fc0")
    _trunc(b, **trunc)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (8, 3)), 2.0 ** -2, 3), name="head")
    return _model(b, trunc["version"], (3,))


CASES = {
    # Brevitas 0.13's order: output scale (input 4) before output bit width (input 5)
    "v2-narrow-8to6": dict(version=2, scale=0.25, zp=0.0, ibw=8, out_scale=1.0, obw=6),
    "v2-clip-8to4": dict(version=2, scale=0.25, zp=0.0, ibw=8, out_scale=0.5, obw=4),
    "v2-unsigned-narrow-round": dict(version=2, scale=0.25, zp=0.0, ibw=8, out_scale=4.0, obw=4,
                                     signed=False, narrow=True, mode="ROUND"),
    "v2-zero-point": dict(version=2, scale=0.25, zp=3.0, ibw=8, out_scale=1.0, obw=6),
    "v2-widen-6to8": dict(version=2, scale=0.25, zp=0.0, ibw=6, out_scale=0.0625, obw=8),
    # v1: the output keeps the input scale
    "v1-narrow-8to6": dict(version=1, scale=0.25, zp=0.0, ibw=8, obw=6),
    "v1-zero-point": dict(version=1, scale=0.25, zp=1.0, ibw=8, obw=5, mode="ROUND"),
    "v1-widen-6to8": dict(version=1, scale=0.25, zp=0.0, ibw=6, obw=8),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trunc_equals_qonnx(case):
    rng = np.random.default_rng(sum(map(ord, case)))
    model = _trunc_model(rng, **CASES[case])
    x = rng.uniform(-2.5, 2.5, (24, 8)).astype(np.float32)  # past the input quantizer's range
    peer = _qonnx(model, x)
    # lowbit's float executor, and the imported integer graph, compute what qonnx computes
    assert np.array_equal(onnx_ops.run(model, x)[model.graph.output[0].name], peer)
    assert np.array_equal(import_onnx(model).run(x), peer)


def test_trunc_v2_clips_at_the_output_bit_width():
    """The hand-worked v2 case: codes of 8 bits, two bits dropped, clipped to 4 signed bits."""
    b = Builder("trunc", (5,))
    _trunc(b, **CASES["v2-clip-8to4"])
    model = _model(b, 2, (5,))
    x = np.array([[1.0, -1.0, 1.75, -30.0, 30.0]], np.float32)
    # codes 4, -4, 7, -120, 120 -> floor(/ 2): 2, -2, 3, -60, 60 -> clipped to -8..7
    want = np.array([[1.0, -1.0, 1.5, -4.0, 3.5]], np.float32)
    assert np.array_equal(onnx_ops.run(model, x)[model.graph.output[0].name], want)
    assert np.array_equal(_qonnx(model, x), want)


def test_trunc_with_an_unsupported_input_count_is_refused():
    model = _trunc_model(np.random.default_rng(0), **CASES["v1-narrow-8to6"])
    trunc = next(n for n in model.graph.node if n.op_type == "Trunc")
    del trunc.input[4]
    with pytest.raises(LowbitError, match=re.escape(
            "<model>: node 'trunc' (Trunc): has 4 inputs; expected 5 (QONNX Trunc v1: x, scale, "
            "zero point, input bit width, output bit width) or 6 (v2: x, scale, zero point, input "
            "bit width, output scale, output bit width)")):
        import_onnx(model)


def test_trunc_with_a_fractional_bit_width_is_refused():
    model = _trunc_model(np.random.default_rng(0), **{**CASES["v1-narrow-8to6"], "obw": 5.5})
    with pytest.raises(LowbitError, match=re.escape(
            "<model>: node 'trunc' (Trunc): output bit width must be a positive integer, not 5.5")):
        import_onnx(model)


# -- a real Brevitas model -------------------------------------------------------------------------


def _brevitas_pool_net():
    import torch
    import brevitas.nn as qnn
    from brevitas.quant import Int32Bias

    class PoolNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.conv = qnn.QuantConv2d(1, 4, 3, weight_bit_width=4, bias=False)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = qnn.TruncAvgPool2d(kernel_size=6)  # global: the 6x6 map to 1x1
            self.fc = qnn.QuantLinear(4, 3, bias=True, bias_quant=Int32Bias)

        def pooled(self, x):
            return self.pool(self.relu(self.conv(self.inp(x))))

        def forward(self, x):
            return self.fc(torch.flatten(self.pooled(x), 1))

    torch.manual_seed(3)
    net = PoolNet()
    with torch.no_grad():
        net.conv.weight.mul_(4.0)  # activations wide enough that the pool's sums are truncated
    return net.eval()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_brevitas_trunc_avg_pool(tmp_path, dynamo):
    import torch
    from brevitas.export import export_qonnx

    net = _brevitas_pool_net()
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (16, 1, 8, 8)).astype(np.float32) / 128  # the 8-bit input's grid
    path = tmp_path / "pool.onnx"
    export_qonnx(net, torch.from_numpy(x[:1]), str(path), dynamo=dynamo)
    assert [n.input.__len__() for n in onnx.load(path).graph.node if n.op_type == "Trunc"] == [6]
    result = import_onnx(path)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
        pooled = net.pooled(torch.from_numpy(x)).value.numpy().reshape(len(x), 4)
    # the truncated pool: the last thresholding layer's values equal torch's, exactly
    g = result.graph
    layer = max(i for i, n in enumerate(g.nodes) if getattr(n, "thresholds", None) is not None)
    node = g.nodes[layer]
    scale, offset = result.layer_scales[node.name]
    codes = g.trace(result.encode(x))[layer].reshape(len(x), -1)
    mine = values(codes, node.output_dtype) * np.array([float(s) for s in scale]) + np.array(
        [float(o) for o in offset])
    assert np.array_equal(mine.astype(np.float32), pooled)
    assert len(np.unique(codes)) > 4  # the test exercises the truncation, not only zeros
    # the model's outputs (float bias of the last layer applied exactly) and its class decisions
    ours = result.run(x)
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
    assert np.array_equal(result.predict(x), want.argmax(1))
