"""``lowbit import/export/quantize`` and post-training quantization of float ONNX models."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from lowbit.cli import main
from lowbit.quant.onnx import ops as onnx_ops
from lowbit.ir.datatypes import BIPOLAR, TERNARY, DataType
from lowbit.ir.graph import IntegerGraph, MatMulThreshold
from lowbit.quant.onnx.importer import graphs_equal, import_onnx, layer_table
from lowbit.quant.onnx.ptq import PTQConfig, quantize_model, quantize_weights

from onnx_models import float_cnn, qonnx_cnn, qonnx_mlp


def test_twn_ternary_weights_hand_worked():
    # mean |w| = 0.3875, delta = 0.7 * 0.3875 = 0.27125: -0.9 and 0.5 survive, scale = mean(0.9, 0.5) = 0.7
    codes, scales, bits = quantize_weights(np.array([[0.1], [-0.9], [0.5], [0.05]]), "ternary", out_axis=1)
    assert codes[:, 0].tolist() == [0, -1, 1, 0] and bits == 2
    assert scales[0, 0] == pytest.approx(0.7)


def test_pow2_weights_log_domain_rounding():
    # b = 3: exponents 0..2; scale 2^(floor(log2 3) - 2) = 0.5; |w| / 0.5 = 2, 0.6, 0.2, 6 -> log2 rounds to 1, -1, -2, 3
    codes, scales, _ = quantize_weights(np.array([[1.0], [-0.3], [0.1], [3.0]]), "pow2_3", out_axis=1)
    assert codes[:, 0].tolist() == [2, 0, 0, 4] and scales[0, 0] == 0.5


def test_layer_table_counts_macs_by_kind_and_bops():
    rng = np.random.default_rng(0)
    g = IntegerGraph(DataType.uint(4), (
        MatMulThreshold("t", DataType.uint(4), rng.integers(-1, 2, (6, 8)), np.zeros((6, 1), np.int64), BIPOLAR,
                        TERNARY),
        MatMulThreshold("x", BIPOLAR, rng.integers(0, 2, (5, 6)), np.zeros((5, 3), np.int64), DataType.uint(2)),
        MatMulThreshold("s", DataType.uint(2), np.array([[1, -2, 4, 0, 1]] * 4), np.zeros((4, 1), np.int64),
                        BIPOLAR, DataType.pow2(3)),
        MatMulThreshold("i", BIPOLAR, rng.integers(-3, 4, (3, 4)), None, weight_dtype=DataType.int(3))))
    rows = layer_table(g)
    assert [r["macs"] for r in rows] == [
        {"xnor": 0, "ternary": 48, "shift": 0, "integer": 0}, {"xnor": 30, "ternary": 0, "shift": 0, "integer": 0},
        {"xnor": 0, "ternary": 0, "shift": 20, "integer": 0}, {"xnor": 0, "ternary": 0, "shift": 0, "integer": 12}]
    assert [r["bops"] for r in rows] == [48 * 2 * 4, 30, 20 * 3 * 2, 12 * 3 * 1]
    # memory: weights x bits + thresholds x accumulator bits (acc range of layer t: [-60, 60] -> INT8 for 61)
    assert rows[0]["memory_bits"] == 48 * 2 + 6 * 8


@pytest.mark.parametrize("weights, acts, wtype", [("int8", "uint8", DataType.int(8)), ("ternary", "uint3", TERNARY),
                                                  ("pow2_3", "uint4", DataType.pow2(3)), ("int4", "int4",
                                                                                          DataType.int(4))])
def test_ptq_graph_equals_its_quantized_model(weights, acts, wtype):
    """The integer graph computes exactly what the quantizers inserted by PTQ define (float64 reference)."""
    rng = np.random.default_rng(2)
    model = float_cnn(rng)
    calib = rng.normal(0, 1, (24, 3, 8, 8)).astype(np.float32)
    result, qmodel = quantize_model(model, calib, PTQConfig(weights, acts))
    x = rng.normal(0, 1, (12, 3, 8, 8)).astype(np.float32)
    ref = next(iter(onnx_ops.run(qmodel, x).values()))
    np.testing.assert_allclose(result.run(x), ref, rtol=0, atol=1e-9)
    first = next(n for n in result.graph.nodes if isinstance(n, MatMulThreshold))
    assert first.weight_dtype == wtype
    assert first.input_dtype == DataType.int(8)  # calibration inputs are signed: an 8-bit signed input quantizer


def test_ptq_rejects_unknown_schemes():
    from lowbit import LowbitError
    with pytest.raises(LowbitError, match=r"^--weights must be bipolar, ternary, pow2_<2..6> or int<2..16>, "
                                          r"not 'int1'$"):
        PTQConfig("int1", "uint4")
    with pytest.raises(LowbitError, match=r"^--acts must be bipolar, uint<1..16> or int<2..16>, not 'float'$"):
        PTQConfig("int4", "float")


def test_cli_import_export_quantize(tmp_path, capsys):
    rng = np.random.default_rng(5)
    src = tmp_path / "cnn.onnx"
    onnx.save(qonnx_cnn(rng, 2, 2), str(src))
    out, js = tmp_path / "cnn.npz", tmp_path / "cnn.json"
    assert main(["import", str(src), "-o", str(out), "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "conv0" in text and "TERNARY" in text and text.splitlines()[-2].startswith("total")
    rows = json.loads(js.read_text())["layers"]
    g = IntegerGraph.load(out)
    assert graphs_equal(g, import_onnx(src).graph)
    assert sum(r["macs"]["ternary"] for r in rows) == sum(
        n.mh * n.mw * int(np.prod(g.output_shape(i)[:-1])) for i, n in enumerate(g.nodes)
        if isinstance(n, MatMulThreshold))
    for fmt in ("qonnx", "onnx"):
        dst = tmp_path / f"cnn_{fmt}.onnx"
        assert main(["export", str(out), "-o", str(dst), "--format", fmt]) == 0
        assert dst.is_file()
    assert graphs_equal(import_onnx(tmp_path / "cnn_qonnx.onnx").graph, g)
    # quantize a float model with a calibration set
    fsrc, calib = tmp_path / "float.onnx", tmp_path / "calib.npz"
    onnx.save(float_cnn(rng), str(fsrc))
    np.savez(calib, x=rng.normal(0, 1, (16, 3, 8, 8)).astype(np.float32), y=rng.integers(0, 4, 16))
    q, qq = tmp_path / "q.npz", tmp_path / "q.onnx"
    assert main(["quantize", str(fsrc), "--weights", "ternary", "--acts", "uint3", "--calib", str(calib), "-o",
                 str(q), "--qonnx", str(qq)]) == 0
    text = capsys.readouterr().out
    assert "argmax agreement with the float model" in text
    assert graphs_equal(IntegerGraph.load(q), import_onnx(qq).graph)
    # errors: one line, exit 2
    assert main(["quantize", str(fsrc), "--weights", "int1", "--calib", str(calib), "-o", str(q)]) == 2
    assert main(["quantize", str(fsrc), "--calib", str(tmp_path / "none.npz"), "-o", str(q)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"lowbit quantize: error: {tmp_path / 'none.npz'}: no such calibration file"


def test_import_with_input_dtype_for_float_inputs():
    """A float input without a quantizer imports with --input-dtype (pixels given as floats)."""
    rng = np.random.default_rng(6)
    m = qonnx_mlp(rng)
    # drop the input quantizer: the first Gemm reads the raw input
    first = m.graph.node[0]
    nxt = [n for n in m.graph.node if first.output[0] in n.input][0]
    nxt.input[list(nxt.input).index(first.output[0])] = first.input[0]
    m.graph.node.remove(first)
    r = import_onnx(m, input_dtype=DataType.uint(4))
    assert r.graph.input_dtype == DataType.uint(4)
    x = rng.integers(0, 16, (8, 16))
    np.testing.assert_allclose(r.run(x), next(iter(onnx_ops.run(m, x.astype(np.float32)).values())), atol=1e-9)


def test_a_final_bias_is_folded_into_the_class_map(tmp_path, capsys):
    """A float bias on the last layer becomes the last node's exact class map: the graph's own
    decision (what the label select computes) equals the model's argmax, and import says so."""
    rng = np.random.default_rng(9)
    r0 = import_onnx(qonnx_mlp(rng))
    assert r0.scores_decide and r0.graph.nodes[-1].class_map is None  # one scale, no bias
    m = qonnx_mlp(rng)
    last = m.graph.node[-1]
    assert last.op_type == "MatMul"
    last.op_type = "Gemm"
    last.input.append("final_bias")
    m.graph.initializer.append(onnx.numpy_helper.from_array(rng.normal(0, 3, 5).astype(np.float32), "final_bias"))
    r = import_onnx(m)
    assert not r.scores_decide and r.graph.nodes[-1].class_map is not None
    x = rng.normal(0, 4, (256, 16)).astype(np.float32)
    ref = next(iter(onnx_ops.run(m, x).values()))
    assert np.array_equal(r.predict(x), ref.argmax(1))  # ImportResult applies the bias exactly
    assert np.array_equal(r.graph.predict(r.encode(x)), ref.argmax(1))  # and so does the graph
    raw = np.argmax(r.graph.scores(r.encode(x)), axis=1)
    assert not np.array_equal(raw, ref.argmax(1))  # the bias matters on this data
    path = tmp_path / "bias.onnx"
    onnx.save(m, str(path))
    assert main(["import", str(path), "-o", str(tmp_path / "g.npz")]) == 0
    assert "class map" in capsys.readouterr().out
    g = IntegerGraph.load(tmp_path / "g.npz")
    assert g.nodes[-1].class_map == r.graph.nodes[-1].class_map
