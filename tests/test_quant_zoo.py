"""The quantization zoo end to end on small digits subsets: every scheme exports to an integer graph
whose predictions and scores equal the training model's on every test sample; seeds reproduce;
pruning, INQ and weight sharing keep their promises."""

import dataclasses

import numpy as np
import pytest

from lowbit import LowbitError
from lowbit.ir import BIPOLAR, TERNARY, DataType, IntegerGraph
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.export import to_integer_graph
from lowbit.quant.prune import cubic_sparsity, global_magnitude_masks, magnitude_mask, prune_filters
from lowbit.quant.share import export_codebooks, kmeans_1d, share_layer, sparse_images
from lowbit.sw_reference.sparse import dense_weights
from lowbit.quant.train.loop import ZooConfig, op_counts, train_zoo, weight_memory_bits

SCHEMES = [("binary", "binary", BIPOLAR), ("bc", "int:2", BIPOLAR), ("ternary", "int:2", TERNARY), ("ttq", "binary", DataType.int(4)),
           ("log2:4", "int:3", DataType.pow2(4)), ("inq:5", "int:2", DataType.pow2(5)),
           ("int:3", "int:4", DataType.int(3)), ("dorefa:2", "binary", DataType.int(3))]


@pytest.fixture(scope="module")
def digits():
    d = load_digits_split()
    return Dataset(d.x_train[:400], d.y_train[:400], d.x_test, d.y_test, d.input_dtype, d.image_shape)


def assert_exact_export(net, data, tmp_path=None) -> IntegerGraph:
    graph = to_integer_graph(net)
    if tmp_path is not None:  # through the file format too
        graph = IntegerGraph.load(graph.save(tmp_path / "g.npz"))
    scores = graph.scores(data.x_test)
    exact = net.exact_forward(data.x_test)
    bad = np.argwhere(scores != exact)
    assert not bad.size, f"scores differ at sample/class {bad[0]}: graph {scores[tuple(bad[0])]} " \
                         f"model {exact[tuple(bad[0])]}"
    pred, gpred = net.predict(data.x_test), graph.predict(data.x_test)
    assert np.array_equal(gpred, pred), f"first differing sample {np.flatnonzero(gpred != pred)[:1]}"
    return graph


@pytest.mark.parametrize("weights,acts,dtype", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_mlp_every_scheme_exports_exactly(digits, weights, acts, dtype, tmp_path):
    net = train_zoo(digits, ZooConfig(arch="mlp:32,24", weights=weights, acts=acts, epochs=4, lr=1e-2,
                                      first_bits=None, last_bits=None))
    graph = assert_exact_export(net, digits, tmp_path)
    assert [n.weight_dtype for n in graph.matmuls] == [dtype] * 3
    assert graph.matmuls[1].input_dtype == (BIPOLAR if acts == "binary" else DataType.uint(int(acts[4:])))
    acc = net.accuracy(digits.x_test, digits.y_test)
    if weights != "bc":  # stochastic BinaryConnect needs far longer training than a test allows
        assert acc > 0.3, acc  # it learned something (10 classes)


CNN_SCHEMES = [s for s in SCHEMES if s[0] in ("binary", "ternary", "ttq", "log2:4", "int:3")]


@pytest.mark.parametrize("weights,acts,dtype", CNN_SCHEMES, ids=[s[0] for s in CNN_SCHEMES])
def test_cnn_every_scheme_exports_exactly(digits, weights, acts, dtype):
    net = train_zoo(digits, ZooConfig(arch="cnv-small", weights=weights, acts=acts, epochs=1, batch_size=100,
                                      recalibrate=200))
    graph = assert_exact_export(net, digits)
    ops = [type(n).__name__ for n in graph.nodes]
    assert ops == ["SlidingWindow", "MatMulThreshold", "MaxPool", "SlidingWindow", "MatMulThreshold", "MaxPool",
                   "MatMulThreshold", "MatMulThreshold"]
    # Mixed precision by default: first and last layers INT8, the scheme in between.
    assert [n.weight_dtype for n in graph.matmuls] == [DataType.int(8), dtype, dtype, DataType.int(8)]
    assert graph.matmuls[0].mw == 9 and graph.matmuls[1].mw == 9 * 16 and graph.matmuls[2].mw == 2 * 2 * 32


def test_negative_gamma_channels_are_negated(digits):
    net = train_zoo(digits, ZooConfig(arch="mlp:24", weights="ternary", acts="binary", epochs=2, first_bits=None,
                                      last_bits=None))
    base = to_integer_graph(net)
    net.params["gamma0"][::2] *= -1  # a different network with negative slopes on half the channels
    graph = assert_exact_export(net, digits)
    neg = np.arange(24) % 2 == 0
    assert np.array_equal(graph.nodes[0].weights[neg], -base.nodes[0].weights[neg])
    assert not np.array_equal(net.predict(digits.x_test), np.zeros(len(digits.x_test)))


def test_float_pass_agrees_with_exact_pass(digits):
    # The float64 fake-quantized pass used for training decides like the exact pass (it computes the
    # last layer's integer dot products exactly, so arg-max ties break the same way).
    net = train_zoo(digits, ZooConfig(arch="mlp:32", weights="int:2", acts="int:2", epochs=3, first_bits=None,
                                      last_bits=None))
    assert np.array_equal(np.argmax(net.forward(digits.x_test), axis=1), net.predict(digits.x_test))


def test_same_seed_same_weights(digits):
    cfg = ZooConfig(arch="cnv-small", weights="ttq", acts="int:2", epochs=1, batch_size=100, recalibrate=100,
                    prune=0.5)
    a, b = train_zoo(digits, cfg), train_zoo(digits, cfg)
    c = train_zoo(digits, dataclasses.replace(cfg, seed=1))
    assert a.params.keys() == b.params.keys() and a.state.keys() == b.state.keys()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    for k in a.state:
        assert np.array_equal(a.state[k], b.state[k]), k
    assert not np.array_equal(a.params["W1"], c.params["W1"])
    ga, gb = to_integer_graph(a), to_integer_graph(b)
    for na, nb in zip(ga.matmuls, gb.matmuls):
        assert np.array_equal(na.weights, nb.weights)
        assert (na.thresholds is None and nb.thresholds is None) or np.array_equal(na.thresholds, nb.thresholds)


# -- pruning -----------------------------------------------------------------------------------------

def test_cubic_schedule_hand_worked():
    kw = dict(s_i=0.0, s_f=0.8, t0=10, n=4, dt=5)
    assert cubic_sparsity(0, **kw) == 0.0 and cubic_sparsity(10, **kw) == 0.0
    assert cubic_sparsity(20, **kw) == pytest.approx(0.8 * (1 - 0.125))  # (1 - 10/20)^3 = 1/8
    assert cubic_sparsity(30, **kw) == 0.8 and cubic_sparsity(99, **kw) == 0.8


def test_magnitude_masks_exact_counts():
    w = np.array([[0.5, -0.1, 0.1, 2.0], [0.0, -3.0, 0.1, 0.2]])
    m = magnitude_mask(w, 0.5)  # four smallest: 0.0, -0.1, 0.1 (first), 0.1 (second), ties by index
    assert m.tolist() == [[True, False, False, True], [False, True, False, True]]
    masks = global_magnitude_masks({"a": np.array([1.0, 5.0]), "b": np.array([2.0, 3.0, 0.5])}, 0.4)
    assert masks["a"].tolist() == [False, True] and masks["b"].tolist() == [True, True, False]


def test_gradual_pruning_export_has_exact_zero_count(digits):
    s = 0.9
    net = train_zoo(digits, ZooConfig(arch="mlp:64,32", weights="int:8", acts="int:4", epochs=4, prune=s,
                                      prune_every=5))
    graph = assert_exact_export(net, digits)
    for node in graph.matmuls[:-1]:
        assert int(np.sum(node.weights == 0)) == int(np.floor(s * node.weights.size + 0.5)), node.name
    assert int(np.sum(graph.matmuls[-1].weights == 0)) < graph.matmuls[-1].weights.size // 4
    assert op_counts(net)["multiply"] < 0.2 * (64 * 64 + 64 * 32 + 32 * 10)


def test_binary_weights_cannot_be_pruned(digits):
    with pytest.raises(LowbitError, match=r"^pruning needs weights with a zero code"):
        train_zoo(digits, ZooConfig(arch="mlp:16", weights="binary", acts="binary", epochs=1, prune=0.5,
                                    first_bits=None))


def test_filter_pruning_shrinks_the_layer(digits):
    net = train_zoo(digits, ZooConfig(arch="cnv-small", weights="int:4", acts="int:2", epochs=1, batch_size=100,
                                      recalibrate=200))
    w0, w1 = net.params["W0"], net.params["W1"]
    small = prune_filters(net, 0, 10)
    kept = np.sort(np.argsort(-np.abs(w0).sum(axis=1), kind="stable")[:10])
    assert small.layers[0].out == 10 and small.params["W0"].shape == (10, 9)
    assert np.array_equal(small.params["W0"], w0[kept])
    assert np.array_equal(small.params["W1"], w1.reshape(32, 9, 16)[:, :, kept].reshape(32, 90))
    assert np.array_equal(small.state["mean0"], net.state["mean0"][kept])
    graph = assert_exact_export(small, digits)
    assert graph.matmuls[0].mh == 10 and graph.matmuls[1].mw == 90
    # Through a flatten: conv1's 32 channels -> 20, so fc2 loses (2 * 2) * 12 inputs.
    smaller = prune_filters(small, 1, 20)
    assert smaller.params["W2"].shape == (64, 2 * 2 * 20)
    assert_exact_export(smaller, digits)


def test_inq_partitions_reach_every_weight(digits):
    cfg = ZooConfig(arch="mlp:32", weights="inq:5", acts="int:2", epochs=3, first_bits=None, last_bits=None)
    net = train_zoo(digits, cfg)
    for i in range(2):
        assert net.state[f"inq_frozen{i}"].all()
        q = net.quantized_weights(i)
        assert q.dtype == DataType.pow2(5) and DataType.pow2(5).contains(q.codes)
    with pytest.raises(LowbitError, match=r"^INQ needs at least 3 epochs"):
        train_zoo(digits, dataclasses.replace(cfg, epochs=2))


# -- weight sharing ------------------------------------------------------------------------------------

def test_kmeans_linear_init_hand_worked():
    c, a = kmeans_1d(np.array([0.0, 0.1, 0.9, 1.0, 2.0]), 3)  # init 0, 1, 2
    assert c.tolist() == pytest.approx([0.05, 0.95, 2.0]) and a.tolist() == [0, 0, 1, 1, 2]
    cb, idx = share_layer(np.array([[0.0, -1.0, -0.9], [1.0, 1.1, 0.0]]), 3)
    assert cb.tolist() == pytest.approx([0.0, -0.95, 1.05]) and idx.tolist() == [[0, 1, 1], [2, 2, 0]]


def test_weight_sharing_exports_k_values_and_codebooks(digits, tmp_path):
    k = 8
    net = train_zoo(digits, ZooConfig(arch="mlp:32", weights="float", acts="int:2", epochs=2, prune=0.5, share=k,
                                      share_epochs=1))
    graph = assert_exact_export(net, digits)
    for i, node in enumerate(graph.matmuls):
        assert node.weight_dtype == DataType.int(8)
        assert len(np.unique(np.abs(node.weight_values))) <= k
    assert int(np.sum(graph.matmuls[0].weights == 0)) == 32 * 64 // 2
    path = export_codebooks(net, tmp_path / "cb.npz")
    with np.load(path) as z:
        assert z["indices_0"].dtype == np.uint8 and z["indices_0"].shape == (32, 64)
        assert z["codebook_0"].shape == (k,) and z["codebook_0"][0] == 0 and z["codes_0"][0] == 0
        # Indices into the integer codebook reproduce the exported weights (before channel negation).
        rebuilt = z["codes_0"][z["indices_0"]]
        assert np.array_equal(np.abs(rebuilt), np.abs(graph.matmuls[0].weights))
    assert weight_memory_bits(net) == (32 * 64 + 10 * 32) * 3 + 2 * k * 8
    # The sparse engine's input: EIE images whose dense weights are the layer's integer codes.
    images = sparse_images(net, pes=4)
    assert sorted(images) == [0, 1]
    for i, image in images.items():
        assert np.array_equal(dense_weights(image), net.quantized_weights(i).codes)


def test_ste_variants_and_sgd_differ_and_export(digits):
    base = ZooConfig(arch="mlp:24", weights="binary", acts="binary", epochs=2, first_bits=None, last_bits=None)
    gate = train_zoo(digits, base)
    ident = train_zoo(digits, dataclasses.replace(base, ste="identity"))
    sgd = train_zoo(digits, dataclasses.replace(base, optimizer="sgd", lr=0.05))
    assert not np.array_equal(gate.params["W1"], ident.params["W1"])
    assert not np.array_equal(gate.params["W1"], sgd.params["W1"])
    assert all(np.abs(n.params["W0"]).max() <= 1 for n in (gate, ident, sgd))  # latent binary weights clipped
    for net in (ident, sgd):
        assert_exact_export(net, digits)
    with pytest.raises(ValueError, match=r"^ste must be 'identity' or 'gate', not 'tanh'$"):
        ZooConfig(ste="tanh")
