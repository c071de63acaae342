"""A float input with no quantizer, imported with an input quantizer given by the user (issue 16:
Brevitas' default ``QuantLinear`` reads floats)."""

from __future__ import annotations

import numpy as np

from lowbit.ir.boundary import InputQuant
from lowbit.ir.datatypes import DataType
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx

from onnx_models import QDOMAIN, Builder


def float_input_mlp(rng):
    """Gemm (ternary weights) on the float input -> BipolarQuant -> Gemm."""
    b = Builder("float_in", (6,))
    w = rng.integers(-1, 2, (5, 6)).astype(np.float64)
    b.act("Gemm", b.const(w * 0.5), transB=1, name="fc0")
    b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
    b.act("Gemm", b.bweight(rng.normal(0, 1, (3, 5)), 1.0), transB=1, name="fc1")
    return b.model((3,))


def test_encode_rounds_off_grid_floats_with_the_given_quantizer():
    rng = np.random.default_rng(4)
    m = float_input_mlp(rng)
    q = InputQuant(DataType.uint(4), (0.25,), (0.0,))
    r = import_onnx(m, input_quant=q)
    assert r.graph.input_quant == q
    x = np.array([[0.1, 0.37, 1.0, 2.2, 5.0, -1.0]], dtype=np.float32)
    # by hand: x / 0.25 = 0.4, 1.48, 4, 8.8, 20, -4 -> round half even, clip to 0..15
    assert r.encode(x).tolist() == [[0, 1, 4, 9, 15, 0]]
    xs = rng.uniform(-0.5, 4.5, (32, 6)).astype(np.float32)
    codes = r.encode(xs)
    assert np.array_equal(codes, q.encode(xs))
    # the graph computes the model on the quantized input exactly
    ref = next(iter(onnx_ops.run(m, q.decode(codes).astype(np.float32)).values()))
    np.testing.assert_allclose(r.run(xs), ref, rtol=0, atol=1e-9)
    assert np.array_equal(r.graph.predict(codes), ref.argmax(1))
