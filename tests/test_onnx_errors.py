"""Malformed and unsupported ONNX inputs: each fails at import with its pinned message (file, node,
op type, what was expected), and the CLI prints it as one line with exit status 2."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.quant.onnx.importer import MAX_OPSET, import_onnx

from onnx_models import QDOMAIN, Builder, qonnx_mlp


def _mlp(rng=None, **kw):
    return qonnx_mlp(rng or np.random.default_rng(0), **kw)


def _base(shape=(4,)):
    b = Builder("bad", shape)
    b.quant(0.25, 4)
    return b


def _head(b, k=4, n=3, name="fc"):
    w = b.qweight(np.ones((k, n)), 0.25, 2, narrow=True)
    return b.act("MatMul", w, name=name)


def _bytes(model):
    return model.SerializeToString()


def opset(v):
    m = _mlp()
    m.opset_import[0].version = v
    return m


def no_default_opset():
    m = _mlp()
    del m.opset_import[0]
    return m


def missing_initializer():
    m = _mlp()
    name = m.graph.node[1].input[0]  # the first weight tensor
    keep = [t for t in m.graph.initializer if t.name != name]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    return m


def nonconst_weights():
    b = _base()
    q = b.x
    b.act("Gemm", q, name="fc")
    return b.model((4,))


def unknown_op(op):
    def make():
        b = _base()
        b.act(op, name="act")
        _head(b)
        return b.model((3,))
    return make


def unknown_domain():
    b = _base()
    b.act("Relu", domain="com.example", name="act")
    _head(b)
    return b.model((3,))


def quant_param(scale=0.25, bits=2.0, zp=0.0, mode="ROUND"):
    def make():
        b = _base()
        w = b.node("Quant", [b.const(np.ones((4, 3))), b.const(scale), b.const(zp), b.const(bits)], domain=QDOMAIN,
                   name="wq", signed=1, narrow=0, rounding_mode=mode)
        b.act("MatMul", w, name="fc")
        return b.model((3,))
    return make


def shape_mismatch():
    b = _base()
    b.act("MatMul", b.qweight(np.ones((5, 3)), 0.25, 2), name="fc")
    return b.model((3,))


def shape_mismatch_std():
    b = Builder("std", (4,), elem=TensorProto.UINT8)
    b.act("Gemm", b.const(np.ones((5, 3))), name="fc")
    return b.model((3,))


def truncated(tmp_path):
    p = tmp_path / "trunc.onnx"
    p.write_bytes(_bytes(_mlp())[:200])
    return p


def empty(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    return p


def dynamic():
    m = _mlp()
    d = m.graph.input[0].type.tensor_type.shape.dim[1]
    d.Clear()
    d.dim_param = "features"
    return m


def two_inputs():
    m = _mlp()
    m.graph.input.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]))
    return m


def two_outputs():
    m = _mlp()
    m.graph.output.append(helper.make_tensor_value_info(m.graph.node[2].output[0], TensorProto.FLOAT, None))
    return m


def string_input():
    m = _mlp()
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING
    return m


def conv_model(**attrs):
    def make():
        b = Builder("conv", (2, 6, 6))
        b.quant(0.25, 3)
        k = attrs.pop("kernel", (3, 3))
        w = b.qweight(np.ones((2, 2) + tuple(k)), 0.5, 2, narrow=True)
        b.act("Conv", w, kernel_shape=list(k), name="conv", **attrs)
        b.act("Relu")
        b.quant(0.5, 2)
        b.act("Flatten", axis=1)
        return b.model((2,))
    return make


def ceil_mode():
    b = Builder("pool", (2, 6, 6))
    b.quant(0.25, 3)
    b.act("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, name="pool")
    return b.model((2, 3, 3))


def float_weights():
    b = _base()
    b.act("MatMul", b.const(np.random.default_rng(0).normal(0, 1, (4, 3))), name="fc")
    return b.model((3,))


def float_activation():
    b = Builder("f", (4,))
    b.act("Relu", name="relu")
    _head(b)
    return b.model((3,))


def residual():
    b = _base()
    q = b.x
    b.act("Relu", name="relu")
    b.x = b.node("Add", [q, b.x], name="skip")
    _head(b)
    return b.model((3,))


def bipolar_padding():
    b = Builder("bp", (2, 6, 6))
    b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN)
    w = b.bweight(np.ones((2, 2, 3, 3)), 1.0)
    b.act("Conv", w, kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv")
    return b.model((2, 6, 6))


def transa():
    b = _base()
    b.act("Gemm", b.qweight(np.ones((4, 3)), 0.25, 2), transA=1, name="fc")
    return b.model((3,))


def per_input_scale():
    b = _base()
    w = b.node("Quant", [b.const(np.ones((4, 3))), b.const(np.array([[0.5], [0.25], [0.5], [0.5]])),
                         b.const(0.0), b.const(2.0)], domain=QDOMAIN, signed=1, narrow=1, rounding_mode="ROUND")
    b.act("MatMul", w, name="fc")
    return b.model((3,))


def ends_in_conv():
    b = Builder("c", (2, 4, 4))
    b.quant(0.25, 3)
    b.act("Conv", b.qweight(np.ones((2, 2, 1, 1)), 0.5, 2, narrow=True), kernel_shape=[1, 1], name="conv")
    return b.model((2, 4, 4))


def nan_weights():
    b = _base()
    w = np.ones((4, 3))
    w[1, 2] = np.nan
    b.act("MatMul", b.const(w), name="fc")
    return b.model((3,))


def string_initializer():
    m = _mlp()
    t = helper.make_tensor("names", TensorProto.STRING, [1], [b"a"])
    m.graph.initializer.append(t)
    return m


def cast_float_to_int():
    b = _base()
    b.act("Gemm", b.qweight(np.ones((4, 4)), 0.25, 2), name="fc0")
    b.act("Cast", to=TensorProto.INT8, name="cast")
    _head(b)
    return b.model((3,))


def plain_threshold():
    b = _base()
    b.act("Gemm", b.qweight(np.ones((4, 4)), 0.25, 2), name="fc0")
    b.act("GreaterOrEqual", b.const(np.zeros(4)), name="ge")
    _head(b)
    return b.model((3,))


L = "<model>"
CASES = {
    "opset too old": (lambda: opset(9), rf"^{L}: opset 9 is not supported; lowbit reads opsets 11 to {MAX_OPSET} "
                                        r"\(convert with onnx\.version_converter\.convert_version\)$"),
    "opset too new": (lambda: opset(99), rf"^{L}: opset 99 is not supported; lowbit reads opsets 11 to {MAX_OPSET} "),
    "no default opset": (no_default_opset, rf"^{L}: the model imports no default-domain opset; expected an opset "
                                           rf"from 11 to {MAX_OPSET}$"),
    "missing initializer": (missing_initializer, rf"^{L}: node 'quant\d+' \(Quant\): input 'c\d+' is neither an "
                                                 r"initializer, "
                                                 r"the graph input nor the output of an earlier node \(missing "
                                                 r"initializer\?\)$"),
    "non-constant weights": (nonconst_weights, rf"^{L}: node 'fc' \(Gemm\): combines two activations; lowbit joins "
                                               r"branches with Add and Concat only$"),
    "unknown op": (unknown_op("Gelu"), rf"^{L}: node 'act' \(Gelu\): operator 'Gelu' is not supported; nearest "
                                       r"supported form: Relu$"),
    "unknown op, close name": (unknown_op("Relu6"), rf"^{L}: node 'act' \(Relu6\): operator 'Relu6' is not "
                                                    r"supported; nearest supported form: Relu$"),
    "softmax": (unknown_op("Softmax"), rf"^{L}: node 'act' \(Softmax\): operator 'Softmax' is not supported; nearest "
                                       r"supported form: no Softmax: drop it \(the class decision is unchanged\)$"),
    "unknown domain": (unknown_domain, rf"^{L}: node 'act' \(Relu\): unknown domain 'com.example'; expected the ONNX "
                                       r"default domain or qonnx\.custom_op\.general$"),
    "NaN scale": (quant_param(scale=np.nan), rf"^{L}: node 'wq' \(Quant\): scale 'c\d+' contains NaN or infinity$"),
    "zero scale": (quant_param(scale=0.0), rf"^{L}: node 'wq' \(Quant\): scale must be positive, found 0$"),
    "negative bit width": (quant_param(bits=-2.0), rf"^{L}: node 'wq' \(Quant\): bit width must be a positive "
                                                   r"integer scalar, not \[-2\.0\]$"),
    "fractional zero point": (quant_param(zp=0.5), rf"^{L}: node 'wq' \(Quant\): zero point must hold integers$"),
    "unknown rounding mode": (quant_param(mode="STOCHASTIC"), rf"^{L}: node 'wq' \(Quant\): rounding_mode must be "
                                                              r"one of ROUND, .*, not 'STOCHASTIC'$"),
    "mismatched weights": (shape_mismatch, rf"^{L}: node 'fc' \(MatMul\): weights have 5 inputs, but the activation "
                                           r"has shape \[1, 4\]$"),
    "mismatched shapes": (shape_mismatch_std, rf"^{L}: shape inference failed \(mismatched shapes\?\): "
                                              r".*\(op_type:Gemm, node name: fc\).*Dimension mismatch.*$"),
    "dynamic shape": (dynamic, rf"^{L}: input 'x' has a dynamic dimension 'features' at axis 1; lowbit needs fixed "
                               r"shapes except the batch axis \(export with a fixed input size\)$"),
    "two inputs": (two_inputs, rf"^{L}: the model has 2 inputs \('x', 'y'\); lowbit imports single-input chains$"),
    "two outputs": (two_outputs, rf"^{L}: the model has 2 outputs; lowbit imports single-output chains \(keep only "
                                 r"the class scores\)$"),
    "string input": (string_input, rf"^{L}: input 'x' has data type STRING; expected FLOAT, DOUBLE, UINT8, INT8, "
                                   r"UINT16 or INT16$"),
    "string initializer": (string_initializer, rf"^{L}: initializer 'names' has data type STRING; expected a "
                                               r"numeric tensor$"),
    "dilation": (conv_model(dilations=[2, 2]), rf"^{L}: node 'conv' \(Conv\): dilations \[2, 2\] are not supported; "
                                               r"use dilation 1$"),
    "non-square kernel": (conv_model(kernel=(3, 1)), rf"^{L}: node 'conv' \(Conv\): kernel \(3, 1\) is not square; "
                                                     r"lowbit's sliding window needs a square kernel$"),
    "asymmetric pads": (conv_model(pads=[1, 0, 1, 0]), rf"^{L}: node 'conv' \(Conv\): pads \[1, 0, 1, 0\] are not "
                                                       r"symmetric; lowbit needs the same padding on every side$"),
    "ceil_mode": (ceil_mode, rf"^{L}: node 'pool' \(MaxPool\): ceil_mode 1 is not supported; use ceil_mode 0 \(pad "
                             r"the input instead\)$"),
    "float weights": (float_weights, rf"^{L}: node 'fc' \(MatMul\): weights 'c\d+' are float values that are not "
                                     r"quantized; quantize them \(Quant, BipolarQuant or DequantizeLinear\) or run "
                                     r"'lowbit quantize'$"),
    "float activation": (float_activation, rf"^{L}: node 'fc' \(MatMul\): the input is a float activation here; "
                                           r"insert a quantizer \(Quant, BipolarQuant, MultiThreshold, QuantizeLinear "
                                           r"or Sign\) before this node, or run 'lowbit quantize' on a float model$"),
    # a residual Add joins two quantized branches (issue 19); this one adds a float branch
    "residual": (residual, rf"^{L}: node 'skip' \(Add\): the output of 'relu' is a float activation here; insert a "
                           r"quantizer \(Quant, BipolarQuant, MultiThreshold, QuantizeLinear or Sign\) before this "
                           r"node, or run 'lowbit quantize' on a float model$"),
    "bipolar padding": (bipolar_padding, rf"^{L}: node 'conv' \(Conv\): padding needs the value 0, which BIPOLAR "
                                         r"inputs cannot represent \(binary activations have no zero\); use pads 0$"),
    "transA": (transa, rf"^{L}: node 'fc' \(Gemm\): transA=1 is not supported; transpose the activation with "
                       r"Transpose first$"),
    "per-input-channel weight scale": (per_input_scale, rf"^{L}: node 'fc' \(MatMul\): weights 't\d+' have a scale "
                                                        r"that varies along the input axis; lowbit folds per-tensor or "
                                                        r"per-output-channel weight scales only$"),
    "ends in a convolution": (ends_in_conv, rf"^{L}: the model must end in class scores \(a vector\), not \[4, 4, 2\]$"),
    "cast rounds a float": (cast_float_to_int, rf"^{L}: node 'cast' \(Cast\): casts a float activation to INT8, which "
                                               r"would round it; quantize it first \(QuantizeLinear or Quant\)$"),
    "comparison of activations": (plain_threshold, rf"^{L}: node 'ge' \(GreaterOrEqual\): comparisons of activations "
                                                   r"are not supported; use MultiThreshold \(import the QONNX form of "
                                                   r"a lowbit export: lowbit export --format qonnx\)$"),
    "NaN weights": (nan_weights, rf"^{L}: node 'fc' \(MatMul\): weights 'c\d+' contain NaN or infinity$"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_model_message(case):
    make, pattern = CASES[case]
    with pytest.raises(LowbitError) as e:
        import_onnx(make())
    assert re.match(pattern, str(e.value)), f"{case}: {e.value}"


@pytest.mark.parametrize("make, pattern", [
    (truncated, r"^{p}: not a readable ONNX model \(truncated or corrupt protobuf: .*\)$"),
    (empty, r"^{p}: empty file; expected an ONNX model$"),
    (lambda tmp: tmp / "nope.onnx", r"^{p}: no such file$"),
])
def test_malformed_files(tmp_path, make, pattern):
    path = make(tmp_path)
    with pytest.raises(LowbitError, match=pattern.format(p=re.escape(str(path)))):
        import_onnx(path)


def test_cli_reports_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    onnx.save(unknown_op("Gelu")(), str(bad))
    assert main(["import", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"lowbit import: error: {bad}: node 'act' (Gelu): operator 'Gelu' is not supported; nearest "
                   "supported form: Relu"]
    trunc = truncated(tmp_path)
    assert main(["import", str(trunc)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"lowbit import: error: {trunc}: not a readable ONNX model")


def test_at_least_twenty_distinct_messages():
    assert len(CASES) + 3 >= 20
