"""The binarized-MLP trainer and its export: the integer graph must make the float model's decisions
on every sample, with the same integer scores."""

import dataclasses

import numpy as np
import pytest

from lowbit.ir import BIPOLAR, DataType, IntegerGraph
from lowbit.quant.data import Dataset, load_digits_split
from lowbit.quant.fold import accumulator_range
from lowbit.quant.train.binary_mlp import BatchNorm, BinaryMLP, TrainConfig, train_binary_mlp
from lowbit.sw_reference import bits_to_bipolar

SMALL = TrainConfig(hidden=(32, 24), epochs=4, batch_size=64)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_digits_split()


@pytest.fixture(scope="module")
def model(data) -> BinaryMLP:
    """One training run (the default widths, fewer epochs), shared by the tests of this module."""
    return train_binary_mlp(data.x_train, data.y_train, TrainConfig(epochs=10))


def assert_graph_matches(model: BinaryMLP, x: np.ndarray) -> IntegerGraph:
    graph = model.to_integer_graph()
    assert np.array_equal(graph.predict(x), model.predict(x))
    assert np.array_equal(graph.scores(x), model.integer_scores(x))
    # The hidden layers' output bits are the float model's activations: negating a channel in the
    # graph leaves its output bit, hence the next layer's input, unchanged.
    trace = graph.trace(x)
    for bits, act in zip(trace[:-1], model.hidden_activations(x)):
        assert np.array_equal(bits_to_bipolar(bits), act)
    return graph


# -- data -------------------------------------------------------------------------------------------

def test_digits_split(data):
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert data.x_train.dtype == np.int64 and data.y_train.dtype == np.int64
    assert data.x_train.min() == 0 and data.x_train.max() == 16 and data.x_test.max() <= 16
    assert data.input_dtype == DataType.uint(5) and data.classes == 10 and data.features == 64
    # Stratified: each class (174..183 samples) has about a quarter of its samples in the test split.
    test = np.bincount(data.y_test, minlength=10)
    total = test + np.bincount(data.y_train, minlength=10)
    assert (np.abs(test - total / 4) <= 1).all()
    again = load_digits_split()
    assert np.array_equal(again.x_test, data.x_test) and np.array_equal(again.y_train, data.y_train)


# -- the central property ---------------------------------------------------------------------------

def test_graph_matches_model_on_every_sample(model, data):
    graph = assert_graph_matches(model, data.x_test)
    assert_graph_matches(model, data.x_train)
    assert [n.name for n in graph.nodes] == ["fc0", "fc1", "fc2"]
    assert graph.input_dtype == DataType.uint(5) and graph.nodes[0].input_dtype == DataType.uint(5)
    assert [n.output_dtype for n in graph.nodes[:-1]] == [BIPOLAR, BIPOLAR]
    assert [(n.mh, n.mw) for n in graph.nodes] == [(256, 64), (256, 256), (10, 256)]
    assert graph.nodes[-1].thresholds is None
    assert all(n.thresholds.shape == (n.mh, 1) and n.thresholds.dtype == np.int64 for n in graph.nodes[:-1])
    # Logits are the integer scores times the positive scale, so their arg-max is the same.
    assert np.array_equal(model.forward(data.x_test), model.integer_scores(data.x_test) * model.logit_scale)


def test_accuracy(model, data):
    accuracy = np.mean(model.to_integer_graph().predict(data.x_test) == data.y_test)
    assert accuracy >= 0.90


def test_weight_bits_follow_sign_and_negation(model):
    graph = model.to_integer_graph()
    for i, (node, w) in enumerate(zip(graph.nodes, model.weights)):
        bits = (w >= 0).astype(np.uint8)
        if i < len(model.batchnorms):
            bits[model.batchnorms[i].gamma < 0] ^= 1
        assert np.array_equal(node.weights, bits)


# -- forced batch-norm signs --------------------------------------------------------------------------

def with_forced_gammas(model: BinaryMLP, data: Dataset, rng) -> BinaryMLP:
    """Negative gamma on some channels, gamma == 0 (both signs of beta) on others, and exact ties
    (beta = 0 and a mean equal to an accumulator value that occurs) on others, in every layer."""
    bns, h = [], data.x_test.astype(np.float64)
    for w, bn in zip(model.binary_weights, model.batchnorms):
        y = h @ w.T
        c = bn.channels
        gamma, beta, mean = bn.gamma.copy(), bn.beta.copy(), bn.mean.copy()
        ch = rng.permutation(c)
        neg, zero_pos, zero_neg, tie = ch[: c // 3], ch[c // 3: c // 3 + 3], ch[c // 3 + 3: c // 3 + 6], ch[-6:]
        gamma[neg] = -gamma[neg]
        gamma[zero_pos], beta[zero_pos] = 0.0, 0.5
        gamma[zero_neg], beta[zero_neg] = 0.0, -0.5
        gamma[tie[:3]] = -np.abs(gamma[tie[:3]])
        beta[tie] = 0.0
        mean[tie] = y[rng.integers(0, len(y), len(tie)), tie]  # z == 0 exactly for that sample
        new = BatchNorm(gamma, beta, mean, bn.var, bn.eps)
        bns.append(new)
        h = np.where(new(y) >= 0, 1.0, -1.0)
    return dataclasses.replace(model, batchnorms=tuple(bns))


def test_forced_negative_and_zero_gamma(model, data):
    forced = with_forced_gammas(model, data, np.random.default_rng(0))
    graph = assert_graph_matches(forced, data.x_test)
    for node, w, bn in zip(graph.nodes, forced.weights, forced.batchnorms):
        neg = bn.gamma < 0
        assert neg.sum() >= bn.channels // 3
        assert np.array_equal(node.weights[neg], 1 - (w[neg] >= 0))
        assert np.array_equal(node.weights[~neg], (w[~neg] >= 0).astype(np.uint8))
        lo, hi = accumulator_range(node.input_dtype, node.mw)
        zero = bn.gamma == 0
        assert np.array_equal(node.thresholds[zero, 0], np.where(bn.beta[zero] >= 0, lo, hi + 1))
    # The forced model is a different network; it still must differ from the trained one somewhere,
    # or this test would not exercise the negation.
    assert not np.array_equal(forced.hidden_activations(data.x_test)[0],
                              model.hidden_activations(data.x_test)[0])


def test_negating_a_channel_leaves_its_output_bit():
    # The reasoning behind "the next layer needs no change": flip the sign of gamma and of the
    # channel's weights together (and move the mean with them); every output is the same.
    rng = np.random.default_rng(3)
    x = rng.integers(0, 17, (200, 64))
    w = rng.uniform(-1, 1, (16, 64))
    bn = BatchNorm(rng.uniform(0.5, 2, 16), rng.normal(0, 1, 16), rng.normal(0, 20, 16),
                   rng.uniform(100, 400, 16), 1e-5)
    w_last = rng.uniform(-1, 1, (10, 16))
    m = BinaryMLP((w, w_last), (bn,), 0.25)
    flipped = BinaryMLP((-np.where(w >= 0, 1.0, -1.0), w_last),
                        (BatchNorm(-bn.gamma, bn.beta, -bn.mean, bn.var, bn.eps),), 0.25)
    assert np.array_equal(m.hidden_activations(x)[0], flipped.hidden_activations(x)[0])
    assert np.array_equal(m.integer_scores(x), flipped.integer_scores(x))
    g, gf = m.to_integer_graph(), flipped.to_integer_graph()
    assert np.array_equal(g.nodes[0].weights, gf.nodes[0].weights)
    assert np.array_equal(g.nodes[0].thresholds, gf.nodes[0].thresholds)
    assert np.array_equal(g.nodes[1].weights, gf.nodes[1].weights)
    assert_graph_matches(m, x)


# -- training ---------------------------------------------------------------------------------------

def test_seeded_reproducibility(data):
    a = train_binary_mlp(data.x_train, data.y_train, SMALL)
    b = train_binary_mlp(data.x_train, data.y_train, SMALL)
    c = train_binary_mlp(data.x_train, data.y_train, dataclasses.replace(SMALL, seed=1))
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    for u, v in zip(a.batchnorms, b.batchnorms):
        for name in ("gamma", "beta", "mean", "var"):
            assert np.array_equal(getattr(u, name), getattr(v, name))
    assert not np.array_equal(a.weights[0], c.weights[0])
    assert_graph_matches(a, data.x_test)


def test_progress_and_shapes(data):
    calls = []
    m = train_binary_mlp(data.x_train, data.y_train, dataclasses.replace(SMALL, hidden=(16,), epochs=3),
                         progress=lambda e, n, loss: calls.append((e, n, loss)))
    assert [c[:2] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert all(np.isfinite(c[2]) and c[2] > 0 for c in calls)
    assert [w.shape for w in m.weights] == [(16, 64), (10, 16)]
    assert all(np.abs(w).max() <= 1 for w in m.weights)
    assert m.logit_scale == 0.25  # 1 / sqrt(16)
    assert_graph_matches(m, data.x_test)


def test_no_hidden_layer(data):
    m = train_binary_mlp(data.x_train, data.y_train, dataclasses.replace(SMALL, hidden=(), epochs=2))
    graph = assert_graph_matches(m, data.x_test)
    assert len(graph.nodes) == 1 and graph.nodes[0].input_dtype == DataType.uint(5)


def test_without_recalibration(data):
    m = train_binary_mlp(data.x_train, data.y_train, dataclasses.replace(SMALL, recalibrate_bn=False))
    assert_graph_matches(m, data.x_test)


# -- errors -----------------------------------------------------------------------------------------

def test_config_errors():
    with pytest.raises(ValueError, match=r"^hidden must be a tuple of positive integers, not \(256, 0\)$"):
        TrainConfig(hidden=(256, 0))
    with pytest.raises(ValueError, match=r"^epochs must be a positive integer, not 0$"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"^lr must be a positive number, not -0\.1$"):
        TrainConfig(lr=-0.1)
    with pytest.raises(ValueError, match=r"^bn_momentum must be a number in \(0, 1\], not 0$"):
        TrainConfig(bn_momentum=0)
    with pytest.raises(ValueError, match=r"^logit_scale must be a positive number or None, not 0\.0$"):
        TrainConfig(logit_scale=0.0)


def test_data_errors(data):
    with pytest.raises(ValueError, match=r"^x_train values must lie in \[0, 31\] \(UINT5\), found \[0, 32\]$"):
        train_binary_mlp(np.array([[0, 32]]), np.array([0]), SMALL)
    with pytest.raises(ValueError, match=r"^x_train must be a non-empty 2-D integer array, not float64 \(1, 2\)$"):
        train_binary_mlp(np.array([[0.0, 1.0]]), np.array([0]), SMALL)
    with pytest.raises(ValueError, match=r"^y_train must be non-negative integer labels of shape \(1,\)"):
        train_binary_mlp(np.array([[0, 1]]), np.array([0, 1]), SMALL)
    with pytest.raises(ValueError, match=r"^input_dtype must be an integer \(UINT or INT\) DataType"):
        train_binary_mlp(data.x_train, data.y_train, SMALL, input_dtype=BIPOLAR)
