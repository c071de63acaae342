"""Issue 19, the IR: a DAG in IntegerGraph (forks, Add and Concat joins) and the new node types
(DepthwiseConv, SlidingWindow1D, MaxPool1D, GlobalAvgPool), worked by hand; the .npz format 5
only when needed; chains unchanged; the refusal the mapper and hardware give."""

import json
import zipfile

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.ir import (
    BIPOLAR,
    Add,
    Concat,
    DataType,
    DepthwiseConv,
    GlobalAvgPool,
    IntegerGraph,
    MatMulThreshold,
    MaxPool1D,
    SlidingWindow,
    SlidingWindow1D,
)

U2 = DataType.uint(2)
I4 = DataType.int(4)


def _residual() -> IntegerGraph:
    """input (2,) UINT2 -> fc0 (identity-like 1x1, UINT2) -> add(fc0, input) -> fc1 scores.

    fc0: acc = x0 + x1 per channel 0 and x0 - x1 + 3 per... kept simple: weights [[1, 0], [0, 1]],
    thresholds [1, 2, 3] (the identity on UINT2). add: acc = 1 * a + 2 * b, thresholds [2, 4, 6]
    (floor(acc / 2) clipped to [0, 3]). fc1: scores = [[1, 0], [0, 1]] . add.
    """
    fc0 = MatMulThreshold("fc0", U2, np.eye(2, dtype=int), np.array([[1, 2, 3]] * 2), U2,
                          DataType.int(2))
    add = Add("add", (U2, U2), np.array([1, 1]), np.array([2, 2]), np.array([[2, 4, 6]]), U2)
    fc1 = MatMulThreshold("fc1", U2, np.eye(2, dtype=int), None, weight_dtype=DataType.int(2))
    return IntegerGraph(U2, (fc0, add, fc1), (2,), None, (("",), ("fc0", ""), ("add",)))


def test_residual_dag_by_hand():
    g = _residual()
    assert not g.is_chain and g.consumers("") == ("fc0", "add")
    x = np.array([[0, 3], [1, 1], [2, 0], [3, 2]])
    # fc0 is the identity; add: acc = a + 2 b = 3 x; codes floor(3x / 2) clipped to 3
    # x = 0 -> 0, 1 -> 1, 2 -> 3, 3 -> 3
    trace = g.trace(x)
    assert trace[1].reshape(4, 2).tolist() == [[0, 3], [1, 1], [3, 0], [3, 3]]
    assert g.scores(x).tolist() == [[0, 3], [1, 1], [3, 0], [3, 3]]
    assert g.predict(x).tolist() == [1, 0, 0, 0]
    assert g.input_shapes_of(1) == ((2,), (2,))
    assert [n.name for n in g.dag_nodes()] == ["add"]


def test_from_dag_sorts_and_refuses_cycles():
    g = _residual()
    shuffled = [(g.nodes[2], ("add",)), (g.nodes[1], ("fc0", "")), (g.nodes[0], ("",))]
    h = IntegerGraph.from_dag(U2, shuffled, (2,))
    assert [n.name for n in h.nodes] == ["fc0", "add", "fc1"]
    assert h.inputs == g.inputs
    with pytest.raises(ValueError, match="'fc0' is on a cycle"):
        IntegerGraph.from_dag(U2, [(g.nodes[0], ("add",)), (g.nodes[1], ("fc0", "")),
                                   (g.nodes[2], ("add",))], (2,))


def test_dag_inputs_checked():
    g = _residual()
    with pytest.raises(ValueError, match="reads 'fc1', which is not an earlier node"):
        IntegerGraph(U2, g.nodes, (2,), None, (("",), ("fc1", ""), ("add",)))
    with pytest.raises(ValueError, match=r"'add' \(Add\) reads 2 inputs, not 1"):
        IntegerGraph(U2, g.nodes, (2,), None, (("",), ("fc0",), ("add",)))
    with pytest.raises(ValueError, match=r"'add' \(Add\) joins two or more inputs; give the graph"):
        IntegerGraph(U2, g.nodes, (2,))
    with pytest.raises(ValueError, match="'fc0': its output is never read"):
        IntegerGraph(U2, g.nodes, (2,), None, (("",), ("", ""), ("add",)))


def test_chain_given_as_inputs_is_a_chain():
    fc0 = MatMulThreshold("fc0", BIPOLAR, np.ones((2, 4), dtype=np.uint8), np.array([[2], [3]]))
    fc1 = MatMulThreshold("fc1", BIPOLAR, np.ones((3, 2), dtype=np.uint8), None)
    g = IntegerGraph(BIPOLAR, (fc0, fc1), None, None, (("",), ("fc0",)))
    assert g.is_chain and g.inputs is None and g.edges == (("",), ("fc0",))


def test_save_versions(tmp_path):
    fc0 = MatMulThreshold("fc0", BIPOLAR, np.ones((2, 4), dtype=np.uint8), np.array([[2], [3]]))
    fc1 = MatMulThreshold("fc1", BIPOLAR, np.ones((3, 2), dtype=np.uint8), None)
    chain = IntegerGraph(BIPOLAR, (fc0, fc1))

    def header(p):
        with zipfile.ZipFile(p) as z:
            return json.loads(np.frombuffer(z.read("header.npy")[128:], np.uint8).tobytes())

    assert header(chain.save(tmp_path / "c.npz"))["version"] == 3
    g = _residual()
    h = header(g.save(tmp_path / "r.npz"))
    assert h["version"] == 5 and [m["inputs"] for m in h["nodes"]] == [[""], ["fc0", ""], ["add"]]
    back = IntegerGraph.load(tmp_path / "r.npz")
    x = np.random.default_rng(0).integers(0, 4, (20, 2))
    assert back.inputs == g.inputs and np.array_equal(back.scores(x), g.scores(x))


def test_depthwise_node_by_hand(tmp_path):
    # 1x3 image of 2 channels, kernel 1x... use a 2x2 image, kernel 2: one window
    img = np.array([[[[1, 2], [3, 0]], [[0, 1], [2, 3]]]])  # (1, 2, 2, 2) UINT2
    # windows (ky, kx, c): 1 2 3 0 0 1 2 3; channel 0 taps 1 3 0 2, channel 1 taps 2 0 1 3
    dw = DepthwiseConv("dw", U2, np.array([[1, -1, 0, 1], [2, 0, -2, 1]]),
                       np.array([[0, 1, 2], [3, 6, 9]]), U2, I4)
    # acc c0 = 1 - 3 + 2 = 0 -> 1 threshold passed (0 >= 0); c1 = 4 - 2 + 3 = 5 -> 1 (5 >= 3)
    assert dw.accumulate(SlidingWindow("w", 2).reference(img)).tolist() == [[[[0, 5]]]]
    assert dw.acc_range == (4 * -8 * 3, 4 * 7 * 3)
    fc = MatMulThreshold("fc", U2, np.ones((2, 2), dtype=int), None, weight_dtype=DataType.int(2))
    pool = GlobalAvgPool("gap", U2, np.array([[1, 2, 3]]), U2)
    g = IntegerGraph(U2, (SlidingWindow("w", 2), dw, pool, fc), (2, 2, 2))
    assert g.is_chain and g.trace(img)[1].tolist() == [[[[1, 1]]]]
    assert [n.name for n in g.dag_nodes()] == ["dw", "gap"]
    with pytest.raises(LowbitError, match=r"^map: node 'dw' \(DepthwiseConv\) is a DepthwiseConv; "
                                          r"map takes chains of MatMulThreshold, SlidingWindow"):
        g.require_chain("map")
    back = IntegerGraph.load(g.save(tmp_path / "dw.npz"))
    assert np.array_equal(back.nodes[1].weights, dw.weights) and back.is_chain


def test_xnor_depthwise_and_1d_nodes():
    # a sequence (L=3, C=2) of bits; windows of 2 -> (2, 4); depthwise XNOR on 2 taps
    x = np.array([[[1, 0], [1, 1], [0, 1]]])
    sw = SlidingWindow1D("w", 2)
    win = sw.reference(x)
    assert win.tolist() == [[[1, 0, 1, 1], [1, 1, 0, 1]]]
    dw = DepthwiseConv("dw", BIPOLAR, np.array([[1, 1], [0, 1]], dtype=np.uint8),
                       np.array([[2], [1]]), BIPOLAR, BIPOLAR)
    # window 0: c0 taps 1 1 vs 1 1 -> 2 agree -> 1; c1 taps 0 1 vs 0 1 -> 2 -> 1
    # window 1: c0 taps 1 0 vs 1 1 -> 1 -> 0 (< 2); c1 taps 1 1 vs 0 1 -> 1 -> 1
    assert dw.reference(win).tolist() == [[[1, 1], [0, 1]]]
    assert MaxPool1D("p", 2).reference(dw.reference(win)).tolist() == [[[1, 1]]]
    fc = MatMulThreshold("fc", BIPOLAR, np.ones((2, 4), dtype=np.uint8), None)
    g = IntegerGraph(BIPOLAR, (sw, dw, MaxPool1D("p", 1), fc), (3, 2))
    # bits 1 1 0 1 against all-ones weights: 3 agree, scores 2 * 3 - 4 = 2
    assert g.output_shape(2) == (2, 2) and g.scores(x).tolist() == [[2, 2]]


def test_concat_join():
    a = MatMulThreshold("a", U2, np.eye(2, dtype=int), np.array([[1, 2, 3]] * 2), U2,
                        DataType.int(2))
    cat = Concat("cat")
    fc = MatMulThreshold("fc", U2, np.array([[1, 0, 0, 0], [0, 0, 1, 1]]), None,
                         weight_dtype=DataType.int(2))
    g = IntegerGraph(U2, (a, cat, fc), (2,), None, (("",), ("a", ""), ("cat",)))
    assert g.output_shape(1) == (4,)
    assert g.scores(np.array([[3, 1]])).tolist() == [[3, 4]]


def test_add_refuses_mismatched_inputs():
    add = Add("add", (U2, I4), np.array([1]), np.array([1]), np.array([[0]]), BIPOLAR)
    with pytest.raises(ValueError, match="input_dtypes are UINT2, INT4, but its inputs produce"):
        add.infer_join([(1,), (1,)], [U2, U2])
    assert add.acc_range == (-8, 3 + 7)


def test_the_mapper_refuses_a_dag_naming_the_node():
    from lowbit.mapping.folding import search_folding

    with pytest.raises(LowbitError, match=r"^map: node 'add' \(Add\) has no hardware yet"):
        search_folding(_residual(), "pynq-z2")
    img = np.zeros((1, 2, 2, 2), dtype=int)
    dw = DepthwiseConv("dw", U2, np.ones((2, 4), dtype=int), np.array([[1, 2, 3]]), U2,
                       DataType.int(2))
    fc = MatMulThreshold("fc", U2, np.ones((2, 2), dtype=int), None, weight_dtype=DataType.int(2))
    g = IntegerGraph(U2, (SlidingWindow("w", 2), dw, GlobalAvgPool("gap", U2, np.array([[1, 2, 3]]),
                                                                     U2), fc), (2, 2, 2))
    assert g.scores(img).tolist() == [[0, 0]]
    dag_node = r"^map: node '(dw|gap)' \((DepthwiseConv|GlobalAvgPool)\)"
    with pytest.raises(LowbitError, match=dag_node):
        search_folding(g, "pynq-z2")


def test_onnx_export_refuses_a_dag_naming_the_node():
    from lowbit.quant.onnx.writer import to_qonnx

    joins = r"^ONNX export: node 'add' \(Add\) joins 2 branches; ONNX export takes chains of "
    with pytest.raises(LowbitError, match=joins + r"MatMulThreshold, .* so far$"):
        to_qonnx(_residual())
    fork = _residual()
    fork = IntegerGraph(U2, fork.nodes, (2,), None, (("",), ("fc0", "fc0"), ("add",)))
    forks = r"^ONNX export: node 'fc0' \(MatMulThreshold\) forks: 2 "
    with pytest.raises(LowbitError, match=forks):
        to_qonnx(fork)


def test_input_wire_in_front_of_a_dag():
    from lowbit.ir.boundary import InputQuant

    g = _residual()
    g = IntegerGraph(U2, g.nodes, (2,), InputQuant(U2, scale=1.0, zero_point=0.0), g.inputs)
    wired = g.with_input_wire(InputQuant(DataType.uint(4), scale=0.25, zero_point=0.0))
    # both readers of the graph input (fc0 and the Add's shortcut) now read the threshold unit
    assert wired.inputs[:3] == (("",), ("input_threshold",), ("fc0", "input_threshold"))
    w = np.arange(16)[:, None].repeat(2, axis=1)  # wire codes: value w / 4
    codes = g.encode(w / 4)
    assert np.array_equal(wired.scores(w), g.scores(codes))
