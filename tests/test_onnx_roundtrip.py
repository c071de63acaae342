"""ONNX import/export round trips and cross-checks against the peers (qonnx's executor, onnxruntime).

For one small model per supported operator (``tests/onnx_models.py``): import, run the integer
graph in ``sw_reference`` and compare with the float executor of the original model, export to
QONNX, import again and check the graph is identical (``==`` on every array); the QONNX export run
by ``qonnx`` and the plain ONNX export run by ``onnxruntime`` give the graph's integer scores
exactly.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.util.cleanup import cleanup_model

from lowbit.quant.onnx import ops as onnx_ops
from lowbit.ir.graph import values
from lowbit.quant.onnx.writer import to_onnx, to_qonnx
from lowbit.quant.onnx.importer import MAX_OPSET, graphs_equal, import_onnx

from onnx_models import OP_MODELS, float_cnn, qdq_mlp, qonnx_cnn, qonnx_mlp, sample_inputs


def _ort(model):
    """An onnxruntime session computing the reference semantics of every operator (no fusions: fused
    quantized kernels use their own requantization arithmetic)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _qonnx_run(model, x: np.ndarray, keep=None) -> dict:
    """Run ``model`` with qonnx's executor one sample at a time (its models have batch 1)."""
    mw = ModelWrapper(model).transform(InferShapes())
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    outs = {}
    for i in range(len(x)):
        ctx = execute_onnx(mw, {iname: x[i:i + 1]}, return_full_exec_context=keep is not None)
        for k in [oname] + list(keep or []):
            outs.setdefault(k, []).append(ctx[k])
    return {k: np.concatenate(v) for k, v in outs.items()}


def _mismatch(a, b, what):
    if a.shape != b.shape:
        return f"{what}: shapes {a.shape} vs {b.shape}"
    bad = np.argwhere(a != b)
    if bad.size:
        i = tuple(bad[0])
        return f"{what}: first mismatch at {i}: {a[i]!r} vs {b[i]!r} ({len(bad)} in all)"
    return None


@pytest.mark.parametrize("op", sorted(OP_MODELS))
def test_op_round_trip(op):
    rng = np.random.default_rng(sum(map(ord, op)))
    model = OP_MODELS[op](rng)
    result = import_onnx(model)
    x = sample_inputs(model, rng)
    # the integer graph executes in sw_reference and reproduces the model (float reference of the original)
    ref = next(iter(onnx_ops.run(model, x).values()))
    ours = result.run(x)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    assert (ours.argmax(1) == ref.argmax(1)).all()
    # QONNX export -> import gives the identical graph
    again = import_onnx(to_qonnx(result.graph)).graph
    assert graphs_equal(result.graph, again), f"{op}: the re-imported graph differs"
    codes = result.encode(x)
    scores = result.graph.scores(codes)
    assert np.array_equal(again.scores(codes), scores)


@pytest.mark.parametrize("op", ["Conv-group", "MaxPool", "GlobalAveragePool+Flatten", "XnorPopcountMatMul",
                                "QLinearConv", "AveragePool"])
def test_exports_run_in_peers_exactly(op):
    """qonnx runs the QONNX export and onnxruntime the plain export: the graph's integer scores, exactly."""
    rng = np.random.default_rng(7)
    model = OP_MODELS[op](rng)
    g = import_onnx(model).graph
    lo = 0 if g.input_dtype.kind.name == "BIPOLAR" else g.input_dtype.min
    codes = rng.integers(lo, (1 if lo == 0 and g.input_dtype.kind.name == "BIPOLAR" else g.input_dtype.max) + 1,
                         (5,) + g.input_shape)
    scores = g.scores(codes)
    xin = values(codes, g.input_dtype).astype(np.float32)
    sess = _ort(to_onnx(g))
    got = sess.run(None, {"global_in": xin})[0]
    assert _mismatch(got.astype(np.int64), scores, "onnxruntime") is None
    assert np.array_equal(got, scores.astype(np.float32))
    q = to_qonnx(g)
    got = _qonnx_run(q, xin)[q.graph.output[0].name]
    assert _mismatch(got.astype(np.int64), scores, "qonnx") is None
    # qonnx's front-end clean-up and data-type inference (what FINN runs first) accept it, infer our data types,
    # and the cleaned model imports back to a graph with the same scores
    mw = cleanup_model(ModelWrapper(q)).transform(InferDataTypes())
    thresholded = [n.output[0] for n in mw.graph.node if n.op_type == "MultiThreshold"]
    assert [str(mw.get_tensor_datatype(t)) for t in thresholded] == [
        n.output_dtype.name for n in g.nodes if getattr(n, "thresholds", None) is not None]
    assert str(mw.get_tensor_datatype(mw.graph.input[0].name)) == g.input_dtype.name
    assert np.array_equal(import_onnx(mw.model).graph.scores(codes), scores)


@pytest.mark.parametrize("kind", ["mlp-w2a2", "mlp-w1a1", "mlp-w4a3", "cnn-w1a1", "cnn-w2a2"])
def test_qonnx_models_equal_qonnx_executor(kind):
    """On QONNX models, lowbit's integer execution equals the qonnx executor: outputs and every activation."""
    rng = np.random.default_rng(11)
    model = {"mlp-w2a2": lambda: qonnx_mlp(rng, 2, 2), "mlp-w1a1": lambda: qonnx_mlp(rng, 1, 1),
             "mlp-w4a3": lambda: qonnx_mlp(rng, 4, 3), "cnn-w1a1": lambda: qonnx_cnn(rng, 1, 1),
             "cnn-w2a2": lambda: qonnx_cnn(rng, 2, 2)}[kind]()
    result = import_onnx(model)
    x = sample_inputs(model, rng, n=6)
    act_quants = [n.output[0] for n in model.graph.node if n.op_type in ("Quant", "BipolarQuant")
                  and n.input[0] not in {t.name for t in model.graph.initializer}]
    peer = _qonnx_run(model, x, keep=act_quants)
    out = peer[model.graph.output[0].name]
    ours = result.run(x)
    assert _mismatch(ours.astype(np.float32), out, f"{kind} output") is None
    # integer activations: every thresholding layer's codes, mapped to values, equal qonnx's quantizer outputs
    trace = result.graph.trace(result.encode(x))
    layers = [i for i, n in enumerate(result.graph.nodes) if getattr(n, "thresholds", None) is not None]
    layer_quants = act_quants[1:]  # the first quantizer is the input's
    assert len(layers) == len(layer_quants)
    for i, tensor in zip(layers, layer_quants):
        peer_vals = peer[tensor]
        mine = _decode_layer(result, i, trace, peer_vals.shape)
        assert _mismatch(mine.astype(np.float32), peer_vals, f"{kind} layer {result.graph.nodes[i].name}") is None


def _decode_layer(result, i, trace, logical_shape):
    """Values of layer ``i`` in the ONNX (NCHW) layout, from the integer codes and the layer's scale/offset."""
    g = result.graph
    node = g.nodes[i]
    codes = trace[i]
    v = values(codes, node.output_dtype)
    scale, offset = result.layer_scales[node.name]
    vals = v * np.array([float(s) for s in scale]) + np.array([float(o) for o in offset])
    if vals.ndim == 4:
        vals = np.transpose(vals, (0, 3, 1, 2))
    return vals.reshape(logical_shape)


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_float_model_matches_onnxruntime(opset):
    """Float models: lowbit's float executor and onnxruntime agree within float tolerance."""
    rng = np.random.default_rng(3)
    model = float_cnn(rng, opset=opset)
    x = rng.normal(0, 1, (16, 3, 8, 8)).astype(np.float32)
    ours = next(iter(onnx_ops.run(model, x).values()))
    theirs = _ort(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("per_channel", [True, False])
def test_qdq_model_exact_against_onnxruntime(per_channel):
    """QDQ models: the integer graph gives onnxruntime's outputs exactly (power-of-two scales)."""
    rng = np.random.default_rng(4)
    model = qdq_mlp(rng, per_channel=per_channel)
    result = import_onnx(model)
    x = (rng.integers(0, 256, (32, 12)) * 2.0 ** -4).astype(np.float32)
    theirs = _ort(model).run(None, {"x": x})[0]
    ours = result.run(x)
    assert _mismatch(ours.astype(np.float32), theirs, "QDQ output") is None


@pytest.mark.parametrize("opset", [11, MAX_OPSET])
def test_import_across_opsets(opset):
    rng = np.random.default_rng(8)
    model = OP_MODELS["Add+Mul+Sub+Div+Identity+Dropout"](rng)
    model.opset_import[0].version = opset
    base = OP_MODELS["Add+Mul+Sub+Div+Identity+Dropout"](np.random.default_rng(8))
    assert graphs_equal(import_onnx(model).graph, import_onnx(base).graph)
