"""NumPy training blocks: im2col layout against the integer oracle, and every backward pass against
central finite differences (float64)."""

import numpy as np
import pytest

from lowbit.ir.datatypes import DataType
from lowbit.quant.train.net import ActSpec, LayerSpec, WeightSpec, init_net
from lowbit.quant.train.nn import (SGD, Adam, bn_backward, bn_forward, col2im, im2col, maxpool_backward,
                                   maxpool_forward, softmax_cross_entropy)
from lowbit.quant.train.loop import _train_step
from lowbit.sw_reference import maxpool2d, sliding_window


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 0), (2, 2, 1), (1, 1, 0)])
def test_im2col_is_the_sliding_window_order(k, stride, pad):
    x = np.random.default_rng(0).integers(0, 9, (2, 7, 6, 3))
    assert np.array_equal(im2col(x.astype(np.float64), k, stride, pad, 5.0),
                          sliding_window(x, k, stride, pad, 5).astype(np.float64))


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 0), (2, 2, 1)])
def test_col2im_is_the_adjoint(k, stride, pad):
    # <im2col(x), g> == <x, col2im(g)> for every x and g (pad value 0).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 6, 3))
    cols = im2col(x, k, stride, pad)
    g = rng.normal(size=cols.shape)
    assert np.isclose((cols * g).sum(), (x * col2im(g, x.shape, k, stride, pad)).sum(), rtol=1e-12)


def test_maxpool_matches_oracle_and_routes_gradients():
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 6 * 6 * 2).reshape(2, 6, 6, 2)  # distinct values: one maximum per window
    out, cache = maxpool_forward(x.astype(np.float64), 2)
    assert np.array_equal(out, maxpool2d(x, 2))
    g = rng.normal(size=out.shape)
    dx = maxpool_backward(g, cache)
    assert np.isclose(dx.sum(), g.sum()) and np.count_nonzero(dx) == g.size
    assert np.array_equal(dx[x == np.repeat(np.repeat(out, 2, 1), 2, 2)], dx[dx != 0])


def numeric_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i]
        a[i] = old + eps
        fp = f()
        a[i] = old - eps
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def test_bn_and_softmax_gradients():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(6, 4))
    gamma, beta = rng.normal(size=4), rng.normal(size=4)
    labels = rng.integers(0, 4, 6)

    def loss():
        z, _ = bn_forward(y, gamma, beta, None, None, 1e-5, training=True)
        return softmax_cross_entropy(z, labels)[0]
    z, cache = bn_forward(y, gamma, beta, None, None, 1e-5, training=True)
    _, dz = softmax_cross_entropy(z, labels)
    dy, dgamma, dbeta = bn_backward(dz, gamma, cache)
    for analytic, param in ((dy, y), (dgamma, gamma), (dbeta, beta)):
        assert np.allclose(analytic, numeric_grad(loss, param), atol=1e-7, rtol=1e-5)


def test_network_backward_matches_finite_differences():
    # Float weights and ReLU: a smooth network (conv, pad, pool, BN, flatten, fc) away from kinks.
    rng = np.random.default_rng(4)
    layers = (LayerSpec("conv", 3, 3, 1, 1, 2), LayerSpec("conv", 4, 3, 2, 1, 0), LayerSpec("fc", 5),
              LayerSpec("fc", 3))
    net = init_net(layers, WeightSpec("float"), ActSpec("float"), DataType.uint(4), (6, 6, 2), rng)
    x = net.prepare_input(rng.integers(0, 16, (5, 72)))
    y = rng.integers(0, 3, 5)
    _, grads = _train_step(net, x, y, "gate", None)
    for key in ("W0", "W1", "W2", "W3", "gamma0", "beta1", "tau"):
        num = numeric_grad(lambda: _train_step(net, x, y, "gate", None)[0], net.params[key])
        assert np.allclose(grads[key], num, atol=1e-6, rtol=1e-4), key


def test_optimisers_step():
    p = {"a": np.array([1.0, -1.0])}
    Adam(p).step({"a": np.array([2.0, -0.5])}, 0.1)
    assert np.allclose(p["a"], [0.9, -0.9])  # Adam's first step moves each entry by lr
    q = {"a": np.array([1.0])}
    opt = SGD(q, momentum=0.5)
    opt.step({"a": np.array([1.0])}, 0.1)
    opt.step({"a": np.array([1.0])}, 0.1)
    assert np.allclose(q["a"], [1.0 - 0.1 - 0.15])
