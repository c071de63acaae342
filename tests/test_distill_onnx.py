"""A distillation teacher loaded from ONNX (issue 20): ``lowbit train --teacher FILE.onnx`` and
``lowbit.quant.train.onnx_teacher``. A tiny float MLP built with onnx.helper (random ReLU features
and a least-squares read-out on the digits) is the teacher: its logits from onnx's reference
evaluator equal NumPy's, it changes the student, the CLI trains the same student as the API given
those logits, and the files it refuses are named with what was expected. The built-in float
teacher exported to ONNX gives its logits and its student bit for bit."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowbit import LowbitError
from lowbit.cli import main
from lowbit.ir import IntegerGraph
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.train.loop import ZooConfig, train_zoo
from lowbit.quant.train.onnx_teacher import onnx_teacher


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _weights(data, hidden=32, classes=10):
    rng = np.random.default_rng(5)
    w1 = (rng.normal(0, 1, (data.features, hidden)) / 16).astype(np.float32)
    b1 = rng.normal(0, 0.5, hidden).astype(np.float32)
    h = np.maximum(data.x_train.astype(np.float32) @ w1 + b1, 0)
    target = 4 * np.eye(10)[data.y_train][:, :classes]
    sol = np.linalg.lstsq(np.c_[h, np.ones(len(h))], target, rcond=None)[0]
    return w1, b1, sol[:-1].astype(np.float32), sol[-1].astype(np.float32)


def _mlp(data, *, classes=10, features=None, batch="N"):
    """The teacher as an ONNX model: Gemm, Relu, Gemm on a float input (batch, features)."""
    w1, b1, w2, b2 = _weights(data, classes=classes)
    if features is not None:
        w1 = np.resize(w1, (features, w1.shape[1]))
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (b1, "B1"), (w2, "W2"), (b2, "B2"))]
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["scores"])]
    g = helper.make_graph(
        nodes, "teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, w1.shape[0]])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, classes])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _save(model, path):
    onnx.save(model, str(path))
    return path


def _numpy_logits(data, x):
    w1, b1, w2, b2 = (a.astype(np.float64) for a in _weights(data))
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def test_the_teachers_logits_are_the_models(digits, tmp_path):
    teacher, logits = onnx_teacher(_save(_mlp(digits), tmp_path / "t.onnx"), digits)
    assert logits.shape == (1347, 10) and logits.dtype == np.float64
    assert logits == pytest.approx(_numpy_logits(digits, digits.x_train), rel=1e-4, abs=1e-4)
    assert teacher.accuracy(digits.x_test, digits.y_test) > 0.85
    assert teacher.input_shape == (64,) and teacher.classes == 10 and teacher.batch is None
    # a model with a fixed batch of 1 runs an image at a time: the same logits
    one, logits1 = onnx_teacher(_save(_mlp(digits, batch=1), tmp_path / "t1.onnx"), digits)
    assert one.batch == 1 and logits1 == pytest.approx(logits, rel=1e-5, abs=1e-5)  # float32 sums


def _small(digits):
    return Dataset(digits.x_train[:300], digits.y_train[:300], digits.x_test, digits.y_test,
                   digits.input_dtype, digits.image_shape)


def _params(net):
    return {k: v.tobytes() for k, v in net.params.items()}


def test_the_onnx_teacher_changes_the_student(digits, tmp_path):
    data = _small(digits)
    _, logits = onnx_teacher(_save(_mlp(digits), tmp_path / "t.onnx"), data)
    cfg = ZooConfig(arch="mlp:16", weights="ternary", acts="int:2", epochs=2, distill_alpha=0.7)
    plain, taught = train_zoo(data, cfg), train_zoo(data, cfg, teacher_logits=logits)
    assert _params(plain) != _params(taught)
    # the teacher's logits are distilled as any others: the same logits, the same student
    again = train_zoo(data, cfg, teacher_logits=logits.copy())
    assert _params(again) == _params(taught)
    graph = to_integer_graph(taught)
    assert np.array_equal(graph.predict(data.x_test), taught.predict(data.x_test))


def test_cli_teacher_trains_the_api_student(digits, tmp_path, capsys):
    path = _save(_mlp(digits), tmp_path / "t.onnx")
    rep, out = tmp_path / "r.json", tmp_path / "m.npz"
    assert main(["train", "--arch", "mlp:16", "--epochs", "1", "--weights", "TERNARY", "--acts",
                 "UINT2", "--teacher", str(path), "--distill", "2:0.6", "--json", str(rep),
                 "-o", str(out)]) == 0
    d = json.loads(rep.read_text())["distill"]
    teacher, logits = onnx_teacher(path, digits)
    assert d["teacher"] == f"ONNX {path}" and d["temperature"] == 2.0 and d["alpha"] == 0.6
    assert d["teacher_accuracy"] == teacher.accuracy(digits.x_test, digits.y_test)
    assert d["teacher_train_accuracy"] == teacher.accuracy(digits.x_train, digits.y_train)
    assert f"teacher (ONNX {path}): test accuracy {d['teacher_accuracy']:.4f}" in capsys.readouterr().out
    cfg = ZooConfig(arch="mlp:16", weights="ternary", acts="int:2", epochs=1,
                    distill_temperature=2.0, distill_alpha=0.6)
    api = to_integer_graph(train_zoo(digits, cfg, teacher_logits=logits))
    cli = IntegerGraph.load(out)
    assert np.array_equal(cli.scores(digits.x_test), api.scores(digits.x_test))


def _refused(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) <= 3
    return lines[0]


@pytest.mark.parametrize("case,message", [
    ("classes", r"the teacher's output 'scores' has shape \(\?, 9\); the training data have 10 "
                r"classes: expected \(batch, 10\)"),
    ("features", r"the teacher's input 'x' has shape \(\?, 63\); the training data need "
                 r"\(batch, 64\) or \(batch, 1, 8, 8\), batch dynamic or 1"),
    ("directory", r"not a file; expected a float ONNX classifier \(the teacher\)"),
    ("bytes", r"not a readable ONNX model|not an ONNX model"),
])
def test_refused_teachers_are_named(digits, tmp_path, capsys, case, message):
    path = tmp_path / "t.onnx"
    if case == "classes":
        _save(_mlp(digits, classes=9), path)
    elif case == "features":
        _save(_mlp(digits, features=63), path)
    elif case == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
    first = _refused(["train", "--arch", "mlp:8", "--epochs", "1", "--teacher", str(path)], capsys)
    assert first.startswith("lowbit train: error: ") and str(path.name) in first
    import re
    assert re.search(message, first), first
    with pytest.raises(LowbitError, match=message):
        onnx_teacher(path, digits)


def test_an_image_teacher_takes_the_images_as_chw(tmp_path):
    """The data's images are HWC; a (batch, C, H, W) teacher gets them transposed: a model that
    transposes back to HWC and flattens gives the flat images' logits."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 16, (40, 12))
    y = np.arange(40) % 3
    data = Dataset(x, y, x[:10], y[:10], load_digits_split().input_dtype, (2, 2, 3))
    w = rng.normal(0, 1, (12, 3)).astype(np.float32)
    shape = numpy_helper.from_array(np.array([-1, 12], dtype=np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["hwc"], perm=[0, 2, 3, 1]),
         helper.make_node("Reshape", ["hwc", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["scores"])],
        "image_teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [shape, numpy_helper.from_array(w, "W")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    teacher, logits = onnx_teacher(_save(model, tmp_path / "img.onnx"), data)
    assert teacher.input_shape == (3, 2, 2)
    assert logits == pytest.approx(x @ w.astype(np.float64), rel=1e-5, abs=1e-4)


def _export_float_mlp(net, path):
    """The built-in float teacher (an MLP, FLOAT weights and acts) as a DOUBLE ONNX model, op for
    op as ZooNet.forward computes it: input scale, then per layer Gemm (transB), batch-norm
    (gamma * (y - mean) / sigma + beta) and ReLU, the last layer's logits times exp(tau)."""
    D = TensorProto.DOUBLE
    inits, nodes, h = [], [], "x"

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float64), name))
        return name

    def op(kind, a, b, out):
        nodes.append(helper.make_node(kind, [a, b], [out]))
        return out

    h = op("Mul", h, const("scale", net.input_scale()), "x_scaled")
    for i in range(net.n_layers):
        # Gemm with transB: the evaluator's np.dot(h, W.T) on W as stored, the same product as
        # the forward's h @ W.T (a MatMul on a contiguous copy of W.T is not: numpy 2.4 rounds
        # the two layouts differently for some shapes, e.g. 300 x 16 @ 16 x 10)
        nodes.append(helper.make_node("Gemm", [h, const(f"W{i}", net.weight_values(i))], [f"y{i}"],
                                      transB=1))
        y = f"y{i}"
        if i == net.n_layers - 1:
            h = op("Mul", y, const("temp", np.exp(float(net.params["tau"][0]))), "logits")
            break
        sigma = np.sqrt(net.state[f"var{i}"] + net.bn_eps)
        z = op("Sub", y, const(f"mean{i}", net.state[f"mean{i}"]), f"c{i}")
        z = op("Mul", const(f"gamma{i}", net.params[f"gamma{i}"]), z, f"g{i}")
        z = op("Div", z, const(f"sigma{i}", sigma), f"n{i}")
        z = op("Add", z, const(f"beta{i}", net.params[f"beta{i}"]), f"z{i}")
        nodes.append(helper.make_node("Relu", [z], [f"h{i}"]))
        h = f"h{i}"
    g = helper.make_graph(nodes, "builtin_teacher",
                          [helper.make_tensor_value_info("x", D, ["N", net.input_shape[0]])],
                          [helper.make_tensor_value_info("logits", D, ["N", 10])], inits)
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_the_builtin_teacher_exported_to_onnx_teaches_the_same_student(digits, tmp_path):
    """Equivalence with the built-in path: the float teacher lowbit trains, exported to ONNX and
    loaded back with --teacher's loader, gives the built-in teacher's logits and the same
    student."""
    from lowbit.quant.train.loop import train_teacher
    from lowbit.quant.train.onnx_teacher import _SLICE

    # one evaluator run for all the images (onnx_teacher runs slices of _SLICE): numpy 2.4's
    # products round a row differently with the number of rows beside it, so both sides must
    # multiply the same (256, features) matrices
    d = _small(digits)
    data = Dataset(d.x_train[:_SLICE], d.y_train[:_SLICE], d.x_test, d.y_test, d.input_dtype,
                   d.image_shape)
    cfg = ZooConfig(arch="mlp:24,16", weights="ternary", acts="int:2", epochs=2, distill_alpha=0.7)
    builtin, logits = train_teacher(data, cfg)
    teacher, onnx_logits = onnx_teacher(_export_float_mlp(builtin, tmp_path / "b.onnx"), data)
    # float64 throughout, the same operations in the same order: the same logits, bit for bit
    assert np.array_equal(onnx_logits, logits)
    assert teacher.accuracy(data.x_test, data.y_test) == builtin.accuracy(data.x_test, data.y_test)
    ref, got = train_zoo(data, cfg, teacher_logits=logits), train_zoo(data, cfg, teacher_logits=onnx_logits)
    assert _params(got) == _params(ref)
    assert np.array_equal(to_integer_graph(got).scores(data.x_test), to_integer_graph(ref).scores(data.x_test))


def test_huge_or_malformed_teachers_are_refused_before_they_run(digits, tmp_path, monkeypatch):
    """The importer's limits: the file's size before it is read, each stored tensor's data
    against its shape, and each tensor the model computes (for one slice of images)."""
    import dataclasses

    import lowbit.quant.onnx.read as read
    import lowbit.quant.train.onnx_teacher as ot

    path = _save(_mlp(digits), tmp_path / "t.onnx")
    small = dataclasses.replace(read.LIMITS, file_bytes=1000)
    monkeypatch.setattr(read, "LIMITS", small)
    with pytest.raises(LowbitError, match=r"t\.onnx: file size \(bytes\) \d+ exceeds lowbit's limit of 1000$"):
        onnx_teacher(path, digits)
    monkeypatch.undo()
    # a hidden layer of 32 for 256 images: 8,192 elements
    monkeypatch.setattr(ot, "LIMITS", dataclasses.replace(ot.LIMITS, tensor_elements=8000))
    with pytest.raises(LowbitError, match=r"t\.onnx: tensor 'h' for 256 images: element count 8192 "
                                          r"exceeds lowbit's limit of 8000$"):
        onnx_teacher(path, digits)
    monkeypatch.undo()
    model = _mlp(digits)
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    with pytest.raises(LowbitError, match=r"initializer 'W1': raw data holds 8188 bytes; its shape "
                                          r"\[64, 32\] of FLOAT needs 8192$"):
        onnx_teacher(_save(model, tmp_path / "short.onnx"), digits)
