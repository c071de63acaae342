"""NumPy building blocks for training: im2col convolution, max-pool, batch-norm, activations,
softmax cross-entropy, and the Adam and SGD optimisers (all float64, vectorised).

Layouts follow the integer graph: images are ``(B, H, W, C)``; a convolution's weights are a
matrix ``(OC, K * K * IC)`` in ``(ky, kx, c)`` order, the order of
:func:`~lowbit.sw_reference.sliding_window`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "im2col",
    "col2im",
    "depthwise_matrix",
    "depthwise_taps",
    "maxpool_forward",
    "maxpool_backward",
    "bn_forward",
    "bn_backward",
    "softmax_cross_entropy",
    "distillation_loss",
    "Adam",
    "SGD",
]


def im2col(x: np.ndarray, k: int, stride: int, pad: int, pad_value: float = 0.0) -> np.ndarray:
    """Windows of ``x`` ``(B, H, W, C)``: ``(B, OH, OW, K * K * C)`` in ``(ky, kx, c)`` order."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=pad_value)
    b, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.empty((b, oh, ow, k * k * c), dtype=x.dtype)
    for ky in range(k):
        for kx in range(k):
            j = (ky * k + kx) * c
            out[..., j : j + c] = x[
                :,
                ky : ky + stride * (oh - 1) + 1 : stride,
                kx : kx + stride * (ow - 1) + 1 : stride,
                :,
            ]
    return out


def col2im(
    cols: np.ndarray, shape: tuple[int, int, int, int], k: int, stride: int, pad: int
) -> np.ndarray:
    """Adjoint of :func:`im2col`: sums the window gradients back onto the input ``shape``."""
    b, h, w, c = shape
    hp, wp = h + 2 * pad, w + 2 * pad
    oh, ow = cols.shape[1], cols.shape[2]
    dx = np.zeros((b, hp, wp, c))
    for ky in range(k):
        for kx in range(k):
            j = (ky * k + kx) * c
            dx[
                :,
                ky : ky + stride * (oh - 1) + 1 : stride,
                kx : kx + stride * (ow - 1) + 1 : stride,
                :,
            ] += cols[..., j : j + c]
    return dx[:, pad : pad + h, pad : pad + w, :]


def _diagonal(c: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of tap ``j`` of channel ``c`` in a ``(C, T * C)`` window matrix."""
    return np.arange(c)[:, None], np.arange(t)[None, :] * c + np.arange(c)[:, None]


def depthwise_matrix(w: np.ndarray) -> np.ndarray:
    """The block-diagonal ``(C, T * C)`` matrix of a depthwise convolution's weights ``w (C, T)``
    (channel ``c``'s kernel over ``T = K * K`` taps): ``w[c, j]`` at column ``j * C + c``, the
    column of channel ``c``'s tap ``j`` in :func:`im2col`'s ``(ky, kx, c)`` windows, zero
    elsewhere; ``windows @ depthwise_matrix(w).T`` is the depthwise convolution."""
    c, t = w.shape
    out = np.zeros((c, t * c), dtype=w.dtype)
    out[_diagonal(c, t)] = w
    return out


def depthwise_taps(g: np.ndarray) -> np.ndarray:
    """The adjoint of :func:`depthwise_matrix`: the ``(C, T)`` entries of a ``(C, T * C)`` matrix
    at the depthwise positions (the gradient of the weights from that of the dense matrix)."""
    c = g.shape[0]
    return g[_diagonal(c, g.shape[1] // c)]


def maxpool_forward(x: np.ndarray, k: int) -> tuple[np.ndarray, tuple]:
    """Max-pool with stride ``k`` (``H``, ``W`` cropped to multiples of ``k``); returns the cache
    for backward."""
    b, h, w, c = x.shape
    oh, ow = h // k, w // k
    win = (
        x[:, : oh * k, : ow * k, :]
        .reshape(b, oh, k, ow, k, c)
        .transpose(0, 1, 3, 5, 2, 4)
        .reshape(b, oh, ow, c, k * k)
    )
    arg = win.argmax(axis=-1)
    out = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return out, (x.shape, arg, k)


def maxpool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    shape, arg, k = cache
    b, h, w, c = shape
    oh, ow = dout.shape[1], dout.shape[2]
    dwin = np.zeros((b, oh, ow, c, k * k))
    np.put_along_axis(dwin, arg[..., None], dout[..., None], axis=-1)
    dx = np.zeros(shape)
    dx[:, : oh * k, : ow * k, :] = (
        dwin.reshape(b, oh, ow, c, k, k).transpose(0, 1, 4, 2, 5, 3).reshape(b, oh * k, ow * k, c)
    )
    return dx


def bn_forward(y: np.ndarray, gamma, beta, mean, var, eps: float, *, training: bool):
    """Batch-norm over every axis but the last: ``gamma (y - mean) / sigma + beta``,
    ``sigma = sqrt(var + eps)``.

    In training the batch statistics are used (and returned); in evaluation the stored ones.
    """
    if training:
        axes = tuple(range(y.ndim - 1))
        mean = y.mean(axis=axes)
        var = y.var(axis=axes)
    sigma = np.sqrt(var + eps)
    xhat = (y - mean) / sigma
    return gamma * xhat + beta, (xhat, sigma, mean, var)


def bn_backward(dz: np.ndarray, gamma, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dy, dgamma, dbeta)`` of training-mode batch-norm."""
    xhat, sigma = cache[0], cache[1]
    axes = tuple(range(dz.ndim - 1))
    n = dz.size // dz.shape[-1]
    dbeta = dz.sum(axis=axes)
    dgamma = (dz * xhat).sum(axis=axes)
    dxhat = dz * gamma
    dy = (dxhat - dxhat.sum(axis=axes) / n - xhat * (dxhat * xhat).sum(axis=axes) / n) / sigma
    return dy, dgamma, dbeta


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = float(-np.log(p[np.arange(n), y] + 1e-300).mean())
    p[np.arange(n), y] -= 1
    return loss, p / n


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def distillation_loss(
    logits: np.ndarray,
    y: np.ndarray,
    teacher_logits: np.ndarray,
    temperature: float,
    alpha: float,
) -> tuple[float, np.ndarray]:
    """Knowledge distillation (Hinton, Vinyals & Dean 2015): the loss and its gradient with
    respect to the student's ``logits``.

    ``(1 - alpha) * CE(logits, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(logits / T))``,
    both terms means over the batch of ``N``. The ``T^2`` keeps the soft term's gradient,
    ``alpha * T * (softmax(logits / T) - softmax(teacher / T)) / N``, of the same size as the hard
    term's whatever the temperature. ``alpha = 0`` gives exactly :func:`softmax_cross_entropy`.
    """
    t = float(temperature)
    ce, dce = softmax_cross_entropy(logits, y)
    log_ps = _log_softmax(logits / t)
    log_pt = _log_softmax(np.asarray(teacher_logits, dtype=np.float64) / t)
    pt = np.exp(log_pt)
    n = logits.shape[0]
    kl = float((pt * (log_pt - log_ps)).sum() / n)
    loss = (1 - alpha) * ce + alpha * t * t * kl
    return loss, (1 - alpha) * dce + (alpha * t) * (np.exp(log_ps) - pt) / n


class Adam:
    """Adam (Kingma & Ba) over a dict of float64 arrays, updated in place."""

    def __init__(self, params: dict, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.params = params
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.beta1, self.beta2, self.eps, self.t = beta1, beta2, eps, 0

    def step(self, grads: dict, lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for k, g in grads.items():
            p, m, v = self.params[k], self.m[k], self.v[k]
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


class SGD:
    """SGD with (heavy-ball) momentum over a dict of float64 arrays, updated in place."""

    def __init__(self, params: dict, momentum: float = 0.9):
        self.params, self.momentum = params, momentum
        self.buf = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads: dict, lr: float) -> None:
        for k, g in grads.items():
            b = self.buf[k]
            b *= self.momentum
            b += g
            self.params[k] -= lr * b
