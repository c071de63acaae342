"""Small ONNX, QONNX and QDQ models built with ``onnx.helper`` for the import/export tests.

Scales are powers of two and final layers carry no bias unless a test says otherwise, so that the
float32 executors of the peers (``qonnx``, ``onnxruntime``) represent every quantized value exactly
and outputs can be compared with ``==``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QDOMAIN = "qonnx.custom_op.general"
OPSET = 13


def f32(a):
    return np.asarray(a, dtype=np.float32)


class Builder:
    """Accumulates nodes and initializers; ``x`` is the name of the current activation."""

    def __init__(self, name: str, shape, elem=TensorProto.FLOAT, batch=1):
        self.name, self.nodes, self.inits, self.n, self.batch = name, [], [], 0, batch
        self.inp = helper.make_tensor_value_info("x", elem, [batch, *shape])
        self.x = "x"

    def const(self, value, name=None, dtype=np.float32):
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op, inputs, domain="", out=None, name=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name or f"{op.lower()}{self.n}", domain=domain,
                                           **attrs))
        return out

    def act(self, op, *consts, domain="", name=None, **attrs):
        self.x = self.node(op, [self.x, *consts], domain=domain, name=name, **attrs)
        return self.x

    def quant(self, scale, bits, signed=False, narrow=False, zp=0.0, mode="ROUND", name=None):
        return self.act("Quant", self.const(scale), self.const(zp), self.const(float(bits)), domain=QDOMAIN,
                        signed=int(signed), narrow=int(narrow), rounding_mode=mode, name=name)

    def qweight(self, w, scale, bits, signed=True, narrow=False):
        wn = self.const(w)
        return self.node("Quant", [wn, self.const(scale), self.const(0.0), self.const(float(bits))], domain=QDOMAIN,
                         signed=int(signed), narrow=int(narrow), rounding_mode="ROUND")

    def bweight(self, w, scale):
        return self.node("BipolarQuant", [self.const(w), self.const(scale)], domain=QDOMAIN)

    def model(self, out_shape, opset=OPSET, qonnx=True):
        out = helper.make_tensor_value_info(self.x, TensorProto.FLOAT, [self.batch, *out_shape])
        g = helper.make_graph(self.nodes, self.name, [self.inp], [out], self.inits)
        ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(QDOMAIN, 1)] if qonnx else [])
        m = helper.make_model(g, opset_imports=ops, producer_name="lowbit-tests")
        m.ir_version = 8
        return m


def bn(b: Builder, rng, c, spatial=False, negative=True):
    gamma = rng.uniform(0.5, 2.0, c) * (np.where(rng.random(c) < 0.3, -1, 1) if negative else 1)
    return b.act("BatchNormalization", b.const(gamma), b.const(rng.normal(0, 1, c)), b.const(rng.normal(0, 2, c)),
                 b.const(rng.uniform(0.5, 4, c)), epsilon=1e-5)


def qonnx_mlp(rng, w_bits=2, a_bits=2, sizes=(16, 12, 10, 5)) -> onnx.ModelProto:
    """Quant(input, UINT4) -> [Gemm(quantized W) + bias -> BN -> Relu -> Quant(UINT a_bits)]* -> Gemm."""
    b = Builder("qonnx_mlp", (sizes[0],))
    b.quant(0.125, 4)
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        last = i == len(sizes) - 2
        w = rng.normal(0, 1, (k, n))
        if w_bits == 1:
            wq = b.bweight(w, 0.5)
        else:
            wq = b.qweight(w, 2.0 ** -2, w_bits, narrow=(w_bits == 2))
        if last:
            b.act("MatMul", wq, name=f"fc{i}")
        else:
            b.act("Gemm", wq, b.const(rng.normal(0, 1, n)), name=f"fc{i}")
            bn(b, rng, n)
            if a_bits == 1:
                b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
            else:
                b.act("Relu")
                b.quant(0.5, a_bits)
    return b.model((sizes[-1],))


def qonnx_cnn(rng, w_bits=1, a_bits=1, c=(2, 4, 6), classes=3, size=8) -> onnx.ModelProto:
    """Input Quant(INT8-ish) -> Conv 3x3 -> BN -> act quant -> MaxPool 2 -> Conv 3x3 -> BN -> act -> Flatten -> Gemm."""
    b = Builder("qonnx_cnn", (c[0], size, size))
    b.quant(0.25, 4, signed=True)
    h = size
    for i in range(2):
        w = rng.normal(0, 1, (c[i + 1], c[i], 3, 3))
        wq = b.bweight(w, 1.0) if w_bits == 1 else b.qweight(w, 0.5, w_bits, narrow=w_bits == 2)
        b.act("Conv", wq, kernel_shape=[3, 3], pads=[1, 1, 1, 1] if i == 0 else [0, 0, 0, 0], name=f"conv{i}")
        h = h if i == 0 else h - 2
        bn(b, rng, c[i + 1])
        if a_bits == 1:
            b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
        else:
            b.act("Relu")
            b.quant(0.5, a_bits)
        if i == 0:
            b.act("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
            h //= 2
    b.act("Flatten", axis=1)
    w = rng.normal(0, 1, (classes, c[2] * h * h))
    wq = b.bweight(w, 0.25) if w_bits == 1 else b.qweight(w, 0.25, max(2, w_bits), narrow=w_bits == 2)
    b.act("Gemm", wq, transB=1, name="fc")
    return b.model((classes,))


def float_cnn(rng, classes=4, opset=OPSET) -> onnx.ModelProto:
    """A float CNN using most supported ops (no quantizers): for the float executor vs onnxruntime."""
    b = Builder("float_cnn", (3, 8, 8), batch="N")
    b.act("Mul", b.const(0.5))
    b.act("Sub", b.const(0.25))
    b.act("Conv", b.const(rng.normal(0, 0.5, (6, 3, 3, 3))), b.const(rng.normal(0, 0.1, 6)), kernel_shape=[3, 3],
          pads=[1, 1, 1, 1], strides=[1, 1])
    bn(b, rng, 6)
    b.act("Relu")
    b.act("Conv", b.const(rng.normal(0, 0.5, (6, 2, 3, 3))), kernel_shape=[3, 3], group=3, pads=[1, 1, 1, 1])
    b.act("Clip", b.const(-1.0), b.const(1.0))
    b.act("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    b.act("Conv", b.const(rng.normal(0, 0.5, (6, 1, 3, 3))), kernel_shape=[3, 3], group=6, strides=[1, 1])
    b.act("AveragePool", kernel_shape=[2, 2], strides=[1, 1])
    b.act("Sign")
    b.act("Add", b.const(rng.normal(0, 0.1, (1, 6, 1, 1))))
    b.act("GlobalAveragePool")
    b.act("Flatten", axis=1)
    b.act("Dropout")
    b.act("Gemm", b.const(rng.normal(0, 1, (6, 8))), b.const(rng.normal(0, 1, 8)))
    b.act("Div", b.const(2.0))
    b.act("Identity")
    b.act("Reshape", b.const([-1, 2, 4], dtype=np.int64))
    b.act("Transpose", perm=[0, 2, 1])
    b.act("Reshape", b.const([-1, 8], dtype=np.int64))
    b.act("MatMul", b.const(rng.normal(0, 1, (8, classes))))
    return b.model((classes,), qonnx=False, opset=opset)


def qdq_mlp(rng, per_channel=True, sizes=(12, 10, 4)) -> onnx.ModelProto:
    """QuantizeLinear(input) -> [DequantizeLinear -> MatMul(DequantizeLinear(int8 W)) + bias -> Relu -> Q]* -> DQ."""
    b = Builder("qdq_mlp", (sizes[0],), batch="N")
    b.act("QuantizeLinear", b.const(2.0 ** -4), b.const(0, dtype=np.uint8))
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        b.act("DequantizeLinear", b.const(2.0 ** -4 if i == 0 else 2.0 ** -3), b.const(0, dtype=np.uint8))
        wq = rng.integers(-127, 128, (k, n)).astype(np.int8)
        ws = 2.0 ** -rng.integers(5, 8, n) if per_channel else np.float32(2.0 ** -6)
        wdq = b.node("DequantizeLinear", [b.const(wq, dtype=np.int8), b.const(ws), b.const(np.zeros(n if per_channel
                                                                                                      else (), np.int8),
                                                                                             dtype=np.int8)],
                     axis=1)
        b.act("MatMul", wdq, name=f"fc{i}")
        if i < len(sizes) - 2:
            b.act("Add", b.const(rng.integers(-8, 8, n) * 2.0 ** -3))
            b.act("Relu")
            b.act("QuantizeLinear", b.const(2.0 ** -3), b.const(0, dtype=np.uint8))
    return b.model((sizes[-1],), qonnx=False)


# -- one small quantized model per supported operator (round trips) ---------------------------------


def _vec(rng, n_in=8):
    b = Builder("vec", (n_in,))
    b.quant(0.25, 4)
    return b


def _gemm(b, rng, k, n, name, bits=2, bias=True):
    w = b.qweight(rng.normal(0, 1, (k, n)), 2.0 ** -2, bits, narrow=bits == 2)
    return b.act("Gemm", w, b.const(rng.normal(0, 1, n)), name=name) if bias else b.act("Gemm", w, name=name)


def _head(b, rng, k, classes=3):
    w = b.qweight(rng.normal(0, 1, (k, classes)), 2.0 ** -2, 3)
    return b.act("MatMul", w, name="head")


def _img(rng, c=2, size=6):
    b = Builder("img", (c, size, size))
    b.quant(0.25, 3)
    return b


def _conv(b, rng, oc, ic, k=3, name="conv", **attrs):
    w = b.qweight(rng.normal(0, 1, (oc, ic // attrs.get("group", 1), k, k)), 0.5, 2, narrow=True)
    return b.act("Conv", w, kernel_shape=[k, k], name=name, **attrs)


def _vec_model(rng, middle):
    b = _vec(rng)
    _gemm(b, rng, 8, 6, "fc0")
    middle(b)
    _head(b, rng, 6)
    return b.model((3,))


def _img_model(rng, body, flat):
    b = _img(rng)
    body(b)
    b.act("Flatten", axis=1)
    _head(b, rng, flat)
    return b.model((3,))


def _relu_q(b, bits=2, scale=0.5):
    b.act("Relu")
    b.quant(scale, bits)


def m_gemm(rng):
    return _vec_model(rng, lambda b: _relu_q(b))


def m_matmul(rng):
    b = _vec(rng)
    b.act("MatMul", b.qweight(rng.normal(0, 1, (8, 6)), 0.25, 3), name="mm0")
    _relu_q(b)
    _head(b, rng, 6)
    return b.model((3,))


def m_bn(rng):
    return _vec_model(rng, lambda b: (bn(b, rng, 6), _relu_q(b, 3)))


def m_clip(rng):
    return _vec_model(rng, lambda b: (b.act("Clip", b.const(0.0), b.const(1.5)), b.quant(0.5, 2)))


def m_sign(rng):
    return _vec_model(rng, lambda b: b.act("Sign"))


def m_arith(rng):
    def mid(b):
        b.act("Add", b.const(rng.normal(0, 1, 6)))
        b.act("Mul", b.const(rng.uniform(-2, 2, 6)))
        b.act("Sub", b.const(0.5))
        b.act("Div", b.const(rng.uniform(0.5, 2, 6)))
        b.act("Identity")
        b.act("Dropout")
        _relu_q(b, 3)
    return _vec_model(rng, mid)


def m_bipolar(rng):
    return _vec_model(rng, lambda b: b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN))


def m_multithreshold(rng):
    def mid(b):
        t = np.sort(rng.normal(0, 2, (6, 3)), axis=1)
        b.act("MultiThreshold", b.const(t), domain=QDOMAIN, out_dtype="UINT2")
        b.act("Mul", b.const(0.5))
    return _vec_model(rng, mid)


def m_conv(rng):
    return _img_model(rng, lambda b: (_conv(b, rng, 4, 2, pads=[1, 1, 1, 1]), bn(b, rng, 4), _relu_q(b)), 4 * 36)


def m_conv_group(rng):
    return _img_model(rng, lambda b: (_conv(b, rng, 4, 2, name="conv_a", pads=[1, 1, 1, 1]), _relu_q(b),
                                      _conv(b, rng, 4, 4, name="conv_g", group=2), _relu_q(b)), 4 * 16)


def m_conv_depthwise(rng):
    return _img_model(rng, lambda b: (_conv(b, rng, 2, 2, name="dw", group=2, pads=[1, 1, 1, 1]), _relu_q(b)),
                      2 * 36)


def m_conv_stride(rng):
    return _img_model(rng, lambda b: (_conv(b, rng, 3, 2, strides=[2, 2], pads=[1, 1, 1, 1]), _relu_q(b)), 3 * 9)


def m_maxpool(rng):
    return _img_model(rng, lambda b: (_conv(b, rng, 4, 2, pads=[1, 1, 1, 1]), b.act("MaxPool", kernel_shape=[2, 2],
                                                                                    strides=[2, 2]), _relu_q(b),
                                      b.act("MaxPool", kernel_shape=[2, 2], strides=[1, 1])), 4 * 4)


def m_avgpool(rng):
    return _img_model(rng, lambda b: (b.act("AveragePool", kernel_shape=[2, 2], strides=[2, 2]), b.quant(0.25, 3)),
                      2 * 9)


def m_trunc(rng):
    def body(b):
        b.act("AveragePool", kernel_shape=[2, 2], strides=[2, 2])
        b.act("Mul", b.const(4.0))
        b.act("Trunc", b.const(0.25), b.const(0.0), b.const(5.0), b.const(3.0), domain=QDOMAIN,
              rounding_mode="FLOOR")
    return _img_model(rng, body, 2 * 9)


def m_gap(rng):
    b = _img(rng)
    _conv(b, rng, 4, 2, pads=[1, 1, 1, 1])
    _relu_q(b)
    b.act("GlobalAveragePool")
    b.act("Flatten", axis=1)
    _head(b, rng, 4)
    return b.model((3,))


def m_reshape_transpose(rng):
    b = _img(rng)
    _conv(b, rng, 3, 2)
    _relu_q(b)
    b.act("Transpose", perm=[0, 2, 3, 1])
    b.act("Reshape", b.const([-1, 48], dtype=np.int64))
    _head(b, rng, 48)
    return b.model((3,))


def m_shape_flatten(rng):
    """``x.view(x.size(0), -1)`` as a legacy PyTorch export writes it: Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""
    b = _img(rng)
    _conv(b, rng, 3, 2)
    _relu_q(b)
    act = b.x
    shp = b.node("Shape", [act])
    n = b.node("Gather", [shp, b.const(0, dtype=np.int64)], axis=0)
    n = b.node("Unsqueeze", [n, b.const([0], dtype=np.int64)])
    target = b.node("Concat", [n, b.const([-1], dtype=np.int64)], axis=0)
    b.x = b.node("Reshape", [act, target])
    _head(b, rng, 48)
    return b.model((3,))


def m_xnor(rng):
    b = Builder("xnor", (8,))
    b.act("MultiThreshold", b.const(np.zeros((1, 1))), domain=QDOMAIN, out_dtype="BIPOLAR")  # bits 0/1
    b.act("XnorPopcountMatMul", b.const(rng.integers(0, 2, (8, 6)).astype(np.float32)), domain=QDOMAIN,
          name="xnor0")
    b.act("MultiThreshold", b.const(rng.integers(2, 7, (6, 1)).astype(np.float32)), domain=QDOMAIN,
          out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0)
    _head(b, rng, 6)
    return b.model((3,))


def m_intquant(rng):
    """``IntQuant``: the newer name of QONNX ``Quant``."""
    m = m_gemm(rng)
    for n in m.graph.node:
        if n.op_type == "Quant":
            n.op_type = "IntQuant"
    return m


def m_qdq(rng):
    return qdq_mlp(rng)


def m_qdq_per_tensor(rng):
    return qdq_mlp(rng, per_channel=False)


def m_qlinear_matmul(rng):
    b = Builder("qlmm", (8,), batch="N")
    b.act("QuantizeLinear", b.const(2.0 ** -4), b.const(128, dtype=np.uint8))
    b.act("QLinearMatMul", b.const(2.0 ** -4), b.const(128, dtype=np.uint8),
          b.const(rng.integers(-100, 100, (8, 6)), dtype=np.int8), b.const(2.0 ** -6), b.const(0, dtype=np.int8),
          b.const(2.0 ** -3), b.const(0, dtype=np.uint8), name="qlmm0")
    b.act("DequantizeLinear", b.const(2.0 ** -3), b.const(0, dtype=np.uint8))
    w = b.node("DequantizeLinear", [b.const(rng.integers(-100, 100, (6, 3)), dtype=np.int8), b.const(2.0 ** -5),
                                    b.const(0, dtype=np.int8)])
    b.act("MatMul", w, name="head")
    return b.model((3,), qonnx=False)


def m_qlinear_conv(rng):
    b = Builder("qlconv", (2, 5, 5), batch="N")
    b.act("QuantizeLinear", b.const(2.0 ** -4), b.const(0, dtype=np.uint8))
    b.act("QLinearConv", b.const(2.0 ** -4), b.const(0, dtype=np.uint8),
          b.const(rng.integers(-100, 100, (3, 2, 3, 3)), dtype=np.int8), b.const(2.0 ** -rng.integers(5, 8, 3)),
          b.const(np.zeros(3), dtype=np.int8), b.const(2.0 ** -3), b.const(0, dtype=np.uint8),
          b.const(rng.integers(-50, 50, 3), dtype=np.int32), kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="qlconv0")
    b.act("DequantizeLinear", b.const(2.0 ** -3), b.const(0, dtype=np.uint8))
    b.act("Flatten", axis=1)
    w = b.node("DequantizeLinear", [b.const(rng.integers(-100, 100, (75, 3)), dtype=np.int8), b.const(2.0 ** -5),
                                    b.const(0, dtype=np.int8)])
    b.act("MatMul", w, name="head")
    return b.model((3,), qonnx=False)


def m_matmul_integer(rng):
    b = Builder("mmi", (8,), batch="N")
    b.act("QuantizeLinear", b.const(2.0 ** -4), b.const(10, dtype=np.uint8))
    b.act("MatMulInteger", b.const(rng.integers(-60, 60, (8, 6)), dtype=np.int8), b.const(10, dtype=np.uint8),
          name="mmi0")
    b.act("Cast", to=TensorProto.FLOAT)
    b.act("Mul", b.const(2.0 ** -8))
    b.act("Relu")
    b.act("QuantizeLinear", b.const(2.0 ** -3), b.const(0, dtype=np.uint8))
    b.act("DequantizeLinear", b.const(2.0 ** -3), b.const(0, dtype=np.uint8))
    w = b.node("DequantizeLinear", [b.const(rng.integers(-100, 100, (6, 3)), dtype=np.int8), b.const(2.0 ** -5),
                                    b.const(0, dtype=np.int8)])
    b.act("MatMul", w, name="head")
    return b.model((3,), qonnx=False)


OP_MODELS = {
    "Gemm+Quant+Relu": m_gemm, "IntQuant": m_intquant, "MatMul": m_matmul, "BatchNormalization": m_bn, "Clip": m_clip, "Sign": m_sign,
    "Add+Mul+Sub+Div+Identity+Dropout": m_arith, "BipolarQuant": m_bipolar, "MultiThreshold": m_multithreshold,
    "Conv": m_conv, "Conv-group": m_conv_group, "Conv-depthwise": m_conv_depthwise, "Conv-stride": m_conv_stride,
    "MaxPool": m_maxpool, "AveragePool": m_avgpool, "Trunc": m_trunc, "GlobalAveragePool+Flatten": m_gap,
    "Reshape+Transpose": m_reshape_transpose, "Shape+Gather+Concat": m_shape_flatten, "XnorPopcountMatMul": m_xnor, "QDQ-per-channel": m_qdq,
    "QDQ-per-tensor": m_qdq_per_tensor, "QLinearMatMul": m_qlinear_matmul, "QLinearConv": m_qlinear_conv,
    "MatMulInteger+Cast": m_matmul_integer,
}


def sample_inputs(model: onnx.ModelProto, rng, n=16) -> np.ndarray:
    """Float inputs for a model (batch ``n``), spread over its input quantizer's range."""
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    return rng.normal(0.5, 1.5, (n, *shape)).astype(np.float32)
