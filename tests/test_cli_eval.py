"""Data in, accuracy out (issue 16): ``sim --images`` with float images and labels, the refusals of
``sim`` on data the model cannot read, ``eval`` and ``trace`` against the source model, and the
input quantizer in ``map``/``compile`` reports. Run in-process through ``lowbit.cli.main``."""

import json

import numpy as np
import onnx
import pytest

from lowbit.cli import main
from lowbit.ir import DataType, IntegerGraph, MatMulThreshold
from lowbit.ir.boundary import InputQuant
from lowbit.mapping import search_folding
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.quant.onnx.importer import import_onnx

from onnx_models import qdq_mlp, qonnx_cnn, qonnx_mlp, sample_inputs

UINT2, UINT4, UINT5, UINT8 = (DataType.uint(b) for b in (2, 4, 5, 8))


def _tiny(quant: bool = True) -> IntegerGraph:
    """Two UINT2 inputs, two classes, scores = the codes (identity weights); input quantizer
    UINT2 scale 0.5 (code = round(x / 0.5), half to even, clipped to 0..3)."""
    w = np.array([[1, 0], [0, 1]])
    node = MatMulThreshold("fc", UINT2, w, None, weight_dtype=DataType.int(2))
    q = InputQuant(UINT2, (0.5,), (0.0,)) if quant else None
    return IntegerGraph(UINT2, (node,), None, q)


def _digits_graph(dtype: DataType, quant: InputQuant | None) -> IntegerGraph:
    """64 inputs of ``dtype`` (the digits' size), 10 classes."""
    w = np.random.default_rng(3).integers(-1, 2, (10, 64))
    node = MatMulThreshold("fc", dtype, w, None, weight_dtype=DataType.int(2))
    return IntegerGraph(dtype, (node,), None, quant)


def _sim_dir(tmp_path, graph: IntegerGraph):
    """A directory with the graph and a schedule: enough for ``sim`` to read its inputs (the
    refusals come before any Verilog is needed)."""
    d = tmp_path / "build"
    d.mkdir()
    graph.save(d / "model.npz")
    search_folding(graph, "pynq-z2").save(d / "schedule.json")
    return d


def _err(capsys, *fragments):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("running ")]
    assert 1 <= len(lines) <= 3, err
    for f in fragments:
        assert f in err, (f, err)
    return err


# -- encoding floats, by hand ---------------------------------------------------------------------


def test_eval_encodes_floats_with_the_graphs_quantizer(tmp_path, capsys):
    """x / 0.5 rounded half to even: [1.0, 0.5] -> codes [2, 1] -> class 0; [0.0, 1.5] -> [0, 3] ->
    class 1; [0.25, 0.75] -> [0 (0.5 rounds to 0), 2 (1.5 rounds to 2)] -> class 1; [9, 0] ->
    [3 (clipped), 0] -> class 0. Labels [0, 1, 0, 1]: two right, accuracy 0.5."""
    g = tmp_path / "tiny.npz"
    _tiny().save(g)
    data = tmp_path / "d.npz"
    x = np.array([[1.0, 0.5], [0.0, 1.5], [0.25, 0.75], [9.0, 0.0]], np.float32)
    np.savez(data, x=x, y=np.array([0, 1, 0, 1]))
    out = tmp_path / "eval.json"
    assert main(["eval", str(g), "--images", str(data), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "integer graph      : accuracy 0.5000 (2 of 4)" in text
    assert "input quantizer: UINT2 scale 0.5 zero point 0" in text
    r = json.loads(out.read_text())
    assert r["accuracy"] == {"graph": 0.5} and r["correct"] == {"graph": 2} and r["count"] == 4
    assert r["input_quant"]["dtype"] == "UINT2" and r["input_quant"]["scale"] == [0.5]
    assert "source" not in r
    # integer x are codes: [[2, 1], [0, 3]] -> classes [0, 1]; labels [1, 1]: accuracy 0.5
    np.savez(data, x=np.array([[2, 1], [0, 3]]), y=np.array([1, 1]))
    assert main(["eval", str(g), "--images", str(data), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"]["graph"] == 0.5


def test_eval_refuses_floats_without_quantizer_and_bad_labels(tmp_path, capsys):
    g = tmp_path / "tiny.npz"
    _tiny(quant=False).save(g)
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([[0.5, 1.0]], np.float32), y=np.array([0]))
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "no input quantizer", "UINT2 codes")
    np.savez(data, x=np.array([[1, 1]]), y=np.array([2]))  # two classes: labels 0..1
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "labels 'y' must lie in [0, 1]")
    np.savez(data, x=np.array([[1, 1]]))
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "expected integer labels 'y'")
    np.savez(data, x=np.zeros((0, 2), np.int64), y=np.zeros(0, np.int64))
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "no images")
    np.savez(data, x=np.array([[1, 4]]), y=np.array([0]))  # 4 is not a UINT2 code
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "[0, 3] (UINT2)")


# -- sim: what it refuses to feed -----------------------------------------------------------------


def test_sim_refuses_digits_for_a_quantized_input(tmp_path, capsys):
    """Raw 0..16 pixels into a UINT8 input that reads pixel / 255: refused, naming type and scale."""
    g = _digits_graph(UINT8, InputQuant(UINT8, (1 / 255,), (0.0,)))
    d = _sim_dir(tmp_path, g)
    assert main(["sim", str(d), "--fast"]) == 2
    err = _err(capsys, "UINT8", "scale 0.00392156", "--images")
    assert "PASS" not in err


def test_sim_refuses_digits_the_input_type_cannot_hold(tmp_path, capsys):
    d = _sim_dir(tmp_path, _digits_graph(UINT4, None))
    assert main(["sim", str(d), "--fast", "--images", "5"]) == 2
    _err(capsys, "input type is UINT4 (codes 0..15)", "values 0..16")


def test_sim_default_data_is_accepted_only_as_identity_codes():
    from lowbit.cli.app import _default_refusal

    assert _default_refusal(_digits_graph(UINT5, None), 0, 16, "d") is None
    identity = InputQuant(UINT5, (1.0,), (0.0,))
    assert _default_refusal(_digits_graph(UINT5, identity), 0, 16, "d") is None
    shifted = InputQuant(UINT5, (1.0,), (3.0,))  # value v is code v + 3
    assert "zero point 3" in _default_refusal(_digits_graph(UINT5, shifted), 0, 16, "d")
    assert "INT5 (codes -16..15)" in _default_refusal(
        _digits_graph(DataType.int(5), None), 0, 16, "d"
    )


def test_sim_refuses_zero_images_and_floats_without_quantizer(tmp_path, capsys):
    d = _sim_dir(tmp_path, _digits_graph(UINT5, None))
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 64), np.int64))
    assert main(["sim", str(d), "--fast", "--images", str(empty)]) == 2
    _err(capsys, str(empty), "no images")
    assert main(["sim", str(d), "--fast", "--count", "0"]) == 2
    _err(capsys, "--count", "not 0")
    assert main(["sim", str(d), "--fast", "--images", "0"]) == 2
    _err(capsys, "--images N", "not 0")
    floats = tmp_path / "f.npz"
    np.savez(floats, x=np.full((3, 64), 0.5, np.float32))
    assert main(["sim", str(d), "--fast", "--images", str(floats)]) == 2
    _err(capsys, str(floats), "no input quantizer", "UINT5 codes")


class _FakeFast:
    """What ``verify_compiled_fast`` returns, with RTL labels chosen by the test."""

    def __init__(self, labels):
        self.labels, self.ok, self.mismatch, self.waves = np.asarray(labels), True, None, None
        self.cycles_per_image, self.first_output_cycle = 1.0, 1
        self.runs = ({"name": "steady", "images": len(labels), "mismatched_images": 0,
                      "cycles": len(labels), "cycles_per_image": 1.0},)
        self.seconds = {"build": 0.0, "run": 0.0}
        self.cycles = None  # no cycle prediction to compare


def test_sim_reports_accuracy_and_label_mismatches(tmp_path, capsys, monkeypatch):
    """Float images, labels: reference accuracy from graph.predict, RTL accuracy from the labels the
    simulation returns (here faked, one of them wrong), and FAIL on a label mismatch."""
    import lowbit.flow

    g = _tiny()
    d = _sim_dir(tmp_path, g)
    data = tmp_path / "d.npz"
    # codes [2, 1], [0, 3], [3, 3], [1, 0] -> reference classes 0, 1, 0 (tie: lowest), 0
    x = np.array([[1.0, 0.5], [0.0, 1.5], [2.0, 7.0], [0.5, 0.0]], np.float32)
    np.savez(data, x=x, y=np.array([0, 1, 1, 1]))
    rtl = [0, 1, 0, 0]
    monkeypatch.setattr(lowbit.flow, "verify_compiled_fast", lambda out_dir, x: _FakeFast(rtl))
    out = tmp_path / "sim.json"
    assert main(["sim", str(d), "--fast", "--images", str(data), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy           reference 0.5000   rtl 0.5000   (4 labelled images)" in text
    assert "label mismatches   0 (RTL vs reference)" in text and "PASS: bit-exact" in text
    r = json.loads(out.read_text())
    assert r["accuracy"] == {"reference": 0.5, "rtl": 0.5, "labelled_images": 4}
    assert r["label_mismatches"] == 0 and r["ok"] is True and r["input"]["encoded"] is True
    rtl[:] = [0, 1, 1, 1]  # a wrong label select: two labels differ from the reference's
    assert main(["sim", str(d), "--fast", "--images", str(data), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "rtl 1.0000" in text and "label mismatches   2" in text and "FAIL" in text
    assert json.loads(out.read_text())["ok"] is False


# -- eval and trace against the source model ------------------------------------------------------


def _labelled(tmp_path, model, n=40, flip=10):
    """Inputs for ``model`` and labels: the imported graph's classes with the first ``flip``
    shifted by one, so the graph's accuracy is exactly (n - flip) / n."""
    rng = np.random.default_rng(4)
    x = sample_inputs(model, rng, n=n)
    r = import_onnx(model)
    pred = r.graph.predict(r.encode(x))
    y = pred.copy()
    y[:flip] = (y[:flip] + 1) % r.graph.classes
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return path, x, y, pred


@pytest.mark.parametrize("build, runner", [(qonnx_mlp, "qonnx"), (qdq_mlp, "onnxruntime")])
def test_eval_onnx_model_against_its_source(tmp_path, capsys, build, runner):
    model = build(np.random.default_rng(0))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    data, x, y, pred = _labelled(tmp_path, model)
    src = np.argmax(next(iter(onnx_ops.run(model, x).values())), axis=1)  # float64 executor
    out = tmp_path / "eval.json"
    assert main(["eval", str(path), "--images", str(data), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    r = json.loads(out.read_text())
    assert r["accuracy"]["graph"] == 0.75 and r["correct"]["graph"] == 30
    assert r["source"]["runner"] == runner
    assert r["accuracy"]["source"] == np.mean(src == y)
    assert r["labels_differ"] == int(np.sum(src != pred)) == 0
    assert "integer graph      : accuracy 0.7500 (30 of 40)" in text
    assert f"source ({runner})" in text and "labels differing   : 0" in text


def test_eval_graph_npz_with_source_onnx_image_layout(tmp_path, capsys):
    """A saved CNN graph reads (B, H, W, C); --onnx gets the same images as (B, C, H, W)."""
    model = qonnx_cnn(np.random.default_rng(0))
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path))
    data, x, y, pred = _labelled(tmp_path, model, n=12, flip=3)
    g = tmp_path / "cnn.npz"
    import_onnx(model).graph.save(g)
    hwc = tmp_path / "hwc.npz"
    np.savez(hwc, x=np.moveaxis(x, 1, -1), y=y)
    out = tmp_path / "eval.json"
    assert main(["eval", str(g), "--images", str(hwc), "--onnx", str(path), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["accuracy"] == {"graph": 0.75, "source": 0.75} and r["labels_differ"] == 0
    # the NCHW file is not the graph's layout
    assert main(["eval", str(g), "--images", str(data)]) == 2
    _err(capsys, str(data), "(B, 8, 8, 2) or (B, 128)")


def test_trace_agrees_layer_by_layer(tmp_path, capsys):
    model = qonnx_cnn(np.random.default_rng(0))
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path))
    data, *_ = _labelled(tmp_path, model, n=6, flip=0)
    out = tmp_path / "trace.json"
    assert main(["trace", str(path), "--images", str(data), "--count", "5", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    g = import_onnx(model).graph
    assert [row["node"] for row in r["rows"]] == ["(input)"] + [n.name for n in g.nodes]
    rows = {row["node"]: row for row in r["rows"]}
    # conv0: 8x8 pixels x 4 channels per image; after the 2x2 max-pool 4x4x4; conv1 (valid 3x3)
    # 2x2x6; the scores 3 per image
    assert [rows[n]["elements"] for n in ("conv0", "maxpool16", "conv1", "fc")] == [
        5 * 256, 5 * 64, 5 * 24, 5 * 3]
    assert all(rows[n]["differing"] == 0 for n in ("(input)", "conv0", "maxpool16", "conv1", "fc"))
    assert "skipped" in rows["conv0_im2col"] and r["first_difference"] is None
    bq = [n.output[0] for n in model.graph.node if n.op_type == "BipolarQuant" and n.input[0] not in
          {t.name for t in model.graph.initializer}]
    assert rows["conv0"]["onnx_tensor"] == bq[0] and rows["fc"]["onnx_tensor"] == "t32"
    assert "agree on every compared tensor" in capsys.readouterr().out


def test_trace_marks_the_first_layer_that_parts_ways(tmp_path, capsys, monkeypatch):
    """The source's conv1 output altered in one element: conv1 is the first difference (exit 1)."""
    import lowbit.cli.evaluate as ev

    model = qonnx_cnn(np.random.default_rng(0))
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path))
    data, *_ = _labelled(tmp_path, model, n=3, flip=0)
    g = import_onnx(model)
    tensor = [n.output[0] for n in model.graph.node if n.op_type == "BipolarQuant"][-2]  # conv1's
    real = ev.run_source

    def altered(m, x, extra=(), label=""):
        out, runner = real(m, x, extra, label)
        out[tensor] = out[tensor].copy()
        out[tensor][1, 2, 0, 1] *= -1
        return out, runner

    monkeypatch.setattr(ev, "run_source", altered)
    out = tmp_path / "trace.json"
    assert main(["trace", str(path), "--images", str(data), "--json", str(out)]) == 1
    r = json.loads(out.read_text())
    assert r["first_difference"] == "conv1"
    row = next(row for row in r["rows"] if row["node"] == "conv1")
    assert row["onnx_tensor"] == tensor and row["differing"] == 1 and row["max_abs_diff"] == 2.0
    assert row["first"]["index"] == [1, 2, 0, 1]
    text = capsys.readouterr().out
    marked = [ln for ln in text.splitlines() if "<== first difference" in ln]
    assert len(marked) == 1 and marked[0].split()[0] == "conv1"
    assert "they part ways at conv1" in text
    assert g.graph.nodes[-1].name == "fc"


# -- map and compile show the input quantizer ------------------------------------------------------


def test_map_prints_and_stores_the_input_quantizer(tmp_path, capsys):
    g = tmp_path / "tiny.npz"
    _tiny().save(g)
    assert main(["map", str(g)]) == 0
    assert "input quantizer: UINT2 scale 0.5 zero point 0" in capsys.readouterr().out
    assert main(["map", str(g), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["input_quant"] == {"dtype": "UINT2", "scale": [0.5], "zero_point": [0.0],
                                "rounding": "ROUND"}
    assert r["class_map"] is None and r["input_dtype"] == "UINT2"


@pytest.mark.fast_sim
def test_compile_and_sim_float_images_end_to_end(tmp_path, capsys):
    """The imported QONNX MLP compiled, its report holding the input quantizer; sim --fast on float
    images with labels: RTL accuracy = reference accuracy = 0.75 by construction."""
    model = qonnx_mlp(np.random.default_rng(0))
    g = tmp_path / "mlp.npz"
    import_onnx(model).graph.save(g)
    out = tmp_path / "build"
    assert main(["compile", str(g), "-o", str(out)]) == 0
    assert "input quantizer: UINT4 scale 0.125 zero point 0" in capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert rep["input_quant"]["dtype"] == "UINT4" and set(rep["input_quant"]["scale"]) == {0.125}
    data, *_ = _labelled(tmp_path, model, n=40, flip=10)
    res = tmp_path / "sim.json"
    assert main(["sim", str(out), "--fast", "--images", str(data), "--json", str(res)]) == 0
    r = json.loads(res.read_text())
    assert r["ok"] is True and r["label_mismatches"] == 0
    assert r["accuracy"] == {"reference": 0.75, "rtl": 0.75, "labelled_images": 40}
    assert "PASS: bit-exact" in capsys.readouterr().out


# -- import: a quantizer for a float input ----------------------------------------------------------


def _float_input_mlp():
    """qonnx_mlp without its input Quant (UINT4, scale 0.125): the first Gemm reads floats."""
    m = qonnx_mlp(np.random.default_rng(0))
    first = m.graph.node[0]
    assert first.op_type == "Quant" and first.input[0] == "x"
    out = first.output[0]
    del m.graph.node[0]
    for n in m.graph.node:
        for i, t in enumerate(n.input):
            if t == out:
                n.input[i] = "x"
    return m


def test_calibrated_input_quant_by_hand():
    from lowbit.cli.onnx import calibrated_input_quant

    q, exact = calibrated_input_quant(np.array([[0.0, 0.25], [0.75, 0.5]]), "c")
    assert exact and (q.dtype, q.scale, q.zero_point) == (UINT2, (0.25,), (0.0,))  # codes 0..3
    q, exact = calibrated_input_quant(np.array([[-0.5, 1.5, 0.5]]), "c")
    assert exact and (q.dtype, q.scale) == (DataType.int(3), (0.5,))  # codes -1..3
    q, exact = calibrated_input_quant(np.arange(17)[None] / 16, "c")  # pixels k/16
    assert exact and (q.dtype, q.scale) == (UINT5, (0.0625,))
    q, exact = calibrated_input_quant(np.array([[0.0, 0.001, 1.0]]), "c")  # 1/1000 is no grid
    assert not exact and q.dtype == UINT8 and q.scale == (float(np.float32(1 / 255)),)
    q, exact = calibrated_input_quant(np.array([[-2.54, 0.1, 1.0]]), "c")
    assert not exact and q.dtype == DataType.int(8) and q.scale == (float(np.float32(2.54 / 127)),)


def test_import_input_quant_equals_the_models_own_quant_node(tmp_path, capsys):
    """--input-quant UINT4:1/8 on the model without its input Quant gives the graph of the model
    with it: the same scores on the same float inputs."""
    path = tmp_path / "float_in.onnx"
    onnx.save(_float_input_mlp(), str(path))
    g = tmp_path / "g.npz"
    assert main(["import", str(path), "--input-quant", "UINT4:1/8", "-o", str(g)]) == 0
    assert "input quantizer: UINT4 scale 0.125 zero point 0" in capsys.readouterr().out
    graph = IntegerGraph.load(g)
    ref = import_onnx(qonnx_mlp(np.random.default_rng(0)))
    x = np.random.default_rng(2).normal(0.5, 1.5, (32, 16)).astype(np.float32)
    assert np.array_equal(graph.scores(graph.encode(x)), ref.graph.scores(ref.encode(x)))
    # the model with its own input quantizer refuses a second one; bad specs name the flag
    own = tmp_path / "own.onnx"
    onnx.save(qonnx_mlp(np.random.default_rng(0)), str(own))
    assert main(["import", str(own), "--input-quant", "UINT4:0.5"]) == 2
    _err(capsys, str(own), "quantizes its input itself")
    for bad in ("UINT4", "UINT4:0", "FLOAT8:1", "UINT4:a"):
        assert main(["import", str(path), "--input-quant", bad]) == 2
        _err(capsys, "--input-quant", "TYPE:SCALE[:ZERO_POINT]", repr(bad))


def test_import_input_dtype_says_it_assumes_scale_1(tmp_path, capsys):
    path = tmp_path / "float_in.onnx"
    onnx.save(_float_input_mlp(), str(path))
    assert main(["import", str(path), "--input-dtype", "UINT4"]) == 0
    out = capsys.readouterr().out
    assert "--input-dtype UINT4 reads a float input as UINT4 codes of scale 1" in out
    assert "input quantizer: none stored (the graph takes UINT4 codes)" in out


def test_import_calib_exact_grid_and_8_bit_fallback(tmp_path, capsys):
    path = tmp_path / "float_in.onnx"
    model = _float_input_mlp()
    onnx.save(model, str(path))
    rng = np.random.default_rng(6)
    calib = tmp_path / "c.npz"
    np.savez(calib, x=rng.integers(0, 17, (30, 16)).astype(np.float32) / 16)  # pixels k/16
    g = tmp_path / "g.npz"
    assert main(["import", str(path), "--calib", str(calib), "-o", str(g)]) == 0
    out = capsys.readouterr().out
    assert f"input quantizer from {calib}: UINT5 scale 0.0625 zero point 0 (every" in out
    assert "warning" not in out
    assert set(IntegerGraph.load(g).input_quant.scale) == {0.0625}  # recorded per channel
    # floats on no 8-bit grid: INT8 spanning [-a, a], a warning and the decisions that change
    x = rng.normal(0.5, 1.0, (40, 16)).astype(np.float32)
    np.savez(calib, x=x)
    assert main(["import", str(path), "--calib", str(calib), "-o", str(g)]) == 0
    out = capsys.readouterr().out
    graph = IntegerGraph.load(g)
    a = float(np.abs(x).max())
    assert graph.input_quant.dtype == DataType.int(8)
    assert set(graph.input_quant.scale) == {float(np.float32(a / 127))}
    float_pred = np.argmax(next(iter(onnx_ops.run(model, x).values())), axis=1)
    changed = int(np.sum(float_pred != graph.predict(graph.encode(x))))
    assert "warning: the calibration inputs" in out and "the hardware sees these quantized" in out
    assert f"{changed} of 40 calibration decisions change" in out
