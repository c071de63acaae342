"""Careless and hostile ONNX input (issue 17): every malformed model is refused through
``lowbit import`` with exit status 2, at most three lines naming the node and the attribute or
operand, no traceback and no output file; sizes an input controls are checked against
:data:`lowbit.limits.LIMITS` before anything is allocated; external data is read only from the
model's own directory."""

from __future__ import annotations

import os
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_models import QDOMAIN, Builder, qonnx_mlp

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.limits import Limits
from lowbit.quant.onnx import read as read_stage
from lowbit.quant.onnx.importer import graphs_equal, import_onnx


def _head(b, k=4, n=3, name="fc"):
    return b.act("MatMul", b.qweight(np.ones((k, n)), 0.25, 2, narrow=True), name=name)


def _vec(shape=(4,), elem=TensorProto.FLOAT):
    b = Builder("bad", shape, elem=elem)
    if elem == TensorProto.FLOAT:
        b.quant(0.25, 4, name="inq")
    return b


def _img(c=2, size=4):
    b = Builder("img", (c, size, size))
    b.quant(0.25, 3, name="inq")
    return b


def _wquant(b, inputs, **attrs):
    """A weight ``Quant`` named ``wq`` of the given operands."""
    kw = {"signed": 1, "narrow": 0, "rounding_mode": "ROUND", **attrs}
    return b.node("Quant", inputs, domain=QDOMAIN, name="wq", **kw)


def _weight_init(m, dims):
    return next(t for t in m.graph.initializer if list(t.dims) == list(dims))


# -- tracebacks today -------------------------------------------------------------------------


def quant_missing_inputs():
    b = _vec()
    b.act("MatMul", _wquant(b, [b.const(np.ones((4, 3))), b.const(0.25)]), name="fc")
    return b.model((3,))


def quant_attribute_type():
    b = _vec()
    w = _wquant(b, [b.const(np.ones((4, 3))), b.const(0.25), b.const(0.0), b.const(2.0)],
                signed="yes")
    b.act("MatMul", w, name="fc")
    return b.model((3,))


def act_quant_missing_inputs():
    b = Builder("bad", (4,))
    b.act("Quant", b.const(0.25), domain=QDOMAIN, name="aq", signed=0, narrow=0,
          rounding_mode="ROUND")
    _head(b)
    return b.model((3,))


def gemm_one_input():
    b = _vec()
    b.act("Gemm", name="fc")
    return b.model((3,))


def short_raw_data():
    b = _vec()
    _head(b)
    m = b.model((3,))
    t = _weight_init(m, (4, 3))
    t.raw_data = t.raw_data[:10]
    return m


def size_without_data():
    b = _vec()
    _head(b)
    m = b.model((3,))
    _weight_init(m, (4, 3)).ClearField("raw_data")
    return m


def huge_initializer():
    b = _vec()
    _head(b)
    m = b.model((3,))
    t = _weight_init(m, (4, 3))
    t.ClearField("raw_data")
    del t.dims[:]
    t.dims.extend([1 << 20, 1 << 20])
    return m


def weight_scale_mismatch():
    b = _vec()
    b.act("MatMul", _wquant(b, [b.const(np.ones((4, 3))), b.const(np.full(5, 0.25)),
                                b.const(0.0), b.const(2.0)]), name="fc")
    return b.model((3,))


def attribute_without_type():
    b = _img()
    b.act("MaxPool", kernel_shape=[2, 2], name="pool")
    _head(b, 18)
    m = b.model((3,))
    m.graph.node[1].attribute[0].type = onnx.AttributeProto.UNDEFINED
    return m


def maxpool_without_kernel():
    b = _img()
    b.act("MaxPool", name="pool")
    _head(b, 18)
    return b.model((3,))


def maxpool_in_another_domain_without_kernel():
    """Found by the fuzzer: an ONNX op type in a custom domain is handled as that op, so its ONNX
    schema applies (a KeyError 'kernel_shape' traceback before)."""
    m = maxpool_without_kernel()
    next(n for n in m.graph.node if n.op_type == "MaxPool").domain = "qonnx.custom_op.general"
    return m


# -- silently accepted today ------------------------------------------------------------------


def weight_bits(bits, layers=1):
    def make():
        b = _vec()
        rng = np.random.default_rng(0)
        w = _wquant(b, [b.const(rng.normal(0, 1e3, (4, 4))), b.const(2.0 ** -20), b.const(0.0),
                        b.const(float(bits))])
        if layers == 1:
            b.act("MatMul", w, name="fc")
            return b.model((4,))
        b.act("Gemm", w, name="fc0")
        b.act("Relu")
        b.quant(0.5, 2, name="aq")
        _head(b)
        return b.model((3,))
    return make


def bipolar_of_integer_input():
    b = Builder("bad", (4,), elem=TensorProto.UINT8)
    b.act("BipolarQuant", b.const(1.0), domain=QDOMAIN, name="bq")
    _head(b)
    return b.model((3,))


def bipolar_of_integer_weights():
    b = _vec()
    w = b.node("BipolarQuant", [b.const(np.ones((4, 3)), dtype=np.int8), b.const(1.0)],
               domain=QDOMAIN, name="bq")
    b.act("MatMul", w, name="fc")
    return b.model((3,))


def duplicate_output():
    b = _vec()
    b.act("Relu", name="r1")
    b.nodes.append(helper.make_node("Relu", [b.x], [b.x], name="r2"))
    _head(b)
    return b.model((3,))


def conv_kernel_floats():
    b = _img()
    b.act("Conv", b.qweight(np.ones((2, 2, 3, 3)), 0.5, 2, narrow=True), kernel_shape=[3.0, 3.0],
          name="conv")
    return b.model((2, 2, 2))


def input_dtype_metadata():
    b = Builder("bad", (4,))
    _head(b)
    m = b.model((3,))
    helper.set_model_props(m, {"lowbit.dtype.x": "INT24"})
    return m


# -- unbounded work today ---------------------------------------------------------------------


def act_bits(bits):
    def make():
        b = _vec()
        b.act("Gemm", b.qweight(np.ones((4, 4)), 0.25, 2), name="fc0")
        b.quant(1.0, bits, name="aq")
        _head(b)
        return b.model((3,))
    return make


def trunc_bits():
    b = _img()
    b.act("Conv", b.qweight(np.ones((2, 2, 1, 1)), 0.5, 2, narrow=True), kernel_shape=[1, 1])
    b.quant(0.5, 2)
    b.act("Trunc", b.const(0.5), b.const(0.0), b.const(30.0), b.const(24.0), domain=QDOMAIN,
          name="trunc", rounding_mode="FLOOR")
    b.act("Flatten", axis=1)
    _head(b, 32)
    return b.model((3,))


def many_thresholds():
    b = _vec()
    b.act("Gemm", b.qweight(np.ones((4, 4)), 0.25, 2), name="fc0")
    b.act("MultiThreshold", b.const(np.arange(1 << 16, dtype=np.float32)[None]), domain=QDOMAIN,
          name="mt", data_layout="NC")
    _head(b)
    return b.model((3,))


def huge_input():
    b = _vec(shape=(1 << 20, 1 << 20))
    b.act("Flatten", axis=1)
    _head(b)
    return b.model((3,))


def huge_reshape():
    b = _vec()
    b.act("Reshape", b.const([1, 1 << 40], dtype=np.int64), name="rs")
    _head(b)
    return b.model((3,))


# -- misleading messages today ----------------------------------------------------------------


def kernel_larger_than_image():
    b = _img()
    b.act("Conv", b.qweight(np.ones((2, 2, 9, 9)), 0.5, 2, narrow=True), kernel_shape=[9, 9],
          name="conv")
    b.act("Relu")
    b.quant(0.5, 2)
    b.act("Flatten", axis=1)
    _head(b, 2)
    return b.model((3,))


def maxpool_stride_zero():
    b = _img()  # shape inference sees no shapes after the QONNX Quant: the importer checks
    b.act("Conv", b.qweight(np.ones((2, 2, 1, 1)), 0.5, 2, narrow=True), kernel_shape=[1, 1])
    b.quant(0.5, 2)
    b.act("MaxPool", kernel_shape=[2, 2], strides=[0, 0], name="pool")
    b.act("Flatten", axis=1)
    _head(b, 8)
    return b.model((3,))


N = r"'[a-z]*\d+'"  # a tensor name the builder chose
LIMIT = r"exceeds lowbit's limit of"
CASES = {
    "Quant with missing inputs": (
        quant_missing_inputs, r"node 'wq' \(Quant\): has 2 inputs; Quant takes 4$"),
    "Quant attribute of the wrong type": (
        quant_attribute_type, r"node 'wq' \(Quant\): attribute 'signed' must be INT, not STRING$"),
    "activation Quant with missing inputs": (
        act_quant_missing_inputs, r"node 'aq' \(Quant\): has 2 inputs; Quant takes 4$"),
    "Gemm with one input": (
        gemm_one_input, r"node 'fc' \(Gemm\): has 1 input; Gemm takes 2 to 3$"),
    "raw data too short": (
        short_raw_data, rf"initializer {N}: raw data holds 10 bytes; its shape \[4, 3\] of FLOAT "
                        r"needs 48$"),
    "declared size without data": (
        size_without_data, rf"initializer {N}: holds 0 values; its shape \[4, 3\] needs 12 "
                           r"\(no data\)$"),
    "huge declared initializer": (
        huge_initializer, rf"initializer {N} of shape \[1048576, 1048576\]: element count "
                          rf"1099511627776 {LIMIT} 67108864$"),
    "weight scale of the wrong shape": (
        weight_scale_mismatch, r"node 'wq' \(Quant\): scale of shape \[5\] does not broadcast to "
                               r"the weights of shape \[4, 3\]$"),
    "attribute without a type": (
        attribute_without_type, r"node 'pool' \(MaxPool\): attribute 'kernel_shape' has no valid "
                                r"type \(0\)$"),
    "MaxPool without kernel_shape": (
        maxpool_without_kernel, r"node 'pool' \(MaxPool\): attribute 'kernel_shape' is missing; "
                                r"MaxPool requires it$"),
    "MaxPool in a custom domain without kernel_shape": (
        maxpool_in_another_domain_without_kernel,
        r"node 'pool' \(MaxPool\): attribute 'kernel_shape' is missing; MaxPool requires it$"),
    "INT33 weights": (
        weight_bits(33), rf"node 'wq' \(Quant\): weights {N} read by node 'fc' \(MatMul\): "
                         rf"\(INT33\) bit width 33 {LIMIT} 16$"),
    "64-bit weight quantizer before another layer": (
        weight_bits(64, layers=2), rf"node 'wq' \(Quant\): weights {N} read by node 'fc0' "
                                   rf"\(Gemm\): \(INT64\) bit width 64 {LIMIT} 16$"),
    "BipolarQuant of an integer input": (
        bipolar_of_integer_input, r"node 'bq' \(BipolarQuant\): input 0 'x' is of type UINT8; "
                                  r"BipolarQuant quantizes a float tensor \(FLOAT or DOUBLE\)$"),
    "BipolarQuant of integer weights": (
        bipolar_of_integer_weights, rf"node 'bq' \(BipolarQuant\): input 0 {N} is of type INT8; "),
    "duplicate output names": (
        duplicate_output, rf"node 'r2' \(Relu\): output {N} is already defined \(by the graph "
                          r"input, an initializer or an earlier node\); expected each tensor "
                          r"assigned once \(single-assignment form\)$"),
    "Conv kernel_shape of floats": (
        conv_kernel_floats, r"node 'conv' \(Conv\): attribute 'kernel_shape' must be INTS, not "
                            r"FLOATS$"),
    "24-bit input type in the metadata": (
        input_dtype_metadata, rf"input 'x' \(INT24\): bit width 24 {LIMIT} 16$"),
    "24-bit activation quantizer": (
        act_bits(24), rf"node 'aq' \(Quant\): activation bit width 24 {LIMIT} 16$"),
    "33-bit activation quantizer": (
        act_bits(33), rf"node 'aq' \(Quant\): activation bit width 33 {LIMIT} 16$"),
    "24-bit Trunc": (
        trunc_bits, rf"node 'trunc' \(Trunc\): output bit width 24 {LIMIT} 16$"),
    "65536 thresholds per channel": (
        many_thresholds, rf"node 'mt' \(MultiThreshold\): thresholds per channel 65536 {LIMIT} "
                         r"65535$"),
    "huge input shape": (
        huge_input, rf"input 'x' of shape \[1048576, 1048576\]: element count 1099511627776 "
                    rf"{LIMIT} 67108864$"),
    "huge Reshape target": (
        huge_reshape, r"node 'rs' \(Reshape\): shape \[1, 1099511627776\]: element count "
                      rf"1099511627776 {LIMIT} 67108864$"),
    "9x9 kernel on a 4x4 image": (
        kernel_larger_than_image, r"node 'conv' \(Conv\): kernel \(weights shape\) 9x9 does not "
                                  r"fit the 4x4 input \(pads 0\); expected a kernel of at most "
                                  r"4$"),
    "MaxPool stride 0": (
        maxpool_stride_zero, r"node 'pool' \(MaxPool\): attribute 'strides' \[0, 0\] must hold 2 "
                             r"positive integers$"),
}


def _cli_refuses(path, out, capsys) -> str:
    """``lowbit import path -o out``: exit status 2, one short message, no output file."""
    code = main(["import", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*")), "half-written output"
    prefix = f"lowbit import: error: {path}: "
    assert err.startswith(prefix), err
    return err.strip()[len(prefix):]


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_model_is_refused_naming_node_and_attribute(case, tmp_path, capsys):
    make, pattern = CASES[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(make().SerializeToString())
    msg = _cli_refuses(path, tmp_path / "g.npz", capsys)
    assert re.match(pattern, msg), f"{case}: {msg}"


def test_in_memory_models_get_the_same_messages():
    with pytest.raises(LowbitError, match=r"^<model>: node 'fc' \(Gemm\): has 1 input; "):
        import_onnx(gemm_one_input())
    with pytest.raises(LowbitError, match=r"^<bytes>: node 'aq' \(Quant\): activation bit width"):
        import_onnx(act_bits(24)().SerializeToString())


def test_file_size_is_checked_before_parsing(tmp_path, monkeypatch):
    path = tmp_path / "big.onnx"
    path.write_bytes(b"\xff" * 200)  # not a model: refused by its size, before parsing
    monkeypatch.setattr(read_stage, "LIMITS", Limits(file_bytes=100))
    with pytest.raises(LowbitError, match=rf"^{re.escape(str(path))}: file size \(bytes\) 200 "
                                          rf"{LIMIT} 100$"):
        import_onnx(path)


# -- external data ------------------------------------------------------------------------------


def _external(tmp_path, location="w.bin", data=None, offset=None, length=None, write=True):
    """The MLP saved as ``models/m.onnx`` with its largest initializer stored in the external file
    ``location`` (written beside the model unless ``write`` is false); returns the model's path,
    the inline model and the tensor's bytes."""
    model = qonnx_mlp(np.random.default_rng(0))
    ext = onnx.ModelProto()
    ext.CopyFrom(model)
    t = max(ext.graph.initializer, key=lambda t: len(t.raw_data))
    raw = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    d = tmp_path / "models"
    d.mkdir()
    if write:
        (d / location).write_bytes(raw if data is None else data)
    path = d / "m.onnx"
    path.write_bytes(ext.SerializeToString())
    return path, model, raw


def test_external_data_is_read_from_the_model_directory(tmp_path, monkeypatch):
    path, model, _ = _external(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert graphs_equal(import_onnx(path).graph, import_onnx(model).graph)


def test_external_data_missing_beside_the_model_is_not_read_from_the_cwd(tmp_path, monkeypatch):
    """Today's onnx resolves the location against the working directory: a file of that name
    there is loaded silently."""
    path, _, raw = _external(tmp_path, location="evil.bin", write=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.bin").write_bytes(raw)  # in the cwd, not beside the model
    with pytest.raises(LowbitError, match=r"external data file 'evil.bin' is not in the model's "
                                          r"directory"):
        import_onnx(path)


def _outside(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    return tmp_path / "secret.bin"


EXTERNAL = {
    "climbs out with ..": (
        dict(location="../secret.bin", write=False),
        r"external data location '../secret.bin' is not a relative path inside the model's "
        r"directory$"),
    "absolute path": (
        dict(location="/etc/passwd", write=False),
        r"external data location '/etc/passwd' is not a relative path inside the model's "
        r"directory$"),
    "symlink pointing outside": (
        dict(location="link.bin", write=False),
        r"external data location 'link.bin' resolves to '.*secret.bin', outside the model's "
        r"directory '.*models'$"),
    "offset not a number": (
        dict(offset="x"), r"external data offset 'x' is not a non-negative integer$"),
    "negative length": (
        dict(length=-4), r"external data length '-4' is not a non-negative integer$"),
    "offset beyond the file": (
        dict(offset=1 << 40),
        r"external data \(offset 1099511627776, length None\) lies beyond the end of 'w.bin' "
        r"\(\d+ bytes\)$"),
    "length beyond the file": (
        dict(length=1 << 40),
        r"external data \(offset 0, length 1099511627776\) lies beyond the end of 'w.bin'"),
    "length not the declared size": (
        dict(length=8), r"external data holds 8 bytes; its shape \[\d+, \d+\] of FLOAT needs \d+$"),
    "file too short": (
        dict(data=b"\0" * 8), r"external data holds 8 bytes; its shape \[\d+, \d+\] of FLOAT "),
    "no location": (
        dict(location="", write=False),
        r"external data location '' is not a relative path inside the model's directory$"),
}


@pytest.mark.parametrize("case", sorted(EXTERNAL))
def test_malformed_external_data_is_refused(case, tmp_path, capsys):
    kw, pattern = EXTERNAL[case]
    path, _, _ = _external(tmp_path, **kw)
    if case == "symlink pointing outside":
        os.symlink(_outside(tmp_path), path.parent / "link.bin")
    msg = _cli_refuses(path, tmp_path / "g.npz", capsys)
    assert re.match(rf"initializer '[a-z]*\d+': {pattern}", msg), f"{case}: {msg}"


def test_external_data_needs_the_model_path():
    model = qonnx_mlp(np.random.default_rng(0))
    t = model.graph.initializer[0]
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "w.bin"
    with pytest.raises(LowbitError, match=r"^<model>: initializer '[a-z]*\d+' stores its data in "
                                          r"an external file; import the model from its path"):
        import_onnx(model)


def test_fuzzer_findings_are_refused_cleanly(tmp_path, capsys):
    """Found by benchmarks/fuzz.py: an initializer of an undefined data type (99) was a traceback
    (ValueError from the enum)."""
    from lowbit.quant.onnx.importer import import_onnx

    m = maxpool_without_kernel()
    m.graph.initializer[0].data_type = 99
    p = tmp_path / "dtype.onnx"
    p.write_bytes(m.SerializeToString())
    with pytest.raises(LowbitError, match=r"unknown \(99\)"):
        import_onnx(p)


@pytest.mark.parametrize("word, message", [
    # a proto2 string field reads back as bytes when it is not UTF-8: onnx's get_schema raised
    # TypeError (a traceback) on an op type like that
    (b"Gemm", r"^<bytes>: field graph\.node\[2\]\.op_type is not valid UTF-8 text; the file is corrupt$"),
    (b"qonnx_mlp", r"^<bytes>: field graph\.name is not valid UTF-8 text"),
    (b"rounding_mode", r"^<bytes>: field graph\.node\[0\]\.attribute\[1\]\.name is not valid UTF-8"),
    # an attribute's value is a bytes field, decoded where it is read: the importer's catch
    (b"ROUND", r"^the model: a name or string in the model is not valid UTF-8 \(invalid start byte at "
               r"byte 0\); the file is corrupt$"),
])
def test_text_that_is_not_utf8_is_refused_naming_the_field(word, message):
    data = qonnx_mlp(np.random.default_rng(0), sizes=(8, 6, 4)).SerializeToString()
    assert data.count(word) >= 1
    with pytest.raises(LowbitError, match=message):
        import_onnx(data.replace(word, b"\xff" + word[1:], 1))
