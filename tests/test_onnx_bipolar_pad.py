"""Zero padding on binary activations (issue 16: a Brevitas W1A1 CNN with padding and max-pool).

Brevitas pads a convolution's binary input with the value 0, which a ``BIPOLAR`` code cannot hold.
The importer re-emits the layer that produces those activations with ``UINT2`` codes ``{0, 2}``
(the values ``-s`` and ``+s``; code 1 is 0, what the padding inserts): its single threshold ``t``
becomes ``[t, t, hi + 1]``. The padded convolution then reads integer codes, and the graph equals
the model exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.ir.datatypes import BIPOLAR, DataType
from lowbit.ir.graph import MatMulThreshold, MaxPool, SlidingWindow
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx

from onnx_models import QDOMAIN, Builder, bn


def binary_cnn_padded(rng, pool=True, c=(1, 4, 6), classes=3, size=8):
    """Quant(INT4) -> Conv 3x3 pad 1 -> BN -> BipolarQuant [-> MaxPool 2] -> Conv 3x3 pad 1 (reads
    binary activations) -> BN -> BipolarQuant -> Flatten -> Gemm."""
    b = Builder("binary_cnn_padded", (c[0], size, size))
    b.quant(0.25, 4, signed=True)
    h = size
    for i in range(2):
        w = rng.normal(0, 1, (c[i + 1], c[i], 3, 3))
        b.act("Conv", b.bweight(w, 1.0), kernel_shape=[3, 3], pads=[1, 1, 1, 1], name=f"conv{i}")
        bn(b, rng, c[i + 1])
        b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
        if i == 0 and pool:
            b.act("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
            h //= 2
    b.act("Flatten", axis=1)
    b.act("Gemm", b.bweight(rng.normal(0, 1, (classes, c[2] * h * h)), 0.25), transB=1, name="fc")
    return b.model((classes,))


def test_with_zero_thresholds_by_hand():
    """The re-emitted layer: one threshold t becomes [t, t, hi + 1]; codes are 0 or 2."""
    rng = np.random.default_rng(3)
    r = import_onnx(binary_cnn_padded(rng))
    kinds = [type(n).__name__ for n in r.graph.nodes]
    assert kinds == ["SlidingWindow", "MatMulThreshold", "MaxPool", "SlidingWindow",
                     "MatMulThreshold", "MatMulThreshold"]
    first, second = r.graph.nodes[1], r.graph.nodes[4]
    assert first.output_dtype == DataType.uint(2) and second.output_dtype is BIPOLAR
    t = first.thresholds
    assert t.shape == (4, 3)
    assert np.array_equal(t[:, 0], t[:, 1]) and (t[:, 2] == first.acc_range[1] + 1).all()
    sw = r.graph.nodes[3]
    assert isinstance(sw, SlidingWindow) and sw.pad == 1 and sw.pad_value == 1  # code 1 is 0
    x = r.encode(np.round(rng.normal(0, 2, (5, 1, 8, 8)) * 4) / 4)
    codes = r.graph.trace(x)[2]  # after the max-pool
    assert set(np.unique(codes).tolist()) <= {0, 2}
    assert isinstance(r.graph.nodes[2], MaxPool) and isinstance(second, MatMulThreshold)


@pytest.mark.parametrize("pool", [True, False])
def test_padded_binary_conv_equals_the_model(pool):
    rng = np.random.default_rng(11 if pool else 12)
    m = binary_cnn_padded(rng, pool=pool)
    r = import_onnx(m)
    x = (np.round(rng.normal(0, 2, (64, 1, 8, 8)) * 4) / 4).clip(-2, 1.75).astype(np.float32)
    ref = next(iter(onnx_ops.run(m, x).values()))
    np.testing.assert_allclose(r.run(x), ref, rtol=0, atol=1e-9)
    assert np.array_equal(r.graph.predict(r.encode(x)), ref.argmax(1))


def test_bipolar_model_input_with_padding_is_still_refused():
    """The model's own binary input has no layer to re-emit: refused, naming the node."""
    b = Builder("bin_in", (1, 6, 6))
    b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
    b.act("Conv", b.bweight(np.ones((2, 1, 3, 3)), 1.0), kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          name="conv0")
    b.act("Flatten", axis=1)
    b.act("Gemm", b.bweight(np.ones((3, 72)), 1.0), transB=1, name="fc")
    from lowbit import LowbitError

    with pytest.raises(LowbitError, match=r"conv0.*padding needs the value 0"):
        import_onnx(b.model((3,)))
