"""Quantized MLPs and small CNNs of the zoo: specification, parameters, and two forward passes.

A :class:`ZooNet` is a chain of weighted layers (``fc`` or ``conv``, each optionally followed by a
max-pool); every layer but the last has batch-norm and an activation quantizer, the last emits
logits ``exp(tau) * y`` (one per-tensor weight scale, no bias, so the arg-max of the logits is the
arg-max of the integer accumulators).

Two forward passes compute the same function:

* :meth:`ZooNet.forward` — the float64 fake-quantized pass used for training (``codes * scale``
  weights, activations ``level / n``);
* :meth:`ZooNet.exact_forward` — the same network evaluated without rounding: integer codes,
  integer accumulators, and each layer's batch-norm, scales and activation quantizer folded into
  integer thresholds with :func:`~lowbit.quant.fold.fold_affine_thresholds` (exact rationals).
  :meth:`ZooNet.predict` uses it whenever weights and activations are quantized, so the model's
  decisions are defined without float rounding and equal the exported integer graph's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from fractions import Fraction as F

import numpy as np

from ... import LowbitError
from ...ir.datatypes import BIPOLAR, TERNARY, DataType
from .. import quantizers as Q
from ..fold import fold_affine_thresholds
from .nn import depthwise_matrix, im2col, maxpool_forward

__all__ = [
    "WeightSpec",
    "ActSpec",
    "LayerSpec",
    "parse_arch",
    "ZooNet",
    "LayerFold",
    "init_net",
    "shared_codebook",
]


def shared_codebook(centroids: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Integer codes of a weight-sharing codebook and their scale: symmetric ``INTbits``, max-abs.

    Entry 0 is the reserved zero. The shared weights are ``codes[idx] * scale``; the training
    forward uses the same values, so the export is exact.
    """
    c = np.asarray(centroids, dtype=np.float64)
    qmax = (1 << (bits - 1)) - 1
    m = float(np.abs(c).max(initial=0.0))
    scale = m / qmax if m > 0 else 1.0
    codes = np.clip(Q.round_half_away(c / scale), -qmax, qmax).astype(np.int64)
    codes[1:] = np.where(
        codes[1:] == 0, np.where(c[1:] >= 0, 1, -1), codes[1:]
    )  # only entry 0 is zero
    codes[0] = 0
    return codes, scale


_WEIGHT_KINDS = ("float", "binary", "bc", "ternary", "ttq", "log2", "inq", "int", "dorefa")


@dataclass(frozen=True)
class WeightSpec:
    """A weight quantizer: ``float``, ``binary`` (XNOR-Net scale), ``bc`` (stochastic BinaryConnect
    in training, ``sign`` in evaluation, no scale), ``ternary`` (TWN), ``ttq``, ``log2:B``
    (LogQuant), ``inq:B``, ``int:B`` (symmetric max-abs) or ``dorefa:B``."""

    kind: str
    bits: int | None = None

    def __post_init__(self):
        if self.kind not in _WEIGHT_KINDS:
            raise ValueError(
                f"weight quantizer must be one of {', '.join(_WEIGHT_KINDS)}, not {self.kind!r}"
            )
        needs = self.kind in ("log2", "inq", "int", "dorefa")
        if needs and not (
            isinstance(self.bits, int)
            and (2 <= self.bits <= 6 if self.kind in ("log2", "inq") else 2 <= self.bits <= 16)
        ):
            lim = "2..6" if self.kind in ("log2", "inq") else "2..16"
            raise ValueError(f"{self.kind} weights need a bit width in {lim}, not {self.bits!r}")
        if not needs and self.bits is not None:
            raise ValueError(f"{self.kind} weights take no bit width, not {self.bits!r}")

    @classmethod
    def parse(cls, text: str) -> "WeightSpec":
        m = re.fullmatch(r"([a-z0-9]+)(?::([0-9]+))?", text)
        if not m:
            raise ValueError(f"weights must look like 'ternary' or 'int:4', not {text!r}")
        return cls(m[1], int(m[2]) if m[2] else None)

    @property
    def name(self) -> str:
        return self.kind if self.bits is None else f"{self.kind}:{self.bits}"

    @property
    def bit_width(self) -> int:
        """``bits`` of a kind that takes one (``log2``, ``inq``, ``int``, ``dorefa``)."""
        if self.bits is None:
            raise ValueError(f"{self.kind} weights take no bit width")
        return self.bits

    @property
    def storage_bits(self) -> int:
        """Bits per stored weight (``dorefa:B`` stores ``B + 1``-bit odd codes; float: 32)."""
        return {"float": 32, "binary": 1, "bc": 1, "ternary": 2, "ttq": 2}.get(self.kind) or (
            self.bit_width + 1 if self.kind == "dorefa" else self.bit_width
        )

    @property
    def quantized(self) -> bool:
        return self.kind != "float"

    @property
    def dtype(self) -> DataType | None:
        """The type of the stored weights in the integer graph (``None`` for float weights):
        ``BIPOLAR`` (``binary``, ``bc``), ``TERNARY``, ``INT4`` (``ttq``: two integer levels),
        ``POW2_B`` (``log2:B``, ``inq:B``), ``INTB`` (``int:B``) or ``INT(B+1)`` (``dorefa:B``)."""
        k = self.kind
        if k == "float":
            return None
        if k in ("binary", "bc"):
            return BIPOLAR
        if k == "ternary":
            return TERNARY
        if k == "ttq":
            return DataType.int(4)
        if k in ("log2", "inq"):
            return DataType.pow2(self.bit_width)
        return DataType.int(self.bit_width + 1 if k == "dorefa" else self.bit_width)


@dataclass(frozen=True)
class ActSpec:
    """An activation: ``float`` (ReLU), ``binary`` (``sign``) or ``int:B`` (DoReFa unsigned
    B-bit)."""

    kind: str
    bits: int | None = None

    def __post_init__(self):
        if self.kind not in ("float", "binary", "int"):
            raise ValueError(f"activations must be float, binary or int:B, not {self.kind!r}")
        if self.kind == "int" and not (isinstance(self.bits, int) and 2 <= self.bits <= 8):
            raise ValueError(
                f"int activations need a bit width in 2..8 (1 bit: use binary), not {self.bits!r}"
            )
        if self.kind != "int" and self.bits is not None:
            raise ValueError(f"{self.kind} activations take no bit width, not {self.bits!r}")

    @classmethod
    def parse(cls, text: str) -> "ActSpec":
        m = re.fullmatch(r"([a-z]+)(?::([0-9]+))?", text)
        if not m:
            raise ValueError(f"acts must look like 'binary' or 'int:2', not {text!r}")
        return cls(m[1], int(m[2]) if m[2] else None)

    @property
    def name(self) -> str:
        return self.kind if self.bits is None else f"{self.kind}:{self.bits}"

    @property
    def bit_width(self) -> int:
        """``bits`` of ``int`` activations (the only kind that takes one)."""
        if self.bits is None:
            raise ValueError(f"{self.kind} activations take no bit width")
        return self.bits

    @property
    def quantized(self) -> bool:
        return self.kind != "float"

    @property
    def dtype(self) -> DataType:
        if self.kind == "binary":
            return BIPOLAR
        if self.kind == "int":
            return DataType.uint(self.bit_width)
        raise ValueError("float activations have no integer data type")

    @property
    def n(self) -> int:
        """Value of one level step's reciprocal: values are ``level / n`` (``n = 2^B - 1``); 1 for
        binary."""
        return (1 << self.bit_width) - 1 if self.kind == "int" else 1

    def decision_points(self) -> list:
        """The ``t_i`` with ``level = sum_i [z >= t_i]``: ``[0]`` for sign, ``(i - 1/2) / n`` for
        int."""
        if self.kind == "binary":
            return [Fraction(0)]
        return [Fraction(2 * i - 1, 2 * self.n) for i in range(1, self.n + 1)]


@dataclass(frozen=True)
class LayerSpec:
    """A weighted layer: ``fc`` with ``out`` units, ``conv`` (``kernel``, ``stride``, ``pad``), or
    ``dwconv``, a depthwise ``kernel x kernel`` convolution of ``out`` channels (as many as its
    input's; weights ``(C, K * K)``, row ``c`` channel ``c``'s kernel over the taps in ``(ky, kx)``
    order; exported as a :class:`~lowbit.ir.graph.DepthwiseConv`); ``pool`` is the max-pool kernel
    after the activation (0: none).

    ``bottleneck`` (``B`` > 0) makes the layer a factor of a low-rank factorisation
    (:mod:`~lowbit.quant.train.lowrank`): no batch-norm and no activation function, its output
    ``v`` is quantized linearly and signed, ``q = clip(floor(v / s + 1/2), -2^(B-1), 2^(B-1) - 1)``
    with the scale ``s = state["bscale{i}"]``, and stored as the unsigned ``B``-bit level
    ``q + 2^(B-1)`` (the next layer subtracts the offset, folded into its thresholds).
    """

    kind: str
    out: int
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    pool: int = 0
    bottleneck: int = 0

    @property
    def windowed(self) -> bool:
        """True for a convolution (``conv``, ``dwconv``): the layer reads im2col windows."""
        return self.kind in ("conv", "dwconv")

    def matrix(self, w: np.ndarray) -> np.ndarray:
        """The matrix by which the layer multiplies its inputs (a vector or im2col windows),
        ``(out, inputs)``, from its weights ``w``: ``w`` itself, for a ``dwconv`` the
        block-diagonal :func:`~lowbit.quant.train.nn.depthwise_matrix` of ``w``."""
        return depthwise_matrix(w) if self.kind == "dwconv" else w


def parse_arch(text: str, classes: int) -> tuple[LayerSpec, ...]:
    """``mlp:256,256`` (hidden widths) or ``cnv-small`` (conv 16 / pool / conv 32 / pool / fc
    64)."""
    if text == "cnv-small":
        return (
            LayerSpec("conv", 16, 3, 1, 1, 2),
            LayerSpec("conv", 32, 3, 1, 1, 2),
            LayerSpec("fc", 64),
            LayerSpec("fc", classes),
        )
    m = re.fullmatch(r"mlp:([0-9]+(?:,[0-9]+)*)?", text)
    if not m:
        raise ValueError(f"arch must be 'mlp:W1,W2,...' or 'cnv-small', not {text!r}")
    widths = [int(v) for v in m[1].split(",")] if m[1] else []
    if any(w < 1 for w in widths):
        raise ValueError(f"arch widths must be positive, not {text!r}")
    return tuple(LayerSpec("fc", w) for w in widths) + (LayerSpec("fc", classes),)


@dataclass(frozen=True, eq=False)
class LayerFold:
    """One layer's integer form: stored weights, thresholds (None for the last), channel
    negation."""

    codes: np.ndarray
    weight_dtype: DataType
    input_dtype: DataType
    thresholds: np.ndarray | None
    negate: np.ndarray
    lo: int
    hi: int


@dataclass(eq=False)
class ZooNet:
    """A quantized network: layer specs, per-layer weight quantizers, parameters and state.

    ``params`` holds trainable float64 arrays (``W{i}`` as ``(OC, K*K*IC)``, ``(C, K*K)`` for a
    ``dwconv``, ``gamma{i}``,
    ``beta{i}``, ``wp{i}``/``wn{i}`` for TTQ, ``tau``); ``state`` holds the batch-norm statistics
    ``mean{i}``, ``var{i}``, pruning masks ``mask{i}``, INQ
    ``inq_frozen{i}``/``inq_codes{i}``/``inq_scale{i}``, and shared-weight
    ``share_idx{i}``/``share_codebook{i}``.
    """

    layers: tuple[LayerSpec, ...]
    weight_specs: tuple[WeightSpec, ...]
    acts: ActSpec
    input_dtype: DataType
    input_shape: tuple[int, ...]
    params: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    per_channel: bool = True
    bn_eps: float = 1e-5
    ste: str = "gate"
    ttq_t: float = 0.05

    # -- geometry -------------------------------------------------------------------------------

    @property
    def is_cnn(self) -> bool:
        return len(self.input_shape) == 3

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def shapes(self) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """``(input shape, output shape)`` of every layer (after its pool), without the batch
        axis."""
        out: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        shape = tuple(self.input_shape)
        for L in self.layers:
            new: tuple[int, ...]
            if L.windowed:
                h, w, _ = shape
                oh, ow = (
                    (h + 2 * L.pad - L.kernel) // L.stride + 1,
                    (w + 2 * L.pad - L.kernel) // L.stride + 1,
                )
                if L.pool:
                    oh, ow = oh // L.pool, ow // L.pool
                new = (oh, ow, L.out)
            else:
                new = (L.out,)
            out.append((shape, new))
            shape = new
        return out

    @property
    def exportable(self) -> bool:
        """True when activations and every layer's weights are quantized (INQ: fully; or shared)."""
        return self.acts.quantized and all(
            self.quantized_weights(i) is not None for i in range(self.n_layers)
        )

    def input_scale(self) -> float:
        return 1.0 / self.input_dtype.max

    def layer_input(self, i: int) -> tuple[DataType, float]:
        """Data type and value scale of layer ``i``'s inputs (value = scale * (stored - offset),
        the offset :meth:`input_offset`)."""
        if i == 0:
            return self.input_dtype, self.input_scale()
        b = self.layers[i - 1].bottleneck
        if b:
            return DataType.uint(b), float(self.state[f"bscale{i - 1}"])
        return self.acts.dtype, 1.0 / self.acts.n

    def input_offset(self, i: int) -> int:
        """The stored level of the value 0 at layer ``i``'s input: ``2^(B-1)`` after a bottleneck
        (signed levels stored unsigned), else 0."""
        b = self.layers[i - 1].bottleneck if i > 0 else 0
        return 1 << (b - 1) if b else 0

    def int_pad_value(self, i: int) -> int:
        """Stored value of a padding pixel of layer ``i``'s input in the exact pass: the level of
        0, ``-1`` for bipolar activations (the graph's pad bit 0)."""
        if i > 0 and self.layers[i - 1].bottleneck:
            return self.input_offset(i)
        return -1 if i > 0 and self.acts.kind == "binary" else 0

    # -- weights ---------------------------------------------------------------------------------

    def quantized_weights(self, i: int) -> Q.QuantizedWeights | None:
        """Layer ``i``'s quantized weights (None for float weights without sharing, or INQ in
        progress).

        Pruned weights (``mask{i}``) are zero. Only ``int:B`` (and shared) weights guarantee that
        every kept weight stays non-zero, so that the zero count equals the pruned count; ternary,
        TTQ and log2 quantizers zero small weights by design.
        """
        w = self.params[f"W{i}"]
        spec = self.weight_specs[i]
        mask = self.state.get(f"mask{i}")
        per_channel = self.per_channel and i < self.n_layers - 1
        if f"share_idx{i}" in self.state:
            codes, scale = shared_codebook(self.params[f"cb{i}"], self.state[f"share_bits{i}"])
            return Q.QuantizedWeights(
                codes[self.state[f"share_idx{i}"]],
                np.full(w.shape[0], scale),
                DataType.int(self.state[f"share_bits{i}"]),
            )
        if mask is not None:
            w = w * mask
        k = spec.kind
        if k == "float":
            return None
        dtype = spec.dtype
        if dtype is None:  # only float weights have no integer type
            raise AssertionError(k)
        if k == "binary":
            return Q.binary(w, per_channel=per_channel)
        if k == "bc":
            return Q.binary(w, scaled=False)
        if k == "ternary":
            return Q.twn(w, per_channel=per_channel)
        if k == "ttq":
            codes = Q.ttq_codes(w, self.ttq_t)
            if mask is not None:
                codes = codes * mask.astype(np.int64)
            p, n, s = Q.ttq_ratio(float(self.params[f"wp{i}"][0]), float(self.params[f"wn{i}"][0]))
            return Q.QuantizedWeights(
                np.where(codes > 0, p, np.where(codes < 0, -n, 0)),
                np.full(w.shape[0], s),
                dtype,
            )
        if k == "log2":
            return Q.log_quant(w, spec.bit_width)
        if k == "inq":
            frozen = self.state.get(f"inq_frozen{i}")
            if frozen is None or not frozen.all():
                return None  # not yet fully quantized: mixed float / power-of-two
            return Q.QuantizedWeights(
                self.state[f"inq_codes{i}"],
                np.full(w.shape[0], self.state[f"inq_scale{i}"]),
                dtype,
            )
        if k == "int":
            return Q.uniform_symmetric(w, spec.bit_width, per_channel=per_channel, mask=mask)
        if k == "dorefa":
            return Q.dorefa_weights(w, spec.bit_width)
        raise AssertionError(k)

    def weight_values(self, i: int) -> np.ndarray:
        """The float64 weights of layer ``i`` used by :meth:`forward`."""
        q = self.quantized_weights(i)
        if q is not None:
            return q.values
        w = self.params[f"W{i}"]
        if f"mask{i}" in self.state:
            w = w * self.state[f"mask{i}"]
        if self.weight_specs[i].kind == "inq" and f"inq_frozen{i}" in self.state:
            fz = self.state[f"inq_frozen{i}"]
            w = np.where(fz, self.state[f"inq_codes{i}"] * self.state[f"inq_scale{i}"], w)
        return w

    # -- float forward ----------------------------------------------------------------------------

    def prepare_input(self, x: np.ndarray) -> np.ndarray:
        """Integer inputs ``(B, features)`` or ``(B, *input_shape)`` to float values ``x / max``."""
        x = np.asarray(x)
        if x.ndim == 2 and self.is_cnn:
            x = x.reshape((x.shape[0],) + tuple(self.input_shape))
        if x.shape[1:] != tuple(self.input_shape):
            raise ValueError(
                f"inputs must have shape (B, {math.prod(self.input_shape)}) or "
                f"(B, {', '.join(map(str, self.input_shape))}), not {x.shape}"
            )
        return x.astype(np.float64) * self.input_scale()

    def _pad_value(self, i: int) -> float:
        """Value of a padding pixel of layer ``i``'s input: level 0 (``-1`` for bipolar
        activations; the value 0 after a bottleneck)."""
        if i > 0 and self.layers[i - 1].bottleneck:
            return 0.0
        return -1.0 if i > 0 and self.acts.kind == "binary" else 0.0

    def bottleneck_levels(self, i: int, v: np.ndarray) -> np.ndarray:
        """Signed levels ``q`` of bottleneck layer ``i``'s output values ``v`` (see
        :class:`LayerSpec`)."""
        half = 1 << (self.layers[i].bottleneck - 1)
        return np.clip(np.floor(v / self.state[f"bscale{i}"] + 0.5), -half, half - 1)

    def activation(self, z: np.ndarray) -> np.ndarray:
        a = self.acts
        if a.kind == "float":
            return np.maximum(z, 0.0)
        if a.kind == "binary":
            return np.where(z >= 0, 1.0, -1.0)
        return Q.act_levels(z, a.bit_width) / a.n

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(B, classes)`` of the fake-quantized network in evaluation mode (float64)."""
        return self._forward(x, None)

    def pre_activation(self, x: np.ndarray, layer: int) -> np.ndarray:
        """Layer ``layer``'s value dot products (before batch-norm, activation or bottleneck
        quantizer) in evaluation mode: ``(B, out)`` or ``(B, H, W, out)``, float64."""
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers - 1}], not {layer!r}")
        return self._forward(x, layer)

    def _forward(self, x: np.ndarray, stop: int | None) -> np.ndarray:
        h = self.prepare_input(x)
        for i, L in enumerate(self.layers):
            wv = L.matrix(self.weight_values(i))
            if L.windowed:
                cols = im2col(h, L.kernel, L.stride, L.pad, self._pad_value(i))
                y = cols @ wv.T
            else:
                y = h.reshape(h.shape[0], -1) @ wv.T
            if i == stop:
                return y
            if i == self.n_layers - 1:
                q = self.quantized_weights(i)
                if q is not None and (i == 0 or self.acts.quantized):
                    # Integer dot products times one scale: equal integer scores give equal logits,
                    # so arg-max ties resolve as in the integer graph (lowest index).
                    _, s_in = self.layer_input(i)
                    xi = np.rint(h.reshape(h.shape[0], -1) / s_in)  # the integer inputs, exactly
                    y = (xi @ q.codes.T.astype(np.float64)) * (s_in * q.scale[0])
                return y * math.exp(float(self.params["tau"][0]))
            if L.bottleneck:
                h = self.bottleneck_levels(i, y) * self.state[f"bscale{i}"]
                continue
            sigma = np.sqrt(self.state[f"var{i}"] + self.bn_eps)
            z = (
                self.params[f"gamma{i}"] * (y - self.state[f"mean{i}"]) / sigma
                + self.params[f"beta{i}"]
            )
            h = self.activation(z)
            if L.pool:
                h = maxpool_forward(h, L.pool)[0]
        raise AssertionError("unreachable")

    # -- exact forward -----------------------------------------------------------------------------

    def fold(self, i: int) -> LayerFold:
        """Layer ``i`` in integer form: codes, exact thresholds on the value dot product,
        negation."""
        if not self.exportable:
            raise LowbitError(
                "integer export needs quantized weights and activations "
                f"(weights {[s.name for s in self.weight_specs]}, acts {self.acts.name})"
            )
        q = self.quantized_weights(i)
        if q is None:
            raise LowbitError(
                f"layer {i}: weights are not fully quantized (INQ partitions incomplete)"
            )
        in_dtype, s_in = self.layer_input(i)
        mw = q.codes.shape[1]
        xl, xh = in_dtype.min, in_dtype.max  # values: -1 and +1 for BIPOLAR
        wl, wh = int(q.codes.min(initial=0)), int(q.codes.max(initial=0))
        wl, wh = min(wl, -wh), max(wh, -wl)  # symmetric: negated channels stay in range
        prods = (xl * wl, xl * wh, xh * wl, xh * wh)
        lo, hi = mw * min(prods), mw * max(prods)
        off = self.input_offset(i)
        if i == self.n_layers - 1:
            if off:
                raise LowbitError(f"layer {i}: the last layer cannot follow a bottleneck")
            return LayerFold(
                q.codes, q.dtype, in_dtype, None, np.zeros(q.codes.shape[0], bool), lo, hi
            )
        # value dot product = s_in * s_w * (dot - off * row sum): the offset of signed inputs
        rowsum = q.codes.sum(axis=1)
        b = self.layers[i].bottleneck
        if b:  # z = value / s_b, levels at q - 1/2 for q = -2^(B-1) + 1 .. 2^(B-1) - 1
            sb = F(self.state[f"bscale{i}"])
            a = [F(s_in) * F(sw) / sb for sw in q.scale]
            c = [-ai * off * int(r) for ai, r in zip(a, rowsum)]
            points = [F(2 * k - 1, 2) for k in range(1 - (1 << (b - 1)), 1 << (b - 1))]
        else:
            sigma = np.sqrt(self.state[f"var{i}"] + self.bn_eps)
            gamma, beta, mean = (
                self.params[f"gamma{i}"],
                self.params[f"beta{i}"],
                self.state[f"mean{i}"],
            )
            a = [F(g) * F(s_in) * F(sw) / F(sg) for g, sw, sg in zip(gamma, q.scale, sigma)]
            c = [
                F(bt) - F(g) * F(m) / F(sg) - ai * off * int(r)
                for g, bt, m, sg, ai, r in zip(gamma, beta, mean, sigma, a, rowsum)
            ]
            points = self.acts.decision_points()
        t, neg = fold_affine_thresholds(
            np.array(a, dtype=object),
            np.array(c, dtype=object),
            points,
            lo=lo,
            hi=hi,
        )
        return LayerFold(q.codes, q.dtype, in_dtype, t, neg, lo, hi)

    def folds(self) -> list[LayerFold]:
        return [self.fold(i) for i in range(self.n_layers)]

    def exact_forward(
        self, x: np.ndarray, folds: list[LayerFold] | None = None, *, chunk: int = 500
    ) -> np.ndarray:
        """Integer class scores (the last layer's value dot products), computed without rounding."""
        folds = self.folds() if folds is None else folds
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"inputs must be integers, not {x.dtype}")
        if x.ndim == 2 and self.is_cnn:
            x = x.reshape((x.shape[0],) + tuple(self.input_shape))
        if x.shape[1:] != tuple(self.input_shape) and x.shape[1:] != (math.prod(self.input_shape),):
            raise ValueError(
                f"inputs must have shape (B, {math.prod(self.input_shape)}) or "
                f"(B, {', '.join(map(str, self.input_shape))}), not {x.shape}"
            )
        parts = [self._exact_chunk(x[b : b + chunk], folds) for b in range(0, len(x), chunk)]
        return np.concatenate(parts) if parts else np.zeros((0, self.layers[-1].out), np.int64)

    def _exact_chunk(self, x: np.ndarray, folds: list[LayerFold]) -> np.ndarray:
        h = x.astype(np.float64)  # integer values (bipolar as +-1); float64 holds them exactly
        for i, (L, f) in enumerate(zip(self.layers, folds)):
            if L.windowed:
                cols = im2col(h, L.kernel, L.stride, L.pad, self.int_pad_value(i))
            else:
                cols = h.reshape(h.shape[0], -1)
            bound = (
                float(np.abs(cols).max(initial=0))
                * float(np.abs(f.codes).max(initial=0))
                * f.codes.shape[1]
            )
            if bound >= 2**52:
                raise OverflowError(f"layer {i}: dot products may exceed 2^52 (bound {bound:g})")
            dot = cols @ L.matrix(f.codes).T.astype(np.float64)  # exact: integers below 2^52
            if f.thresholds is None:
                return dot.astype(np.int64)
            sdot = np.where(f.negate, -dot, dot).astype(np.int64)
            level = _multithreshold(sdot, f.thresholds)
            binary = self.acts.kind == "binary" and not L.bottleneck
            h = (2.0 * level - 1.0) if binary else level.astype(np.float64)
            if L.pool:
                h = maxpool_forward(h, L.pool)[0]
        raise AssertionError("unreachable")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class decisions: the exact pass when exportable, else the float pass; ties to the lowest
        index."""
        if self.exportable:
            return np.argmax(self.exact_forward(x), axis=-1).astype(np.int64)
        return np.argmax(
            self.forward(x.astype(np.int64) if np.asarray(x).dtype.kind in "iu" else x), axis=-1
        )

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(x) == np.asarray(y)))

    def copy(self) -> "ZooNet":
        return replace(
            self,
            params={k: v.copy() for k, v in self.params.items()},
            state={
                k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.state.items()
            },
        )


def _multithreshold(acc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``sum_i [acc[..., c] >= t[c, i]]`` with ascending rows: a binary search per channel."""
    if t.shape[1] <= 3:
        return (acc[..., None] >= t).sum(axis=-1)
    out = np.empty(acc.shape, dtype=np.int64)
    for c in range(t.shape[0]):
        out[..., c] = np.searchsorted(t[c], acc[..., c], side="right")
    return out


def init_net(
    layers: tuple[LayerSpec, ...],
    weights: WeightSpec,
    acts: ActSpec,
    input_dtype: DataType,
    input_shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    first_bits: int | None = 8,
    last_bits: int | None = 8,
    **kw,
) -> ZooNet:
    """A freshly initialised :class:`ZooNet` (He-uniform latent weights, ``gamma = 1``,
    ``beta = 0``).

    Mixed precision: with quantized weights, the first and last layers use ``int:first_bits`` and
    ``int:last_bits`` (``None`` keeps the scheme there too).
    """
    n = len(layers)
    specs = []
    for i in range(n):
        spec = weights
        if weights.quantized and i == 0 and first_bits is not None:
            spec = WeightSpec("int", first_bits)
        if weights.quantized and i == n - 1 and last_bits is not None:
            spec = WeightSpec("int", last_bits)
        specs.append(spec)
    net = ZooNet(tuple(layers), tuple(specs), acts, input_dtype, tuple(input_shape), **kw)
    shapes = net.shapes()
    for i, (L, (shp_in, _)) in enumerate(zip(layers, shapes)):
        if L.windowed:
            if len(shp_in) != 3:
                raise ValueError(f"layer {i}: a convolution needs an image input, not {shp_in}")
            if L.kind == "dwconv" and L.out != shp_in[2]:
                raise ValueError(
                    f"layer {i}: a depthwise convolution keeps its {shp_in[2]} input channels, "
                    f"not {L.out}"
                )
            fan_in = L.kernel * L.kernel * (1 if L.kind == "dwconv" else shp_in[2])
        else:
            fan_in = math.prod(shp_in)
        lim = math.sqrt(6.0 / fan_in)
        if specs[i].kind in ("binary", "bc"):
            lim = min(lim, 1.0)
        net.params[f"W{i}"] = rng.uniform(-lim, lim, (L.out, fan_in))
        if specs[i].kind == "ttq":
            kept = np.abs(net.params[f"W{i}"])
            kept = kept[kept > net.ttq_t * kept.max()]
            net.params[f"wp{i}"] = np.array([kept.mean()])
            net.params[f"wn{i}"] = np.array([kept.mean()])
        if i < n - 1:
            net.params[f"gamma{i}"] = np.ones(L.out)
            net.params[f"beta{i}"] = np.zeros(L.out)
            net.state[f"mean{i}"] = np.zeros(L.out)
            net.state[f"var{i}"] = np.ones(L.out)
    net.params["tau"] = np.array([0.0])
    return net
