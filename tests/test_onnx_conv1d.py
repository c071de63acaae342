"""Issue 19, import of 1-D convolutions: ``Conv`` with a 1-D kernel on an ``(N, C, L)`` sequence
imports as a ``SlidingWindow1D`` and the matrix product on its ``(k, c)`` columns, ``MaxPool`` with
a 1-D kernel as ``MaxPool1D`` (of codes, or after a layer's thresholds), and the flatten of
``(1, C, L)`` before a ``Gemm`` reads the sequence in its physical ``(L, C)`` order. A model with
1-D windows streams its ``(C, L)`` input as a sequence ``(L, C)``. The graph equals the model's
exact execution; dilated and asymmetric 1-D windows are refused naming the node."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_models import QDOMAIN, Builder, bn

from lowbit import LowbitError
from lowbit.ir.datatypes import DataType
from lowbit.ir.graph import Concat, DepthwiseConv, MatMulThreshold, MaxPool1D, SlidingWindow1D
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx


def cnn1d(rng, pool=True, binary=False, depthwise=False, c=(3, 4, 5), classes=3, length=10):
    """Quant(INT4) -> Conv k3 pad 1 -> BN -> act [-> MaxPool 2] -> Conv k3 (stride 2 pad 1, or a
    depthwise k3 pad 1 and a pointwise k1) -> BN -> act -> Flatten -> Gemm."""
    b = Builder("cnn1d", (c[0], length))
    b.quant(0.25, 4, signed=True)

    def act(i):
        if binary:
            b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
        else:
            b.act("Relu")
            b.quant(0.5, 2, name=f"q{i}")

    def weights(shape):
        w = rng.normal(0, 1, shape)
        return b.bweight(w, 1.0) if binary else b.qweight(w, 0.5, 3)

    b.act("Conv", weights((c[1], c[0], 3)), kernel_shape=[3], pads=[1, 1], name="conv0")
    bn(b, rng, c[1])
    act(0)
    n = length
    if pool:
        b.act("MaxPool", kernel_shape=[2], strides=[2], name="pool0")
        n //= 2
    if depthwise:
        b.act("Conv", weights((c[1], 1, 3)), kernel_shape=[3], pads=[1, 1], group=c[1],
              name="dw")
        act("dw")
        b.act("Conv", weights((c[2], c[1], 1)), kernel_shape=[1], name="conv1")
    else:
        b.act("Conv", weights((c[2], c[1], 3)), kernel_shape=[3], strides=[2], pads=[1, 1],
              name="conv1")
        n = (n + 2 - 3) // 2 + 1
    bn(b, rng, c[2])
    act(1)
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(rng.normal(0, 1, (classes, c[2] * n)), 0.25, 3), transB=1, name="fc")
    return b.model((classes,))


def _inputs(rng, c=3, length=10, n=64):
    return (np.round(rng.normal(0, 2, (n, c, length)) * 4) / 4).clip(-2, 1.75).astype(np.float32)


@pytest.mark.parametrize(
    "pool, binary, depthwise, native",
    [
        (True, False, False, False),
        (False, False, False, False),
        (True, True, False, False),
        (True, False, True, False),
        (True, False, True, True),
    ],
    ids=["pool", "no-pool", "binary-padded", "depthwise-chain", "depthwise-native"],
)
def test_conv1d_model_equals_its_execution(pool, binary, depthwise, native):
    rng = np.random.default_rng(5)
    m = cnn1d(rng, pool=pool, binary=binary, depthwise=depthwise)
    r = import_onnx(m, native_nodes=native)
    g = r.graph
    assert g.input_shape == (10, 3)  # the sequence (L, C)
    kinds = [type(n).__name__ for n in g.nodes]
    assert kinds[:2] == ["SlidingWindow1D", "MatMulThreshold"]
    assert ("MaxPool1D" in kinds) == pool
    assert ("DepthwiseConv" in kinds) == native
    if binary:  # the padded second convolution reads UINT2 codes {0, 2}: code 1 is 0
        assert g.nodes[1].output_dtype == DataType.uint(2)
        assert [n.pad_value for n in g.nodes if isinstance(n, SlidingWindow1D)] == [0, 1]
    x = _inputs(rng)
    ref = next(iter(onnx_ops.run(m, x).values()))
    np.testing.assert_allclose(r.run(x), ref, rtol=0, atol=1e-9)
    assert np.array_equal(g.predict(r.encode(x)), ref.argmax(1))


def test_conv1d_by_hand():
    """Two channels, length 4, kernel 2, stride 1, pads 1 (padding code 0): the window columns
    are (k, c); weights w[o, c, k] go to column k * C + c; codes (L, C) from (C, L)."""
    b = Builder("hand", (2, 4))
    b.quant(1.0, 3, signed=True)
    w = np.array([[[1, -1], [2, 0]]], dtype=np.float32)  # (OC 1, C 2, K 2)
    b.act("Conv", b.qweight(w, 1.0, 3), kernel_shape=[2], pads=[1, 1], name="conv")
    b.act("Relu")
    b.quant(1.0, 3)
    b.act("MaxPool", kernel_shape=[3], strides=[2], name="pool")
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(np.array([[1.0, 0.0], [1.0, 1.0]]), 1.0, 2), transB=1, name="fc")
    r = import_onnx(b.model((2,)))
    sw, mm, pool, fc = r.graph.nodes
    assert (sw.kernel, sw.stride, sw.pad, sw.pad_value) == (2, 1, 1, 0)
    assert mm.weight_values.tolist() == [[1, 2, -1, 0]]
    assert isinstance(pool, MaxPool1D) and (pool.kernel, pool.stride) == (3, 2)
    assert r.graph.output_shape(2) == (2, 1)
    x = np.array([[[1, 2, 3, -1], [0, 1, -2, 3]]], dtype=np.float32)
    codes = r.encode(x)
    assert codes.tolist() == [[[1, 0], [2, 1], [3, -2], [-1, 3]]]
    # padded x0 = [0, 1, 2, 3, -1, 0], x1 = [0, 0, 1, -2, 3, 0]: y[l] = x0[l] - x0[l+1] + 2 x1[l]
    # y = [-1, -1, 1, 0, 5]; relu, UINT3: [0, 0, 1, 0, 5]; max over [0:3] and [2:5]: [1, 5]
    trace = r.graph.trace(codes)
    assert trace[1].reshape(-1).tolist() == [0, 0, 1, 0, 5]
    assert trace[2].reshape(-1).tolist() == [1, 5]
    np.testing.assert_array_equal(r.run(x), [[1.0, 6.0]])


@pytest.mark.parametrize(
    "attrs, msg",
    [
        ({"kernel_shape": [3], "dilations": [2]},
         r"dilations \[2\]: a dilated 1-D window is not supported; use dilation 1"),
        ({"kernel_shape": [3], "pads": [1, 0]},
         r"pads \[1, 0\] are not symmetric: an asymmetric 1-D window is not supported; lowbit "
         r"needs the same padding at both ends"),
        ({"kernel_shape": [3], "strides": [1, 1]},
         r"attribute 'strides' \[1, 1\] must hold 1 positive integer"),
    ],
    ids=["dilated", "asymmetric", "strides"],
)
def test_conv1d_refusals_name_the_node(attrs, msg):
    b = Builder("bad", (2, 8))
    b.quant(0.5, 3)
    b.act("Conv", b.qweight(np.ones((2, 2, 3)), 1.0, 2), name="conv", **attrs)
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(np.ones((2, 12)), 1.0, 2), transB=1, name="fc")
    with pytest.raises(LowbitError, match=rf"node 'conv' \(Conv\): {msg}$"):
        import_onnx(b.model((2,)))


def test_maxpool1d_of_codes_and_native_depthwise_types():
    """A 1-D max-pool of codes (a Concat of the input codes) is emitted at once; a native
    depthwise 1-D conv is a DepthwiseConv on a SlidingWindow1D."""
    b = Builder("pool_in", (2, 6))
    b.quant(1.0, 3)
    b.x = b.node("Concat", [b.x, b.x], name="cat", axis=1)  # the codes of the input, twice
    b.act("MaxPool", kernel_shape=[2], strides=[2], name="pool")
    w = np.array([[[1.0, 2.0]], [[-1.0, 1.0]], [[0.0, 1.0]], [[2.0, -2.0]]])  # (4, 1, 2)
    b.act("Conv", b.qweight(w, 1.0, 3), kernel_shape=[2], group=4, name="dw")
    b.act("Relu")
    b.quant(1.0, 2)
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(np.ones((2, 8)), 1.0, 2), transB=1, name="fc")
    m = b.model((2,))
    r = import_onnx(m, native_nodes=True)
    assert [type(n) for n in r.graph.nodes] == [Concat, MaxPool1D, SlidingWindow1D,
                                                DepthwiseConv, MatMulThreshold]
    x = np.random.default_rng(0).integers(0, 8, (32, 2, 6)).astype(np.float32)
    ref = next(iter(onnx_ops.run(m, x).values()))
    np.testing.assert_allclose(r.run(x), ref, rtol=0, atol=1e-9)


def test_fully_connected_on_a_sequence_of_length_one_is_refused():
    """A sequence ``(1, C)`` would read as a pointwise product keeping its length axis."""
    b = Builder("len1", (2, 3))
    b.quant(1.0, 3)
    b.act("Conv", b.qweight(np.ones((2, 2, 3)), 1.0, 2), kernel_shape=[3], name="conv")
    b.act("Relu")
    b.quant(1.0, 2)
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(np.ones((2, 2)), 1.0, 2), transB=1, name="fc")
    with pytest.raises(LowbitError, match=r"node 'fc' \(Gemm\): reads a sequence of length 1 "
                                          r"\(1, 2\); lowbit needs a length of at least 2 before "
                                          r"a fully connected layer$"):
        import_onnx(b.model((2,)))


def test_conv1d_without_window_attributes_says_what_to_add():
    """Without a 1-D ``kernel_shape``, ``strides`` or ``dilations`` attribute in the model, its
    ``(N, C, L)`` input is read as a vector: the convolution says which attribute to give."""
    b = Builder("noattr", (2, 8))
    b.quant(0.5, 3)
    b.act("Conv", b.qweight(np.ones((2, 2, 3)), 1.0, 2), name="conv")
    b.act("Relu")
    b.quant(1.0, 2)
    b.act("Flatten", axis=1)
    b.act("Gemm", b.qweight(np.ones((2, 12)), 1.0, 2), transB=1, name="fc")
    with pytest.raises(LowbitError, match=r"node 'conv' \(Conv\): reads \[1, 2, 8\] as a vector: "
                                          r".* give this node its kernel_shape$"):
        import_onnx(b.model((2,)))
    conv = next(n for n in b.nodes if n.name == "conv")
    conv.attribute.extend([helper.make_attribute("kernel_shape", [3])])
    assert isinstance(import_onnx(b.model((2,))).graph.nodes[0], SlidingWindow1D)
