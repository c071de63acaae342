"""Training of the quantization zoo's networks in NumPy: backprop with straight-through estimators,
Adam or SGD, gradual pruning, INQ partitions and weight sharing, all seeded and reproducible.

STE variants (``ste``): ``"identity"`` passes the gradient through every quantizer unchanged;
``"gate"`` passes it through ``sign`` only where ``|x| <= 1`` (binary activations and latent binary
weights, the ``hardtanh`` gate of Hubara et al.). Unsigned k-bit activations pass the gradient
where ``0 <= z <= 1`` (the clip), ReLU where ``z > 0``. Latent weights of ``binary`` layers are
clipped to ``[-1, 1]`` after every step.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ... import LowbitError
from ...ir.datatypes import BIPOLAR, DataType
from ...ir.mac import MacKind, MacOp
from .. import quantizers as Q
from ..data import Dataset
from ..prune import cubic_sparsity, global_magnitude_masks, magnitude_mask, prune_filters
from ..share import apply_sharing, centroid_gradient
from .lowrank import METHODS, factorise
from .net import ActSpec, WeightSpec, ZooNet, init_net, parse_arch
from .nn import (
    SGD,
    Adam,
    bn_backward,
    bn_forward,
    col2im,
    depthwise_taps,
    distillation_loss,
    im2col,
    maxpool_backward,
    maxpool_forward,
    softmax_cross_entropy,
)

__all__ = [
    "ZooConfig",
    "train_zoo",
    "teacher_config",
    "train_teacher",
    "INQ_FRACTIONS",
    "weight_memory_bits",
    "op_counts",
    "recalibrate_bn",
    "prune_channels",
    "apoz",
]

logger = logging.getLogger(__name__)

INQ_FRACTIONS = (0.5, 0.75, 0.875, 1.0)
"""INQ's accumulated quantized portions, by magnitude (Zhou et al. 2017)."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class ZooConfig:
    """Everything :func:`train_zoo` needs besides the data.

    ``weights``/``acts`` use the CLI syntax (``"ternary"``, ``"log2:4"``, ``"int:2"``);
    ``first_bits`` and ``last_bits`` (default 8) give the first and last layers ``int:B`` weights
    when the scheme is quantized (``None``: the scheme everywhere). ``prune`` is the final sparsity
    of every layer but the last, reached along the cubic schedule between ``prune_start`` and
    ``prune_end`` (fractions of the training steps) and kept while fine-tuning; ``prune_mode`` is
    ``"layer"`` or ``"global"``. ``share`` (``K``) replaces each layer's weights by ``K`` shared
    values (index 0 = zero), whose centroids are fine-tuned for ``share_epochs``. ``blas_threads``
    limits BLAS threads while training (``None``: no limit); the matrices are small, and on a shared
    machine one thread is often many times faster than an oversubscribed pool.

    ``distill_temperature`` (``T > 0``) and ``distill_alpha`` (in ``[0, 1]``) weigh knowledge
    distillation when :func:`train_zoo` is given a teacher's logits:
    ``(1 - alpha) * CE + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``
    (:func:`~lowbit.quant.train.nn.distillation_loss`); without teacher logits they are unused.

    Compression after training, each followed by ``finetune_epochs`` epochs of fine-tuning:
    ``low_rank`` factorises every hidden layer (:func:`~lowbit.quant.train.lowrank.factorise`: an
    integer rank ``r >= 1`` or a float energy target in ``(0, 1]``) with ``low_rank_bits``-bit
    signed bottlenecks, its convolutions by ``low_rank_method`` (``"tucker2"`` or ``"cp"``: a 1x1, a
    depthwise and a 1x1 convolution); ``prune_channels`` (a fraction in ``(0, 1)``) removes that
    fraction of every hidden layer's output channels, ranked by ``prune_channels_by``: ``"l1"`` (the
    filters' L1 norms, Li et al.) or ``"apoz"`` (the average percentage of zero activations on the
    training data, Hu et al.; needs UINT activations).
    """

    arch: str = "mlp:256,256"
    weights: str = "binary"
    acts: str = "binary"
    first_bits: int | None = 8
    last_bits: int | None = 8
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_final: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 0.0
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    ste: str = "gate"
    per_channel: bool = True
    prune: float | None = None
    prune_mode: str = "layer"
    prune_start: float = 0.05
    prune_end: float = 0.6
    prune_every: int = 20
    share: int | None = None
    share_epochs: int = 2
    recalibrate: int = 2000
    blas_threads: int | None = 1
    distill_temperature: float = 4.0
    distill_alpha: float = 0.5
    low_rank: int | float | None = None
    low_rank_bits: int = 8
    low_rank_method: str = "tucker2"
    prune_channels: float | None = None
    prune_channels_by: str = "l1"
    finetune_epochs: int = 3
    seed: int = 0

    def __post_init__(self):
        WeightSpec.parse(self.weights)
        ActSpec.parse(self.acts)
        parse_arch(self.arch, 2)
        for name in ("epochs", "batch_size", "share_epochs", "prune_every", "finetune_epochs"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        for name in ("first_bits", "last_bits"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or not 2 <= v <= 16):
                raise ValueError(f"{name} must be an integer in 2..16 or None, not {v!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', not {self.optimizer!r}")
        if self.ste not in ("identity", "gate"):
            raise ValueError(f"ste must be 'identity' or 'gate', not {self.ste!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, not {self.lr!r}")
        if self.prune is not None and not (
            isinstance(self.prune, (int, float)) and 0 <= self.prune < 1
        ):
            raise ValueError(f"prune must be a sparsity in [0, 1), not {self.prune!r}")
        if self.prune_mode not in ("layer", "global"):
            raise ValueError(f"prune_mode must be 'layer' or 'global', not {self.prune_mode!r}")
        if self.share is not None and (not _is_int(self.share) or not 2 <= self.share <= 256):
            raise ValueError(
                f"share must be a number of shared values in 2..256, not {self.share!r}"
            )
        if not _is_real(self.distill_temperature) or self.distill_temperature <= 0:
            raise ValueError(
                f"distill_temperature must be a positive number, not {self.distill_temperature!r}"
            )
        if not _is_real(self.distill_alpha) or not 0 <= self.distill_alpha <= 1:
            raise ValueError(
                f"distill_alpha must be a number in [0, 1], not {self.distill_alpha!r}"
            )
        lr_ = self.low_rank
        if lr_ is not None and not (
            (_is_int(lr_) and lr_ >= 1)
            or (isinstance(lr_, float) and math.isfinite(lr_) and 0 < lr_ <= 1)
        ):
            raise ValueError(
                f"low_rank must be an integer rank >= 1 or an energy in (0, 1], not {lr_!r}"
            )
        if not _is_int(self.low_rank_bits) or not 2 <= self.low_rank_bits <= 8:
            raise ValueError(
                f"low_rank_bits must be an integer in 2..8, not {self.low_rank_bits!r}"
            )
        if self.low_rank_method not in METHODS:
            raise ValueError(
                f"low_rank_method must be one of {', '.join(METHODS)}, "
                f"not {self.low_rank_method!r}"
            )
        pc = self.prune_channels
        if pc is not None and not (_is_real(pc) and 0 < pc < 1):
            raise ValueError(f"prune_channels must be a fraction in (0, 1), not {pc!r}")
        if self.prune_channels_by not in ("l1", "apoz"):
            raise ValueError(
                f"prune_channels_by must be 'l1' or 'apoz', not {self.prune_channels_by!r}"
            )
        if self.low_rank is not None and self.prune_channels is not None:
            raise ValueError("low_rank and prune_channels cannot be combined (choose one)")
        if (self.low_rank is not None or self.prune_channels is not None) and (
            self.share is not None or self.prune
        ):
            raise ValueError("low_rank and prune_channels cannot be combined with share or prune")
        if not _is_int(self.seed):
            raise TypeError(f"seed must be an integer, not {self.seed!r}")


# -- forward / backward in training mode -----------------------------------------------------------


def _weights_and_grad(net: ZooNet, i: int, ste: str, rng: np.random.Generator | None = None):
    """Layer ``i``'s forward weights and a function mapping their gradient to parameter gradients.

    With ``rng``, ``bc`` layers draw stochastic binary weights (BinaryConnect); without, ``sign``.
    """
    spec = net.weight_specs[i]
    w = net.params[f"W{i}"]
    mask = net.state.get(f"mask{i}")
    if f"share_idx{i}" in net.state:
        idx = net.state[f"share_idx{i}"]
        k = net.params[f"cb{i}"].shape[0]
        return net.weight_values(i), lambda g: {f"cb{i}": centroid_gradient(g, idx, k)}
    wv = net.weight_values(i)
    if spec.kind == "bc" and rng is not None:
        wv = Q.binary_stochastic(w, rng).astype(np.float64)
    if spec.kind == "ttq":
        codes = Q.ttq_codes(w * mask if mask is not None else w, net.ttq_t)
        pos, neg = codes > 0, codes < 0
        wp, wn = float(net.params[f"wp{i}"][0]), float(net.params[f"wn{i}"][0])

        def ttq_grad(g):
            gw = g * np.where(pos, wp, np.where(neg, wn, 1.0))
            return {
                f"W{i}": gw if mask is None else gw * mask,
                f"wp{i}": np.array([(g * pos).sum()]),
                f"wn{i}": np.array([-(g * neg).sum()]),
            }

        return wv, ttq_grad

    def grad(g):
        if spec.kind in ("binary", "bc") and ste == "gate":
            g = g * (np.abs(w) <= 1)
        if spec.kind == "inq" and f"inq_frozen{i}" in net.state:
            g = g * ~net.state[f"inq_frozen{i}"]
        return {f"W{i}": g if mask is None else g * mask}

    return wv, grad


# One layer's training-mode forward state: input columns, input shape, forward weights, the map
# from their gradient to parameter gradients, then the pre-activation, the batch-norm cache and the
# max-pool cache (None for the last layer; the pool cache also None without a pool).
_LayerCache = tuple[
    np.ndarray,
    tuple[Any, ...],  # an ndarray shape, as numpy types it
    np.ndarray,
    Callable[[np.ndarray], dict[str, np.ndarray]],
    np.ndarray | None,
    tuple | None,
    tuple | None,
]


def _act_grad(net: ZooNet, z: np.ndarray, ste: str) -> np.ndarray:
    k = net.acts.kind
    if k == "float":
        return (z > 0).astype(np.float64)
    if k == "binary":
        return (np.abs(z) <= 1).astype(np.float64) if ste == "gate" else np.ones_like(z)
    return ((z >= 0) & (z <= 1)).astype(np.float64)


def _train_step(
    net: ZooNet,
    x: np.ndarray,
    y: np.ndarray,
    ste: str,
    bn_momentum: float | None,
    rng: np.random.Generator | None = None,
    teacher: tuple[np.ndarray, float, float] | None = None,
):
    """One forward/backward pass in training mode; returns ``(loss, grads)``. Updates BN
    statistics. ``teacher``: the batch's teacher logits, the temperature and the weight of the
    distillation term (:func:`~lowbit.quant.train.nn.distillation_loss`); ``None``: cross-entropy.
    """
    caches: list[_LayerCache] = []
    h = x
    n = net.n_layers
    for i, L in enumerate(net.layers):
        wv, wgrad = _weights_and_grad(net, i, ste, rng)
        wv = L.matrix(wv)
        if L.windowed:
            cols = im2col(h, L.kernel, L.stride, L.pad, net._pad_value(i))
            in_shape = h.shape
        else:
            in_shape = h.shape
            cols = h.reshape(h.shape[0], -1)
        yv = cols @ wv.T
        if i == n - 1:
            scale = math.exp(float(net.params["tau"][0]))
            logits = yv * scale
            caches.append((cols, in_shape, wv, wgrad, None, None, None))
            break
        if L.bottleneck:  # linear signed quantizer, no batch-norm: z is the value in steps
            z = yv / net.state[f"bscale{i}"]
            caches.append((cols, in_shape, wv, wgrad, z, None, None))
            h = net.bottleneck_levels(i, yv) * net.state[f"bscale{i}"]
            continue
        z, bnc = bn_forward(
            yv,
            net.params[f"gamma{i}"],
            net.params[f"beta{i}"],
            None,
            None,
            net.bn_eps,
            training=True,
        )
        if bn_momentum is not None:
            m = bn_momentum
            net.state[f"mean{i}"] = (1 - m) * net.state[f"mean{i}"] + m * bnc[2]
            net.state[f"var{i}"] = (1 - m) * net.state[f"var{i}"] + m * bnc[3]
        a = net.activation(z)
        pc = None
        if L.pool:
            a, pc = maxpool_forward(a, L.pool)
        caches.append((cols, in_shape, wv, wgrad, z, bnc, pc))
        h = a
    if teacher is None:
        loss, dlogits = softmax_cross_entropy(logits, y)
    else:
        loss, dlogits = distillation_loss(logits, y, *teacher)
    grads = {"tau": np.array([(dlogits * logits).sum()])}
    dy = dlogits * scale
    for i in range(n - 1, -1, -1):
        L = net.layers[i]
        cols, in_shape, wv, wgrad, z, bnc, pc = caches[i]
        if i < n - 1 and L.bottleneck:  # straight through inside the clip range
            assert z is not None
            half = 1 << (L.bottleneck - 1)
            dy = dy * ((z >= -half - 0.5) & (z <= half - 0.5))
        elif i < n - 1:
            assert z is not None  # every layer but the last caches its batch-norm pass
            da = dy
            if pc is not None:
                da = maxpool_backward(da, pc)
            dz = da * _act_grad(net, z, ste)
            dy, grads[f"gamma{i}"], grads[f"beta{i}"] = bn_backward(
                dz, net.params[f"gamma{i}"], bnc
            )
        dyf = dy.reshape(-1, wv.shape[0])
        gw = dyf.T @ cols.reshape(-1, cols.shape[-1])
        grads.update(wgrad(depthwise_taps(gw) if L.kind == "dwconv" else gw))
        if i > 0:
            dcols = dy @ wv
            dy = (
                col2im(dcols, in_shape, L.kernel, L.stride, L.pad)
                if L.windowed
                else dcols.reshape(in_shape)
            )
    return loss, grads


def _eval_layer(net: ZooNet, i: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``i`` in evaluation mode: ``(pre-batch-norm y, output after activation and pool)``."""
    L = net.layers[i]
    wv = L.matrix(net.weight_values(i))
    cols = (
        im2col(h, L.kernel, L.stride, L.pad, net._pad_value(i))
        if L.windowed
        else h.reshape(len(h), -1)
    )
    yv = cols @ wv.T
    if i == net.n_layers - 1:
        return yv, yv
    if L.bottleneck:
        return yv, net.bottleneck_levels(i, yv) * net.state[f"bscale{i}"]
    sigma = np.sqrt(net.state[f"var{i}"] + net.bn_eps)
    a = net.activation(
        net.params[f"gamma{i}"] * (yv - net.state[f"mean{i}"]) / sigma + net.params[f"beta{i}"]
    )
    if L.pool:
        a = maxpool_forward(a, L.pool)[0]
    return yv, a


def recalibrate_bn(net: ZooNet, x: np.ndarray, *, chunk: int = 256) -> None:
    """Set every batch-norm's statistics to the exact mean and (biased) variance over ``x``, layer
    by layer in network order, evaluating the earlier layers with their new statistics (in
    chunks)."""
    for i in range(net.n_layers - 1):
        if net.layers[i].bottleneck:
            continue
        s1 = s2 = 0.0
        count = 0
        for b in range(0, len(x), chunk):
            h = net.prepare_input(x[b : b + chunk])
            for j in range(i):
                h = _eval_layer(net, j, h)[1]
            yv = _eval_layer(net, i, h)[0].reshape(-1, net.layers[i].out)
            s1 = s1 + yv.sum(axis=0)
            s2 = s2 + (yv * yv).sum(axis=0)
            count += len(yv)
        mean = s1 / count
        net.state[f"mean{i}"] = mean
        net.state[f"var{i}"] = np.maximum(s2 / count - mean * mean, 0.0)


# -- pruning and INQ hooks -----------------------------------------------------------------------


def apoz(net: ZooNet, x: np.ndarray, layer: int) -> np.ndarray:
    """Average percentage of zeros (Hu et al. 2016) of hidden layer ``layer``'s output channels
    on the integer inputs ``x``: the fraction of (sample, pixel) positions whose activation level
    is 0, before max-pooling. Needs UINT activations."""
    if net.acts.kind == "binary":
        raise LowbitError("APoZ needs UINT (or float ReLU) activations, not BIPOLAR: no zeros")
    if not 0 <= layer < net.n_layers - 1 or net.layers[layer].bottleneck:
        raise ValueError(f"layer must be a hidden layer with an activation, not {layer!r}")
    y = net.pre_activation(x, layer)
    sigma = np.sqrt(net.state[f"var{layer}"] + net.bn_eps)
    z = net.params[f"gamma{layer}"] * (y - net.state[f"mean{layer}"]) / sigma
    a = net.activation(z + net.params[f"beta{layer}"])
    return np.mean(a.reshape(-1, a.shape[-1]) == 0, axis=0)


def prune_channels(net: ZooNet, fraction: float, by: str, x: np.ndarray) -> ZooNet:
    """Remove ``round(fraction * channels)`` output channels of every hidden layer (at least one
    kept) with :func:`~lowbit.quant.prune.prune_filters`: those of smallest filter L1 norm
    (``by="l1"``) or of largest :func:`apoz` on the integer inputs ``x`` (``by="apoz"``), each
    layer's scores taken on the network pruned so far."""
    if by not in ("l1", "apoz"):
        raise ValueError(f"by must be 'l1' or 'apoz', not {by!r}")
    for i in range(net.n_layers - 1):
        c = net.layers[i].out
        keep = max(1, c - int(np.floor(fraction * c + 0.5)))
        scores = -apoz(net, x, i) if by == "apoz" else None
        net = prune_filters(net, i, keep, scores=scores)
        logger.info("channel pruning (%s): layer %d keeps %d of %d channels", by, i, keep, c)
    return net


def _update_masks(net: ZooNet, sparsity: float, mode: str) -> None:
    keys = [f"W{i}" for i in range(net.n_layers - 1)]
    if mode == "global":
        masks = global_magnitude_masks({k: net.params[k] for k in keys}, sparsity)
        for i, k in enumerate(keys):
            net.state[f"mask{i}"] = masks[k]
    else:
        for i, k in enumerate(keys):
            net.state[f"mask{i}"] = magnitude_mask(net.params[k], sparsity)
    for i, k in enumerate(keys):
        net.params[k] *= net.state[f"mask{i}"]


def _inq_freeze(net: ZooNet, fraction: float) -> None:
    for i, spec in enumerate(net.weight_specs):
        if spec.kind != "inq":
            continue
        w = net.params[f"W{i}"]
        if f"inq_scale{i}" not in net.state:
            n1, n2 = Q.inq_levels(float(np.abs(w).max()), spec.bit_width)
            net.state[f"inq_s{i}"] = float(np.abs(w).max())
            net.state[f"inq_scale{i}"] = 2.0**n2
            net.state[f"inq_frozen{i}"] = np.zeros(w.shape, dtype=bool)
            net.state[f"inq_codes{i}"] = np.zeros(w.shape, dtype=np.int64)
        frozen = net.state[f"inq_frozen{i}"]
        k = int(np.floor(fraction * w.size + 0.5))
        order = np.argsort(
            -np.abs(np.where(frozen, np.inf, w)).ravel(), kind="stable"
        )  # frozen first
        new = np.zeros(w.size, dtype=bool)
        new[order[:k]] = True
        new = new.reshape(w.shape) & ~frozen
        q = Q.inq_quantize(w, spec.bit_width, s=net.state[f"inq_s{i}"])
        net.state[f"inq_codes{i}"] = np.where(new, q.codes, net.state[f"inq_codes{i}"])
        net.state[f"inq_frozen{i}"] = frozen | new


# -- the training loop ----------------------------------------------------------------------------


def train_zoo(
    data: Dataset,
    config: ZooConfig = ZooConfig(),
    *,
    teacher_logits: np.ndarray | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> ZooNet:
    """Train a quantized network on ``data`` with ``config``; returns it in evaluation form.

    ``teacher_logits`` ``(N, classes)``, one row per training sample (e.g. from
    :func:`train_teacher`): distil them into the network with ``config.distill_temperature`` and
    ``config.distill_alpha``; ``None``: plain cross-entropy. The teacher only changes the loss, so
    the network exports as without it.

    Reproducible: the same data, config, seed and teacher logits give bitwise identical parameters.
    """
    if teacher_logits is not None:
        teacher_logits = _check_teacher_logits(teacher_logits, data)
    if config.blas_threads is None:
        return _train_zoo(data, config, progress, teacher_logits)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=config.blas_threads, user_api="blas"):
        return _train_zoo(data, config, progress, teacher_logits)


def _check_teacher_logits(teacher_logits, data: Dataset) -> np.ndarray:
    want = (len(data.y_train), data.classes)
    t = np.asarray(teacher_logits)
    if t.shape != want or t.dtype.kind not in "iuf":
        raise LowbitError(
            f"teacher_logits must be a numeric array of shape (training samples, classes) = "
            f"{want}, not {t.dtype} {t.shape}"
        )
    t = t.astype(np.float64)
    if not np.isfinite(t).all():
        raise LowbitError("teacher_logits must be finite, not containing inf or nan")
    return t


def teacher_config(config: ZooConfig) -> ZooConfig:
    """The float teacher of a student trained with ``config``: the same architecture, epochs,
    optimiser and seed, with FLOAT weights and activations everywhere and no pruning or sharing."""
    return replace(
        config,
        weights="float",
        acts="float",
        first_bits=None,
        last_bits=None,
        prune=None,
        share=None,
    )


def train_teacher(
    data: Dataset,
    config: ZooConfig,
    *,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[ZooNet, np.ndarray]:
    """Train the float teacher of ``config``'s student (:func:`teacher_config`) with
    :func:`train_zoo`; returns it and its logits on ``data.x_train`` (evaluation mode), the
    ``teacher_logits`` of the student's :func:`train_zoo`."""
    teacher = train_zoo(data, teacher_config(config), progress=progress)
    logits = teacher.forward(data.x_train)
    logger.info("teacher: test accuracy %.4f", teacher.accuracy(data.x_test, data.y_test))
    return teacher, logits


def _train_zoo(
    data: Dataset, config: ZooConfig, progress, teacher_logits: np.ndarray | None
) -> ZooNet:
    rng = np.random.default_rng(config.seed)
    layers = parse_arch(config.arch, data.classes)
    input_shape: tuple[int, ...]
    if layers[0].kind == "conv":  # cnv-small, the one convolutional arch
        if data.image_shape is None:
            raise LowbitError("cnv-small needs image data (digits, mnist5k, idx or cifar10)")
        input_shape = data.image_shape
    else:
        input_shape = (data.features,)
    wspec, aspec = WeightSpec.parse(config.weights), ActSpec.parse(config.acts)
    if config.prune and wspec.kind in ("binary", "bc") and config.share is None:
        raise LowbitError(
            "pruning needs weights with a zero code (not binary): "
            "use ternary, ttq, log2, int or float"
        )
    net = init_net(
        layers,
        wspec,
        aspec,
        data.input_dtype,
        input_shape,
        rng,
        first_bits=config.first_bits,
        last_bits=config.last_bits,
        per_channel=config.per_channel,
        bn_eps=config.bn_eps,
        ste=config.ste,
    )
    if (
        config.prune
        and any(s.kind in ("binary", "bc") for s in net.weight_specs[:-1])
        and config.share is None
    ):
        raise LowbitError(
            "pruning needs weights with a zero code; a hidden layer has binary weights"
        )
    x = net.prepare_input(data.x_train)
    y = data.y_train.astype(np.int64)
    n = len(x)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = config.epochs * steps_per_epoch
    inq = any(s.kind == "inq" for s in net.weight_specs)
    if inq and config.epochs < len(INQ_FRACTIONS) - 1:
        raise LowbitError(
            f"INQ needs at least {len(INQ_FRACTIONS) - 1} epochs (one per partition), "
            f"not {config.epochs}"
        )

    def make_opt(params):
        return Adam(params) if config.optimizer == "adam" else SGD(params, config.momentum)

    def run_epochs(epochs: int, keys, label_offset: int, total_epochs: int, step0: int = 0):
        params = {k: net.params[k] for k in keys}
        opt = make_opt(params)
        step = step0
        all_steps = epochs * steps_per_epoch
        for e in range(epochs):
            if inq:
                phase_starts = [
                    round(j * epochs / (len(INQ_FRACTIONS) - 1))
                    for j in range(len(INQ_FRACTIONS) - 1)
                ]
                for j, s0 in enumerate(phase_starts):
                    if e == s0:
                        _inq_freeze(net, INQ_FRACTIONS[j])
            order = rng.permutation(n)
            losses = []
            for b in range(steps_per_epoch):
                if config.prune and step0 == 0:
                    t0, t1 = config.prune_start * total, config.prune_end * total
                    if step % config.prune_every == 0 and step <= t1 + config.prune_every:
                        nsteps = max(1, math.ceil((t1 - t0) / config.prune_every))
                        s = cubic_sparsity(
                            step, s_i=0.0, s_f=config.prune, t0=t0, n=nsteps, dt=config.prune_every
                        )
                        if step >= t0:
                            _update_masks(net, s, config.prune_mode)
                sel = order[b * config.batch_size : (b + 1) * config.batch_size]
                teacher = (
                    None
                    if teacher_logits is None
                    else (teacher_logits[sel], config.distill_temperature, config.distill_alpha)
                )
                loss, grads = _train_step(
                    net, x[sel], y[sel], config.ste, config.bn_momentum, rng, teacher
                )
                grads = {k: g for k, g in grads.items() if k in params}
                if config.weight_decay:
                    for k in grads:
                        if k.startswith("W"):
                            grads[k] = grads[k] + config.weight_decay * params[k]
                frac = (
                    step / max(1, all_steps - 1)
                    if step0 == 0
                    else (step - step0) / max(1, all_steps - 1)
                )
                lr = config.lr * (
                    config.lr_final
                    + (1 - config.lr_final) * 0.5 * (1 + math.cos(math.pi * min(1, frac)))
                )
                opt.step(grads, lr)
                for i, spec in enumerate(net.weight_specs):
                    if spec.kind in ("binary", "bc") and f"W{i}" in params:
                        np.clip(net.params[f"W{i}"], -1, 1, out=net.params[f"W{i}"])
                    if f"mask{i}" in net.state and f"W{i}" in params:
                        net.params[f"W{i}"] *= net.state[f"mask{i}"]
                for k in ("wp", "wn"):
                    for i in range(net.n_layers):
                        if f"{k}{i}" in params:
                            np.maximum(net.params[f"{k}{i}"], 1e-6, out=net.params[f"{k}{i}"])
                losses.append(loss)
                step += 1
            mean_loss = float(np.mean(losses))
            logger.info("epoch %d/%d: loss %.4f", label_offset + e + 1, total_epochs, mean_loss)
            if progress is not None:
                progress(label_offset + e + 1, total_epochs, mean_loss)

    compress = config.low_rank is not None or config.prune_channels is not None
    if compress and any(s.kind in ("inq", "ttq") for s in net.weight_specs[:-1]):
        raise LowbitError(
            "low-rank factorisation and channel pruning do not take inq or ttq weights"
        )
    if config.prune_channels is not None and config.prune_channels_by == "apoz":
        if aspec.kind == "binary":
            raise LowbitError(
                "APoZ channel pruning needs UINT (or float ReLU) activations, not BIPOLAR: "
                "no zeros to count"
            )
    total_epochs = (
        config.epochs
        + (config.share_epochs if config.share else 0)
        + (config.finetune_epochs if compress else 0)
    )
    run_epochs(config.epochs, list(net.params), 0, total_epochs)
    if compress:
        calib = data.x_train[np.sort(rng.permutation(n)[: min(n, 2000)])]
        if config.low_rank is not None:
            net = factorise(
                net,
                config.low_rank,
                bits=config.low_rank_bits,
                calibration=calib,
                method=config.low_rank_method,
            ).net
        else:
            fraction = float(config.prune_channels or 0.0)
            net = prune_channels(net, fraction, config.prune_channels_by, calib)
        run_epochs(config.finetune_epochs, list(net.params), config.epochs, total_epochs, step0=1)
    if config.prune:
        _update_masks(net, config.prune, config.prune_mode)  # exactly the final sparsity
    if inq:
        _inq_freeze(net, 1.0)
    if config.share:
        apply_sharing(net, config.share, bits=8)
        keys = [k for k in net.params if not k.startswith(("W", "wp", "wn"))]
        run_epochs(config.share_epochs, keys, config.epochs, total_epochs, step0=1)
    if config.recalibrate:
        sel = np.sort(rng.permutation(n)[: config.recalibrate])
        recalibrate_bn(net, data.x_train[sel])
    return net


# -- reports ---------------------------------------------------------------------------------------


def weight_memory_bits(net: ZooNet) -> int:
    """Parameter memory of the weights in bits: ``storage_bits`` per weight, or with sharing
    ``ceil(log2 K)`` bits per index plus a ``K``-entry codebook of ``bits`` bits."""
    total = 0
    for i, spec in enumerate(net.weight_specs):
        w = net.params[f"W{i}"]
        if f"share_idx{i}" in net.state:
            k = net.params[f"cb{i}"].shape[0]
            total += w.size * max(1, math.ceil(math.log2(k))) + k * net.state[f"share_bits{i}"]
        else:
            total += w.size * spec.storage_bits
    return int(total)


def op_counts(net: ZooNet) -> dict[str, int]:
    """Operations per inference by kind: ``xnor`` (binary x binary), ``add`` (binary weights with
    integer inputs, ternary weights), ``shift`` (power-of-two weights), ``multiply`` (k-bit, TTQ,
    shared or float weights): the :class:`~lowbit.ir.mac.MacOp` of the layer's MAC kind, from the
    type its weights export as (:attr:`WeightSpec.dtype`) and whether its inputs are binary.

    One operation per weight use (multiply-accumulate); pruned weights are not counted.
    """
    counts = {op.value: 0 for op in MacOp}
    for i, ((shp_in, shp_out), L) in enumerate(zip(net.shapes(), net.layers)):
        w = net.params[f"W{i}"]
        nz = int(net.state[f"mask{i}"].sum()) if f"mask{i}" in net.state else w.size
        if L.windowed:
            h, wd, _ = shp_in
            oh = (h + 2 * L.pad - L.kernel) // L.stride + 1
            ow = (wd + 2 * L.pad - L.kernel) // L.stride + 1
            uses = nz * oh * ow
        else:
            uses = nz
        binary_in = net.layer_input(i)[0] == BIPOLAR
        dtype: DataType | None
        if f"share_idx{i}" in net.state:  # shared weights export as INTk codebook entries
            dtype = DataType.int(net.state[f"share_bits{i}"])
        else:
            dtype = net.weight_specs[i].dtype
        op = MacOp.MULTIPLY if dtype is None else MacKind.of(dtype, bipolar_input=binary_in).op
        counts[op.value] += int(uses)
    return counts
