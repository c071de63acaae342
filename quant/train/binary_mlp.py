"""A NumPy trainer for binarized multi-layer perceptrons, and their export to an integer graph.

The network (Courbariaux, Hubara et al., "Binarized Neural Networks", 2016), all in float64:

* every layer has binary weights ``sign(w)`` of latent float weights ``w`` (``sign(0) = +1``)
  and no bias; the latent weights are clipped to ``[-1, 1]`` after every step and the gradient
  passes straight through ``sign`` where ``|w| <= 1``;
* hidden layers: ``y = x @ sign(W).T``, batch-norm ``z = gamma * (y - mu) / sigma + beta`` with
  ``sigma = sqrt(var + eps)`` (batch statistics in training, stored statistics in evaluation),
  then the activation ``sign(z)`` with the straight-through gradient of ``hardtanh``
  (passed where ``|z| <= 1``);
* the first layer takes the raw integer inputs (for the digits, pixels 0..16), unscaled, so the
  export needs no input scale;
* the last layer has binary weights and no batch-norm: ``logits = y * s`` with a fixed positive
  scale ``s``, so the arg-max of the integer scores ``y`` is the arg-max of the logits.

:meth:`BinaryMLP.to_integer_graph` folds each hidden layer's batch-norm and sign into integer
thresholds with :func:`~lowbit.quant.fold.fold_bn_sign`; the graph's class decisions then equal
the float model's for every input.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ...ir.datatypes import BIPOLAR, DataType, Kind
from ...ir.graph import IntegerGraph, MatMulThreshold
from ..fold import fold_bn_sign

__all__ = ["TrainConfig", "BatchNorm", "BinaryMLP", "train_binary_mlp"]

logger = logging.getLogger(__name__)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_binary_mlp`.

    Attributes
    ----------
    hidden : tuple of int
        Widths of the hidden layers (may be empty: a single binary linear layer).
    epochs : int
        Passes over the training set.
    batch_size : int
        Minibatch size (the last, smaller minibatch of an epoch is used too).
    lr : float
        Initial Adam learning rate; it decays along a cosine to ``lr * lr_final`` at the end.
    lr_final : float
        Final learning rate as a fraction of ``lr``, in ``[0, 1]``.
    bn_momentum : float
        Weight of the newest batch in the running batch-norm statistics, in ``(0, 1]``.
    bn_eps : float
        Batch-norm epsilon (``sigma = sqrt(var + eps)``), positive.
    logit_scale : float or None
        Positive scale of the last layer's scores; ``None`` means ``1 / sqrt(MW)`` of that layer.
    recalibrate_bn : bool
        After training, replace the running statistics by the exact mean and (biased) variance
        over the whole training set, layer by layer, in evaluation mode.
    seed : int
        Seed of :func:`numpy.random.default_rng` (initial weights and minibatch order).
    """

    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-2
    lr_final: float = 0.01
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    logit_scale: float | None = None
    recalibrate_bn: bool = True
    seed: int = 0

    def __post_init__(self):
        hidden = self.hidden
        if not isinstance(hidden, (tuple, list)) or not all(_is_int(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a tuple of positive integers, not {hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, not {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {self.batch_size!r}")
        if not _is_real(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, not {self.lr!r}")
        if not _is_real(self.lr_final) or not 0 <= self.lr_final <= 1:
            raise ValueError(f"lr_final must be a number in [0, 1], not {self.lr_final!r}")
        if not _is_real(self.bn_momentum) or not 0 < self.bn_momentum <= 1:
            raise ValueError(f"bn_momentum must be a number in (0, 1], not {self.bn_momentum!r}")
        if not _is_real(self.bn_eps) or self.bn_eps <= 0:
            raise ValueError(f"bn_eps must be a positive number, not {self.bn_eps!r}")
        if self.logit_scale is not None and (
            not _is_real(self.logit_scale) or self.logit_scale <= 0
        ):
            raise ValueError(
                f"logit_scale must be a positive number or None, not {self.logit_scale!r}"
            )
        if not isinstance(self.recalibrate_bn, bool):
            raise TypeError(f"recalibrate_bn must be a bool, not {self.recalibrate_bn!r}")
        if not _is_int(self.seed):
            raise TypeError(f"seed must be an integer, not {self.seed!r}")


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Evaluation-mode batch-norm of one layer: ``z = gamma * (y - mean) / sigma + beta``."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float

    def __post_init__(self):
        arrays = {}
        for name in ("gamma", "beta", "mean", "var"):
            a = np.array(getattr(self, name), dtype=np.float64)
            if a.ndim != 1:
                raise ValueError(f"{name} must be a 1-D array, not shape {a.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"{name} must be finite")
            arrays[name] = a
        if len({a.shape for a in arrays.values()}) != 1:
            raise ValueError(
                "gamma, beta, mean and var must have the same shape, not "
                + ", ".join(str(a.shape) for a in arrays.values())
            )
        if (arrays["var"] < 0).any():
            raise ValueError("var must be non-negative")
        if not _is_real(self.eps) or self.eps <= 0:
            raise ValueError(f"eps must be a positive number, not {self.eps!r}")
        for name, a in arrays.items():
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        object.__setattr__(self, "eps", float(self.eps))

    @property
    def channels(self) -> int:
        return self.gamma.shape[0]

    @property
    def sigma(self) -> np.ndarray:
        """``sqrt(var + eps)`` in float64: the value both evaluation and folding use."""
        return np.sqrt(self.var + self.eps)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """``gamma * (y - mean) / sigma + beta`` in float64, evaluated in this order."""
        return self.gamma * (y - self.mean) / self.sigma + self.beta


def _sign(a: np.ndarray) -> np.ndarray:
    """``sign`` with ``sign(0) = +1``, as float64 ``+-1``."""
    return np.where(a >= 0, 1.0, -1.0)


@dataclass(frozen=True, eq=False)
class BinaryMLP:
    """A trained binarized MLP (evaluation mode).

    Attributes
    ----------
    weights : tuple of numpy.ndarray
        Latent float weights per layer, shape ``(out, in)``; the layer uses ``sign(w)``.
    batchnorms : tuple of BatchNorm
        One per hidden layer (every layer but the last).
    logit_scale : float
        Positive scale of the last layer: ``logits = scores * logit_scale``.
    input_dtype : DataType
        Integer data type of the inputs (``UINT`` or ``INT``), the graph's input type.
    """

    weights: tuple[np.ndarray, ...]
    batchnorms: tuple[BatchNorm, ...]
    logit_scale: float
    input_dtype: DataType = field(default=DataType.uint(5))

    def __post_init__(self):
        weights = tuple(np.array(w, dtype=np.float64) for w in self.weights)
        batchnorms = tuple(self.batchnorms)
        if not weights:
            raise ValueError("weights must hold at least one layer")
        if len(batchnorms) != len(weights) - 1:
            raise ValueError(
                f"batchnorms must hold one entry per hidden layer ({len(weights) - 1}), "
                f"not {len(batchnorms)}"
            )
        for i, w in enumerate(weights):
            if w.ndim != 2:
                raise ValueError(f"weights[{i}] must be a 2-D array, not shape {w.shape}")
            if i and w.shape[1] != weights[i - 1].shape[0]:
                raise ValueError(
                    f"weights[{i}] has {w.shape[1]} inputs, but layer {i - 1} has "
                    f"{weights[i - 1].shape[0]} outputs"
                )
            if i < len(batchnorms) and batchnorms[i].channels != w.shape[0]:
                raise ValueError(
                    f"batchnorms[{i}] has {batchnorms[i].channels} channels, "
                    f"but layer {i} has {w.shape[0]} outputs"
                )
            w.flags.writeable = False
        if not _is_real(self.logit_scale) or self.logit_scale <= 0:
            raise ValueError(f"logit_scale must be a positive number, not {self.logit_scale!r}")
        if not isinstance(self.input_dtype, DataType) or self.input_dtype.kind is Kind.BIPOLAR:
            raise ValueError(
                f"input_dtype must be an integer (UINT or INT) DataType, not {self.input_dtype!r}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "batchnorms", batchnorms)
        object.__setattr__(self, "logit_scale", float(self.logit_scale))

    @property
    def input_size(self) -> int:
        return self.weights[0].shape[1]

    @property
    def classes(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def binary_weights(self) -> tuple[np.ndarray, ...]:
        """``sign(w)`` per layer, as float64 ``+-1`` (``sign(0) = +1``)."""
        return tuple(_sign(w) for w in self.weights)

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (B, {self.input_size}), not {x.shape}")
        return x.astype(np.float64)

    def _run(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        h, hidden = self._check_input(x), []
        wb = self.binary_weights
        for w, bn in zip(wb[:-1], self.batchnorms):
            h = _sign(bn(h @ w.T))
            hidden.append(h)
        return hidden, h @ wb[-1].T

    def hidden_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """The ``+-1`` outputs of every hidden layer for a batch ``x``, as ``int64``."""
        return [h.astype(np.int64) for h in self._run(x)[0]]

    def integer_scores(self, x: np.ndarray) -> np.ndarray:
        """The last layer's ``+-1`` dot products before the scale, as ``int64``.

        Computed in float64 (exact: every term is an integer far below ``2**53``) and checked to
        be integral before the cast.
        """
        y = self._run(x)[1]
        if not np.array_equal(y, np.round(y)):
            raise ValueError("the last layer's scores are not integers; are the inputs integers?")
        return y.astype(np.int64)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(B, classes)`` in evaluation mode (float64)."""
        return self._run(x)[1] * self.logit_scale

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class decisions: arg-max of the logits, ties towards the lowest class index."""
        return np.argmax(self.forward(x), axis=-1).astype(np.int64)

    def to_integer_graph(self) -> IntegerGraph:
        """Export to an :class:`~lowbit.ir.graph.IntegerGraph` with exact integer thresholds.

        Nodes are named ``fc0``, ``fc1``, ...; the first takes ``input_dtype``, hidden nodes emit
        ``BIPOLAR`` bits with one threshold per channel, and the last emits integer scores. Weight
        bits are 1 where ``w >= 0``; channels whose batch-norm ``gamma`` is negative have their
        weight bits flipped (see :func:`~lowbit.quant.fold.fold_bn_sign`). A hidden output bit is
        the same with or without the flip, so the next layer is unchanged.
        """
        nodes, dtype = [], self.input_dtype
        for i, w in enumerate(self.weights):
            bits = (w >= 0).astype(np.uint8)
            if i < len(self.batchnorms):
                bn = self.batchnorms[i]
                thresholds, negate = fold_bn_sign(
                    bn.gamma, bn.beta, bn.mean, bn.sigma, input_dtype=dtype, mw=w.shape[1]
                )
                bits[negate] ^= 1
                nodes.append(MatMulThreshold(f"fc{i}", dtype, bits, thresholds, BIPOLAR))
                dtype = BIPOLAR
            else:
                nodes.append(MatMulThreshold(f"fc{i}", dtype, bits, None))
        return IntegerGraph(self.input_dtype, tuple(nodes))


# -- training ------------------------------------------------------------------------------------


class _Adam:
    """Adam (Kingma & Ba) over a list of float64 arrays, updated in place."""

    def __init__(self, params: list[np.ndarray], beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.beta1, self.beta2, self.eps, self.t = beta1, beta2, eps, 0

    def step(self, grads: list[np.ndarray], lr: float) -> None:
        self.t += 1
        c1 = 1 - self.beta1**self.t
        c2 = 1 - self.beta2**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def _check_training_data(x, y, input_dtype: DataType) -> tuple[np.ndarray, np.ndarray, int]:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "iu" or x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train must be a non-empty 2-D integer array, not {x.dtype} {x.shape}")
    if x.min() < input_dtype.min or x.max() > input_dtype.max:
        raise ValueError(
            f"x_train values must lie in [{input_dtype.min}, {input_dtype.max}] ({input_dtype}), "
            f"found [{x.min()}, {x.max()}]"
        )
    if y.dtype.kind not in "iu" or y.shape != (x.shape[0],) or y.min() < 0:
        raise ValueError(
            f"y_train must be non-negative integer labels of shape ({x.shape[0]},), "
            f"not {y.dtype} {y.shape}"
        )
    return x.astype(np.float64), y.astype(np.int64), int(y.max()) + 1


def train_binary_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: TrainConfig = TrainConfig(),
    *,
    input_dtype: DataType = DataType.uint(5),
    progress: Callable[[int, int, float], None] | None = None,
) -> BinaryMLP:
    """Train a binarized MLP with softmax cross-entropy and Adam, in float64 NumPy.

    Parameters
    ----------
    x_train : numpy.ndarray, shape (B, features)
        Integer inputs within ``input_dtype``; fed to the first layer unscaled.
    y_train : numpy.ndarray, shape (B,)
        Integer class labels ``0 .. classes - 1``; ``classes`` is ``max(y_train) + 1``.
    config : TrainConfig
        Hyper-parameters; the result depends only on them and the data (seeded).
    input_dtype : DataType, optional
        Integer data type of the inputs (default ``UINT5``), recorded in the model and its graph.
    progress : callable, optional
        Called after every epoch as ``progress(epoch, epochs, loss)`` with ``epoch`` counting
        from 1 and ``loss`` the epoch's mean training loss.

    Returns
    -------
    BinaryMLP
        The model in evaluation mode.
    """
    from threadpoolctl import threadpool_limits

    # Small matrices: one BLAS thread is as fast on an idle machine and many times faster on a busy
    # one.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train_binary_mlp(x_train, y_train, config, input_dtype, progress)


def _train_binary_mlp(x_train, y_train, config, input_dtype, progress) -> BinaryMLP:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, not {config!r}")
    if not isinstance(input_dtype, DataType) or input_dtype.kind is Kind.BIPOLAR:
        raise ValueError(
            f"input_dtype must be an integer (UINT or INT) DataType, not {input_dtype!r}"
        )
    x, y, classes = _check_training_data(x_train, y_train, input_dtype)
    n, features = x.shape
    rng = np.random.default_rng(config.seed)
    sizes = (features, *config.hidden, classes)
    layers = len(sizes) - 1
    scale = config.logit_scale if config.logit_scale is not None else 1 / math.sqrt(sizes[-2])

    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(6 / (fan_in + fan_out))
        weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
    gammas = [np.ones(h) for h in config.hidden]
    betas = [np.zeros(h) for h in config.hidden]
    run_mean = [np.zeros(h) for h in config.hidden]
    run_var = [np.ones(h) for h in config.hidden]
    params = [*weights, *gammas, *betas]
    adam = _Adam(params)
    eps, mom = config.bn_eps, config.bn_momentum
    steps_per_epoch = -(-n // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    onehot = np.eye(classes)[y]

    step = 0
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        loss_sum = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, tb, bsz = x[idx], onehot[idx], len(idx)
            # Forward, keeping what the backward pass needs.
            wbs = [_sign(w) for w in weights]
            h, cache = xb, []
            for i in range(layers - 1):
                yv = h @ wbs[i].T
                mu = yv.mean(axis=0)
                var = yv.var(axis=0)
                sigma = np.sqrt(var + eps)
                yhat = (yv - mu) / sigma
                z = gammas[i] * yhat + betas[i]
                cache.append((h, yhat, sigma, z))
                h = _sign(z)
                run_mean[i] = (1 - mom) * run_mean[i] + mom * mu
                unbiased = var * bsz / (bsz - 1) if bsz > 1 else var
                run_var[i] = (1 - mom) * run_var[i] + mom * unbiased
            logits = (h @ wbs[-1].T) * scale
            logits -= logits.max(axis=1, keepdims=True)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            loss_sum += -(tb * logp).sum()
            # Backward: the gradients are collected from the last layer down, then put in layer
            # order.
            dy = (np.exp(logp) - tb) * (scale / bsz)
            gw: list[np.ndarray] = [dy.T @ h]
            gg: list[np.ndarray] = []
            gb: list[np.ndarray] = []
            dh = dy @ wbs[-1]
            for i in reversed(range(layers - 1)):
                h_in, yhat, sigma, z = cache[i]
                dz = dh * (np.abs(z) <= 1)  # straight-through hardtanh
                gg.append((dz * yhat).sum(axis=0))
                gb.append(dz.sum(axis=0))
                dyhat = dz * gammas[i]
                dyv = (dyhat - dyhat.mean(axis=0) - yhat * (dyhat * yhat).mean(axis=0)) / sigma
                gw.append(dyv.T @ h_in)
                if i:
                    dh = dyv @ wbs[i]
            gw.reverse()
            gg.reverse()
            gb.reverse()
            for w, g in zip(weights, gw):
                g *= np.abs(w) <= 1  # straight-through sign, gated
            cosine = 0.5 * (1 + math.cos(math.pi * step / total_steps))
            lr = config.lr * (config.lr_final + (1 - config.lr_final) * cosine)
            adam.step([*gw, *gg, *gb], lr)
            for w in weights:
                np.clip(w, -1.0, 1.0, out=w)
            step += 1
        loss = loss_sum / n
        logger.debug("epoch %d/%d: loss %.4f", epoch, config.epochs, loss)
        if progress is not None:
            progress(epoch, config.epochs, loss)

    if config.recalibrate_bn:
        h = x
        for i in range(layers - 1):
            yv = h @ _sign(weights[i]).T
            run_mean[i], run_var[i] = yv.mean(axis=0), yv.var(axis=0)
            bn = BatchNorm(gammas[i], betas[i], run_mean[i], run_var[i], eps)
            h = _sign(bn(yv))
    batchnorms = tuple(
        BatchNorm(gammas[i], betas[i], run_mean[i], run_var[i], eps) for i in range(layers - 1)
    )
    model = BinaryMLP(tuple(w.copy() for w in weights), batchnorms, scale, input_dtype)
    logger.info(
        "trained a binary MLP %s for %d epochs: final training loss %.4f",
        "-".join(map(str, sizes)),
        config.epochs,
        loss,
    )
    return model
