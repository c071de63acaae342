"""The importer's handlers: one function per ONNX operator, named by the op table (:mod:`.ops`).

A handler lowers one node whose operands include the activation: ``handler(lw, node, ins, attrs)``
gets the lowering state ``lw`` (:class:`lowbit.quant.onnx.lower.Lowering`), the node, its inputs
(the activation, constants, quantized constants or ``None``) and its decoded attributes, and
returns the node's output (an activation, or a constant for shape arithmetic). It raises through
``lw.err`` (or ``ValueError``), which names the file, node and op type. A weight quantizer's
``fold`` function has the same signature and turns constant weights into a quantized constant.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import onnx

from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ...ir.graph import (
    Concat,
    GlobalAccPool,
    MaxPool,
    MaxPool1D,
    SlidingWindow,
    SlidingWindow1D,
)
from ...limits import LIMITS
from ...sw_reference import join_coefficients
from ..streamline import (
    Affine,
    BipolarQuantizer,
    Clip,
    IntQuantizer,
    Relu,
    SignQuantizer,
    ThresholdQuantizer,
    TruncQuantizer,
    exact,
    fraction_array,
    round_mode,
)
from .executors import dtype_name as _dtype_name
from .executors import per_axis, qonnx_int_range, quant_float
from .states import (
    Act,
    Codes,
    Layer,
    Pending,
    Pool,
    QConst,
    Raw,
    image_idx,
    seq_idx,
    weight_dtype,
)

__all__ = [
    "identity",
    "cast",
    "add",
    "sub",
    "mul",
    "div",
    "batch_normalization",
    "relu",
    "clip",
    "sign",
    "quant",
    "bipolar_quant",
    "trunc",
    "multi_threshold",
    "quantize_linear",
    "dequantize_linear",
    "reshape_like",
    "gemm",
    "matmul",
    "xnor_popcount_matmul",
    "matmul_integer",
    "qlinear_matmul",
    "conv",
    "im2col",
    "max_pool",
    "max_pool_nhwc",
    "average_pool",
    "global_average_pool",
    "reduce_sum",
    "shape",
    "gather",
    "concat",
    "greater_or_equal",
    "qlinear_conv",
    "fold_quant",
    "fold_bipolar_quant",
    "fold_dequantize_linear",
    "constant",
]

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}
_ACC_BITS = 64
"""The widest accumulator a ``Trunc`` may declare as its input bit width."""


def _per_tensor_or_channel(lw, node, act, v: np.ndarray, what: str) -> np.ndarray:
    """A quantizer parameter as one value per physical channel."""
    if v.size > 1:
        return lw.per_channel(node, act, v, what)
    return np.full(act.channels, float(v.reshape(-1)[0]))


# element-wise operators -----------------------------------------------------------------------


def identity(lw, node, ins, a):
    """``Identity`` and ``Dropout`` (inference): the activation unchanged."""
    return ins[0]


def cast(lw, node, ins, a):
    """Casts keep values; a cast to an integer type must not round a float activation."""
    act = ins[0]
    to = a.get("to", onnx.TensorProto.FLOAT)
    if to not in _FLOAT_TYPES and not isinstance(act, Codes) and act.last_quantizer() is None:
        raise lw.err(
            node,
            f"casts a float activation to {_dtype_name(to)}, "
            "which would round it; quantize it first (QuantizeLinear or Quant)",
        )
    return act


def _operands(lw, node, ins):
    """The activation, the constant operand (float64) and whether the activation comes first."""
    act_first = isinstance(ins[0], Act)
    act = ins[0] if act_first else ins[1]
    return act, lw.fconst(node, node.input[1 if act_first else 0], "constant"), act_first


def add(lw, node, ins, a):
    """``Add`` of a per-channel or per-tensor constant: an exact affine map; ``Add`` of two
    activations: a join (:func:`_add_join`)."""
    if sum(isinstance(x, Act) for x in ins) == 2:
        return _add_join(lw, node, ins)
    act, k, _ = _operands(lw, node, ins)
    return lw.elementwise(node, act, lw.affine_from(node, act, 1.0, k, "the added constant"))


def _add_join(lw, node, ins) -> Pending:
    """``Add`` of two quantized activations of one layout: a pending ``Add`` node whose integer
    accumulator ``p * x_a + q * x_b`` (per channel, ``p / q = s_a / s_b`` in lowest terms:
    :func:`lowbit.sw_reference.join_coefficients`) has the value ``u * acc + o_a + o_b``, so the
    requantizer after the sum folds into one set of thresholds (:mod:`.solve`)."""
    xa, xb = lw.join_codes(node, ins[:2])
    if xa.phys != xb.phys or not np.array_equal(xa.idx, xb.idx):
        raise lw.err(
            node,
            f"adds activations of different shapes or layouts ({list(xa.idx.shape)} from "
            f"{xa.origin!r}, {list(xb.idx.shape)} from {xb.origin!r})",
        )
    c = xa.channels
    w = np.zeros((c, 2 * c), dtype=np.int64)
    unit = np.empty(c, dtype=object)
    for ch in range(c):
        p, q, u = join_coefficients(xa.scale[ch], xb.scale[ch])
        w[ch, ch], w[ch, c + ch], unit[ch] = p, q, u
    offset = np.array([xa.offset[ch] + xb.offset[ch] for ch in range(c)], dtype=object)
    lo = min(xa.dtype.min, xb.dtype.min, -1)
    in_dtype = DataType.for_range(lo, max(xa.dtype.max, xb.dtype.max))
    wdtype = DataType.for_range(min(int(w.min()), -1), max(int(w.max()), 1))
    lw.limit(node, "bits of the join's coefficients", wdtype.bits, 40)
    kind = ("add", xa.src, xb.src, xa.dtype, xb.dtype)
    layer = Layer(node.name, in_dtype, w, wdtype, unit, offset, False, kind)
    return Pending(xa.idx, xa.phys, node.name, layer)


def concat(lw, node, ins, a):
    """``Concat`` of two or more quantized images (sequences, vectors) along the channels, codes
    of one type: a ``Concat`` node; on constants only, shape arithmetic (the lowering folds
    it)."""
    acts = [x for x in ins if isinstance(x, Act)]
    if len(acts) != len(ins):
        return gather(lw, node, ins, a)
    xs = lw.join_codes(node, acts)
    nd = xs[0].idx.ndim
    axis = a.get("axis", 1)
    if axis not in (1, -nd) or len({x.dtype for x in xs}) != 1:
        raise lw.err(
            node,
            "lowbit concatenates activations of one type along the channels (axis 1), not "
            f"axis {axis} of {', '.join(str(x.dtype) for x in xs)}",
        )
    for x in xs:
        if nd == 3:
            _image(lw, node, x)
        elif nd == 2:
            _sequence(lw, node, x)
        elif nd != 1 or not np.array_equal(x.idx, np.arange(x.channels)):
            raise lw.err(node, "concatenates images (NCHW), sequences (NCL) or vectors only")
    if len({x.phys[:-1] for x in xs}) != 1:
        raise lw.err(node, f"its inputs differ in size: {[list(x.phys) for x in xs]}")
    c = sum(x.channels for x in xs)
    lw.emit(Concat(node.name), node.name, tuple(x.src for x in xs))
    phys = xs[0].phys[:-1] + (c,)
    idx = (
        image_idx(c, phys[0], phys[1])
        if nd == 3
        else seq_idx(c, phys[0]) if nd == 2 else np.arange(c)
    )
    scale = np.concatenate([x.scale for x in xs])
    offset = np.concatenate([x.offset for x in xs])
    return Codes(idx, phys, node.name, xs[0].dtype, scale, offset)


def sub(lw, node, ins, a):
    """``Sub`` of a constant, or from a constant: an exact affine map."""
    act, k, act_first = _operands(lw, node, ins)
    if act_first:
        affine = lw.affine_from(node, act, 1.0, -k, "the subtracted constant")
    else:
        affine = lw.affine_from(node, act, -np.ones_like(k), k, "the constant")
    return lw.elementwise(node, act, affine)


def mul(lw, node, ins, a):
    """``Mul`` by a per-channel or per-tensor constant: an exact affine map."""
    act, k, _ = _operands(lw, node, ins)
    return lw.elementwise(node, act, lw.affine_from(node, act, k, 0.0, "the factor"))


def div(lw, node, ins, a):
    """``Div`` by a non-zero constant: an exact affine map."""
    act, k, act_first = _operands(lw, node, ins)
    if not act_first:
        raise lw.err(
            node, "divides a constant by an activation; only division by a constant is supported"
        )
    if (k == 0).any():
        raise lw.err(node, "divides by zero")
    inv = (
        lw.per_channel(node, act, k, "the divisor")
        if np.ndim(k)
        else np.full(act.channels, float(k))
    )
    return lw.elementwise(
        node,
        act,
        Affine(
            np.array([1 / exact(v) for v in inv], dtype=object),
            fraction_array(np.zeros(act.channels)),
        ),
    )


def batch_normalization(lw, node, ins, a):
    """``BatchNormalization`` (inference) with constant statistics: an exact affine map."""
    act = ins[0]
    gamma, beta, mean, var = (
        lw.fconst(node, n, w) for n, w in zip(node.input[1:5], ("scale", "bias", "mean", "var"))
    )
    if (var < 0).any():
        raise lw.err(node, "variance must be non-negative")
    eps = a.get("epsilon", 1e-5)
    shape = (-1,) + (1,) * (act.idx.ndim - 1)
    c = act.channels
    # exact: z = gamma * (y - mean) / sqrt(var + eps) + beta; sqrt in float64 (as every runtime)
    sigma = np.sqrt(var.astype(np.float64) + eps)
    g = lw.per_channel(node, act, (gamma / sigma).reshape(shape), "batch-norm scale")
    pm = lw.per_channel(node, act, mean.reshape(shape), "batch-norm mean")
    pb = lw.per_channel(node, act, beta.reshape(shape), "batch-norm bias")
    s = np.array([exact(g[i]) for i in range(c)], dtype=object)
    o = np.array([exact(pb[i]) - exact(g[i]) * exact(pm[i]) for i in range(c)], dtype=object)
    return lw.elementwise(node, act, Affine(s, o))


def relu(lw, node, ins, a):
    """``Relu``: an exact element-wise function."""
    return lw.elementwise(node, ins[0], Relu())


def clip(lw, node, ins, a):
    """``Clip`` with constant bounds (inputs, or attributes of old opsets)."""
    lo = a.get("min") if len(ins) < 2 or ins[1] is None else lw.scalar(node, node.input[1], "min")
    hi = a.get("max") if len(ins) < 3 or ins[2] is None else lw.scalar(node, node.input[2], "max")
    return lw.elementwise(
        node, ins[0], Clip(None if lo is None else exact(lo), None if hi is None else exact(hi))
    )


def sign(lw, node, ins, a):
    """``Sign``: a quantizer to ``{-1, 0, 1}``."""
    return lw.elementwise(node, ins[0], SignQuantizer())


def quant(lw, node, ins, a):
    """QONNX ``Quant`` / ``IntQuant`` of the activation: a bipolar (1-bit signed) or integer
    quantizer with per-channel or per-tensor scale and zero point."""
    act = ins[0]
    scale, zp = _quant_params(lw, node, a)
    bits = int(lw.fconst(node, node.input[3]).reshape(-1)[0])
    lw.limit(node, "activation bit width", bits, LIMITS.act_bits)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    s = _per_tensor_or_channel(lw, node, act, scale, "scale")
    z = _per_tensor_or_channel(lw, node, act, zp, "zero point")
    if bits == 1 and signed:
        if (z != 0).any():
            raise lw.err(node, "a 1-bit signed Quant needs zero point 0")
        return lw.elementwise(node, act, BipolarQuantizer(fraction_array(s)))
    lo, hi = qonnx_int_range(bits, signed, narrow)
    return lw.elementwise(
        node,
        act,
        IntQuantizer(fraction_array(s), fraction_array(z), lo, hi, a.get("rounding_mode", "ROUND")),
    )


def bipolar_quant(lw, node, ins, a):
    """QONNX ``BipolarQuant`` of the activation: ``scale * sign`` with ``sign(0) = +1``."""
    act = ins[0]
    s = _per_tensor_or_channel(lw, node, act, _scale(lw, node), "scale")
    return lw.elementwise(node, act, BipolarQuantizer(fraction_array(s)))


def _bit_width(lw, node, name: str, what: str) -> int:
    """The constant ``name`` as a positive integer bit width."""
    v = lw.scalar(node, name, what)
    if v != round(v) or v < 1:
        raise lw.err(node, f"{what} must be a positive integer, not {v:g}")
    return int(v)


def trunc(lw, node, ins, a):
    """QONNX ``Trunc`` as qonnx 1.0 defines it (:func:`.executors.trunc`), told apart by its
    inputs: v1 (five) keeps the input scale and shifts by the difference of the bit widths; v2
    (six, Brevitas' order: the output scale before the output bit width) shifts by the power of
    two nearest ``output scale / scale`` and clips to the output bit width. An output wider than
    the input is an exact left shift."""
    act = ins[0]  # five or six operands (the op table's schema)
    s = _per_tensor_or_channel(lw, node, act, _scale(lw, node), "scale")
    zp = lw.fconst(node, node.input[2], "zero point")
    z = _per_tensor_or_channel(lw, node, act, zp, "zero point")
    mode = a.get("rounding_mode", "FLOOR")
    round_mode(mode)  # a ValueError naming the modes for an unknown one
    if len(node.input) == 5:
        ibw = _bit_width(lw, node, node.input[3], "input bit width")
        obw = _bit_width(lw, node, node.input[4], "output bit width")
        if ibw > _ACC_BITS:
            raise lw.err(node, f"input bit width {ibw} exceeds the {_ACC_BITS}-bit accumulators")
        lw.limit(node, "output bit width", obw, LIMITS.act_bits)
        shift = Fraction(2) ** (ibw - obw)
        out = lw.elementwise(
            node,
            act,
            TruncQuantizer(fraction_array(s), fraction_array(z), shift, fraction_array(s), mode),
            internal=bool(z.any()),
        )
        if not z.any():
            return out
        # v1 subtracts the zero point itself after the shift; TruncQuantizer subtracts zp / shift
        fz = fraction_array(z)
        offset = np.array(
            [-(fz[i] - fz[i] / shift) * exact(s[i]) for i in range(act.channels)], dtype=object
        )
        return lw.elementwise(node, out, Affine(fraction_array(np.ones(act.channels)), offset))
    obw = _bit_width(lw, node, node.input[5], "output bit width")
    lw.limit(node, "output bit width", obw, LIMITS.act_bits)
    os_ = lw.fconst(node, node.input[4], "output scale")
    if (os_ <= 0).any():
        raise lw.err(node, f"output scale must be positive, found {os_.min():g}")
    o = _per_tensor_or_channel(lw, node, act, os_, "output scale")
    shifts = {round(math.log2(o[i] / s[i])) for i in range(act.channels)}
    if len(shifts) > 1:
        raise lw.err(
            node,
            "the power of two nearest output scale / scale differs between channels "
            f"({sorted(shifts)}); lowbit truncates every channel by the same shift",
        )
    lo, hi = qonnx_int_range(obw, bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
    return lw.elementwise(
        node,
        act,
        TruncQuantizer(
            fraction_array(s),
            fraction_array(z),
            Fraction(2) ** shifts.pop(),
            fraction_array(o),
            mode,
            lo,
            hi,
        ),
    )


def multi_threshold(lw, node, ins, a):
    """QONNX ``MultiThreshold`` with sorted constant thresholds, one row per channel or shared."""
    act = ins[0]
    t = lw.fconst(node, node.input[1], "thresholds")
    if t.ndim != 2:
        raise lw.err(node, f"thresholds must have shape (C, k), not {t.shape}")
    lw.limit(node, "thresholds per channel", t.shape[1], LIMITS.thresholds)
    if (np.diff(t, axis=1) < 0).any():
        raise lw.err(node, "each row of thresholds must be sorted ascending")
    layout = a.get("data_layout", "")
    nd = act.idx.ndim
    axis = nd - 1 if layout in ("NHWC", "NC", "NWC") or (layout == "" and nd == 1) else 0
    logical_c = np.indices(act.idx.shape)[axis] if nd > 1 else np.arange(act.idx.shape[0])
    lch = lw.per_channel(node, act, logical_c[None], "the channel axis")
    if t.shape[0] not in (1, act.idx.shape[axis]):
        raise lw.err(
            node,
            f"thresholds have {t.shape[0]} rows, but the channel axis has "
            f"{act.idx.shape[axis]} channels",
        )
    lw.limit(node, "thresholds in all", t.shape[1] * act.channels, LIMITS.tensor_elements)
    rows = np.array([t[0 if t.shape[0] == 1 else int(ch)] for ch in lch])
    return lw.elementwise(
        node,
        act,
        ThresholdQuantizer(
            fraction_array(rows), exact(a.get("out_scale", 1.0)), exact(a.get("out_bias", 0.0))
        ),
    )


def _axis_param(lw, node, act, v, axis, what):
    """A per-tensor or per-axis QDQ parameter as one value per physical channel."""
    if v.size == 1:
        return np.full(act.channels, float(v.reshape(-1)[0]))
    shape = [1] * (act.idx.ndim + 1)
    shape[axis] = -1
    return lw.per_channel(node, act, v.reshape(shape), what)


def quantize_linear(lw, node, ins, a):
    """``QuantizeLinear`` to uint8 or int8: round, then saturate; the output is the codes."""
    act = ins[0]
    scale = _scale(lw, node)
    zp_raw = ins[2] if len(ins) > 2 and ins[2] is not None else np.zeros((), dtype=np.uint8)
    zp_raw = np.asarray(zp_raw)
    if zp_raw.dtype not in (np.uint8, np.int8):
        raise lw.err(
            node, f"zero point type {zp_raw.dtype} is not supported; expected uint8 or int8"
        )
    info = np.iinfo(zp_raw.dtype)
    axis = a.get("axis", 1)
    s = _axis_param(lw, node, act, scale, axis, "scale")
    z = _axis_param(lw, node, act, zp_raw.astype(np.float64), axis, "zero point")
    return lw.elementwise(
        node,
        act,
        IntQuantizer(
            fraction_array(s),
            fraction_array(z),
            int(info.min),
            int(info.max),
            "ROUND",
            round_then_clip=True,
            dequantize=False,
        ),
    )


def dequantize_linear(lw, node, ins, a):
    """``DequantizeLinear`` of the activation: the exact affine map ``(x - zero) * scale``."""
    act = ins[0]
    scale = _scale(lw, node)
    zp = (
        lw.fconst(node, node.input[2], "zero point")
        if len(ins) > 2 and ins[2] is not None
        else np.zeros(1)
    )
    axis = a.get("axis", 1)
    s = _axis_param(lw, node, act, scale, axis, "scale")
    z = _axis_param(lw, node, act, zp, axis, "zero point")
    offset = np.array([-exact(zi) * exact(si) for zi, si in zip(z, s)], dtype=object)
    return lw.elementwise(node, act, Affine(fraction_array(s), offset))


# layout ---------------------------------------------------------------------------------------


def reshape_like(lw, node, ins, a):
    """``Reshape``, ``Flatten``, ``Transpose``, ``Squeeze``, ``Unsqueeze``: the operator applied to
    the activation's layout (``idx``), the batch axis kept first; no data moves."""
    act = ins[0]
    rest = [x if not isinstance(x, QConst) else x.value for x in ins[1:]]
    if lw.ops[node.op_type].reshape and len(rest) > 0 and rest[0] is not None:  # a target shape
        target = np.asarray(rest[0]).reshape(-1)
        if target.dtype.kind not in "iuf" or (target != np.round(target)).any() or (
            target < -1
        ).any():
            raise lw.err(node, f"shape {target.tolist()} must hold integers >= -1")
        known = math.prod(int(d) for d in target if d > 0)
        shape = target.astype(np.int64).tolist()
        lw.limit(node, f"shape {shape}: element count", known, LIMITS.tensor_elements)
    try:
        out = lw.execute(node, [act.idx[None]] + rest)[0]
    except ValueError as e:
        raise lw.err(
            node, f"cannot apply to the activation of shape {[1, *act.idx.shape]}: {e}"
        ) from None
    if out.ndim < 1 or out.shape[0] != 1:
        raise lw.err(
            node,
            f"moves the batch axis (output shape {list(out.shape)}); keep the batch axis first",
        )
    if isinstance(act, Raw):
        return replace(act, idx=out[0], tensor=node.output[0])
    return replace(act, idx=out[0])


# matrix products ------------------------------------------------------------------------------


def _pending_matmul(
    lw,
    node,
    x: Codes,
    wq: np.ndarray,
    row_scale,
    wdtype,
    bias,
    name,
    cols_phys,
    out_idx,
    out_phys,
    alpha=1.0,
) -> Pending:
    """Start a pending layer: ``wq`` (MH, K) logical codes, columns mapped to physical positions."""
    mh = wq.shape[0]
    xnor = x.dtype.kind is Kind.BIPOLAR and wdtype.kind is Kind.BIPOLAR
    # input channel of every column, uniform input scale per row over its non-zero weights
    col_ch = cols_phys % x.channels
    s_in = x.scale[col_ch]
    o_in = x.offset[col_ch]
    S = np.empty(mh, dtype=object)
    offsets = np.empty(mh, dtype=object)
    uniq_o: dict[Fraction, list[int]] = {}
    for j, o in enumerate(o_in):
        uniq_o.setdefault(o, []).append(j)
    for r in range(mh):
        nz = np.nonzero(wq[r])[0] if wdtype.kind is not Kind.BIPOLAR else np.arange(wq.shape[1])
        scales = {s_in[j] for j in nz}
        if len(scales) > 1:
            raise lw.err(
                node,
                "its input has per-channel scales that differ across the inputs "
                "of one output; use a per-tensor activation quantizer before this "
                "layer",
            )
        si = next(iter(scales)) if scales else Fraction(1)
        k = exact(row_scale[r]) * exact(alpha)
        S[r] = k * si
        off = sum((o * int(wq[r, js].sum()) for o, js in uniq_o.items() if o != 0), Fraction(0))
        offsets[r] = k * off + (exact(bias[r]) if bias is not None else Fraction(0))
    return Pending(out_idx, out_phys, name, Layer(name, x.dtype, wq, wdtype, S, offsets, xnor))


def _pixel_vector(lw, node, x: Codes) -> Codes:
    """The channels of a 1x1 image as a vector: a global sum over its one pixel (the same values),
    so that the integer graph reads the next product as fully connected (on a 1x1 image it is a
    pixel-wise product, whose output keeps the image shape: a global ``TruncAvgPool2d`` or a
    convolution as wide as its input followed by ``Flatten`` and the last layer)."""
    lw.emit(GlobalAccPool(f"{node.name}_flatten", x.dtype), node.name)
    dtype = DataType.for_range(x.dtype.min, x.dtype.max)
    return Codes(x.idx, (x.channels,), x.origin, dtype, x.scale, x.offset)


def _fc(lw, node, x: Act, wlog: np.ndarray, row_scale, wdtype, bias, alpha=1.0) -> Pending:
    """A fully connected layer on the activation ``x`` with logical weights ``(MH, K)``."""
    codes: Codes = lw.codes(node, x)
    k = int(np.prod(codes.idx.shape))
    if wlog.shape[1] != codes.idx.shape[-1]:
        raise lw.err(
            node,
            f"weights have {wlog.shape[1]} inputs, but the activation has shape "
            f"{[1, *codes.idx.shape]}",
        )
    if codes.idx.ndim != 1:
        raise lw.err(node, f"needs a vector input (1, K), not {[1, *codes.idx.shape]}; add Flatten")
    if k != int(np.prod(codes.phys)):
        raise lw.err(
            node, "its input is a part of the previous tensor; lowbit needs the whole tensor"
        )
    if len(codes.phys) == 3 and codes.phys[0] * codes.phys[1] == 1:
        codes = _pixel_vector(lw, node, codes)
    if len(codes.phys) == 2 and codes.phys[0] == 1:
        raise lw.err(
            node,
            f"reads a sequence of length 1 {codes.phys}; lowbit needs a length of at least 2 "
            "before a fully connected layer",
        )
    w = np.zeros((wlog.shape[0], k), dtype=np.int64)
    w[:, codes.idx] = wlog
    cols = np.arange(k)
    mh = wlog.shape[0]
    return _pending_matmul(
        lw, node, codes, w, row_scale, wdtype, bias, node.name, cols, np.arange(mh), (mh,), alpha
    )


def gemm(lw, node, ins, a):
    """``Gemm`` of the activation (operand A) and constant weights, with optional bias."""
    if a.get("transA", 0):
        raise lw.err(
            node, "transA=1 is not supported; transpose the activation with Transpose first"
        )
    if not isinstance(ins[0], Act):
        raise lw.err(node, "the activation must be the first operand (A)")
    codes, rs, dt = lw.weights(node, node.input[1], 0 if a.get("transB", 0) else 1)
    wlog = codes if a.get("transB", 0) else codes.T
    bias = None
    if len(ins) > 2 and ins[2] is not None:
        b = np.broadcast_to(lw.fconst(node, node.input[2], "bias"), (wlog.shape[0],))
        bias = fraction_array(b * a.get("beta", 1.0))
    return _fc(lw, node, ins[0], wlog, rs, dt, bias, a.get("alpha", 1.0))


def matmul(lw, node, ins, a):
    """``MatMul`` of the activation and a constant ``(K, N)`` matrix: a fully connected layer, or
    a 1x1 convolution on an NHWC image."""
    if not isinstance(ins[0], Act):
        raise lw.err(node, "the activation must be the first operand (x @ W)")
    if isinstance(ins[1], Act):
        raise lw.err(
            node,
            f"weights {node.input[1]!r} must be a constant (an initializer), not an activation",
        )
    w = lw.const(node, node.input[1])
    if np.ndim(w.codes if isinstance(w, QConst) else w) != 2:
        raise lw.err(node, "weights must be a 2-D matrix (K, N)")
    x = ins[0]
    if x.idx.ndim == 3 and len(x.phys) == 3:  # NHWC image times (K, N): a 1x1 convolution
        codes, rs, dt = lw.weights(node, node.input[1], 1)
        return _pixelwise(lw, node, x, codes.T, rs, dt)
    codes, rs, dt = lw.weights(node, node.input[1], 1)
    return _fc(lw, node, x, codes.T, rs, dt, None)


def _pixelwise(lw, node, x, wlog, rs, dt) -> Pending:
    """A 1x1 convolution of an NHWC image with logical weights ``(MH, C)``."""
    x = lw.codes(node, x)
    if not np.array_equal(x.idx, image_idx(x.phys[2], x.phys[0], x.phys[1], nchw=False)):
        raise lw.err(node, "needs an NHWC activation on its last axis")
    if wlog.shape[1] != x.phys[2]:
        raise lw.err(
            node,
            f"weights have {wlog.shape[1]} inputs, but the activation has {x.phys[2]} channels",
        )
    h, w, c = x.phys
    mh = wlog.shape[0]
    return _pending_matmul(
        lw,
        node,
        x,
        wlog,
        rs,
        dt,
        None,
        node.name,
        np.arange(c),
        image_idx(mh, h, w, nchw=False),
        (h, w, mh),
    )


def xnor_popcount_matmul(lw, node, ins, a):
    """FINN ``XnorPopcountMatMul`` of binary codes and constant weight bits: the popcount."""
    x = lw.codes(node, ins[0])
    if x.dtype.kind is not Kind.BIPOLAR:
        raise lw.err(node, f"needs a binary input, not {x.dtype}")
    wb = np.asarray(lw.fconst(node, node.input[1], "weights"))
    if not set(np.unique(wb).tolist()) <= {0.0, 1.0}:
        raise lw.err(node, "weights must be bits (0/1)")
    wvals = (2 * wb.T - 1).astype(np.int64)
    k = wvals.shape[1]
    half = fraction_array(np.full(x.channels, 0.5))
    bits = replace(x, scale=half, offset=half)
    act = _fc(lw, node, bits, wvals, fraction_array(np.ones(wvals.shape[0])), BIPOLAR, None)
    mh = wvals.shape[0]
    # popcount = (d + K) / 2
    scale = np.array([Fraction(1, 2)] * mh, dtype=object)
    offset = np.array([Fraction(k, 2)] * mh, dtype=object)
    return replace(act, layer=replace(act.layer, scale=scale, offset=offset))


def matmul_integer(lw, node, ins, a):
    """``MatMulInteger`` of the activation's codes and constant integer weights (zero points
    optional)."""
    x = lw.codes(node, ins[0])
    if len(ins) > 2 and ins[2] is not None:
        z = lw.fconst(node, node.input[2], "a zero point")
        x = lw.elementwise(node, x, lw.affine_from(node, x, 1.0, -z, "a zero point"), internal=True)
    w = np.asarray(lw.const(node, node.input[1], "weights")).astype(np.int64)
    if len(ins) > 3 and ins[3] is not None:
        w = w - np.asarray(lw.const(node, node.input[3], "b zero point")).astype(np.int64)
    node_w = w.T
    return _fc(
        lw, node, x, node_w, fraction_array(np.ones(node_w.shape[0])), weight_dtype(node_w), None
    )


def _dequantized(lw, node, x: Codes, names: tuple[str, str], what: tuple[str, str]):
    """The codes ``x`` seen through a QLinear operator's input scale and zero point."""
    xs, xz = lw.scalar(node, names[0], what[0]), lw.scalar(node, names[1], what[1])
    return lw.elementwise(
        node,
        x,
        Affine(fraction_array([xs] * x.channels), fraction_array([-xz * xs] * x.channels)),
        internal=True,
    ), xs


def qlinear_matmul(lw, node, ins, a):
    """``QLinearMatMul``: a fully connected layer followed by its requantization."""
    x = lw.codes(node, ins[0])
    x, _ = _dequantized(lw, node, x, node.input[1:3], ("a scale", "a zero point"))
    b = np.asarray(lw.const(node, node.input[3], "b")).astype(np.int64)
    bs = lw.fconst(node, node.input[4], "b scale")
    bz = lw.fconst(node, node.input[5], "b zero point")
    codes = b - per_axis(bz, 2, 1).astype(np.int64)
    rs = fraction_array(np.broadcast_to(bs.reshape(-1), (b.shape[1],)))
    act = _fc(lw, node, x, codes.T, rs, weight_dtype(codes.T), None)
    return _requant(lw, node, act, ins[6:8], node.input[6:8])


def _requant(lw, node, act, ins, names):
    """``act`` followed by a QLinear operator's output quantizer (round, then saturate)."""
    ys = lw.fconst(node, names[0], "y scale")
    yz = np.asarray(ins[1])
    info = np.iinfo(yz.dtype)
    c = act.channels
    return act.then(
        IntQuantizer(
            fraction_array(np.full(c, float(ys.reshape(-1)[0]))),
            fraction_array(np.full(c, float(yz.reshape(-1)[0]))),
            int(info.min),
            int(info.max),
            "ROUND",
            round_then_clip=True,
            dequantize=False,
        )
    )


# convolutions and pools -----------------------------------------------------------------------


def _image(lw, node, x: Act, nchw=True) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image activation in the standard NCHW (or NHWC) layout."""
    if len(x.phys) != 3 or x.idx.ndim != 3:
        raise lw.err(node, f"needs an image (1, C, H, W), not {[1, *x.idx.shape]}")
    h, w, c = x.phys
    if not np.array_equal(x.idx, image_idx(c, h, w, nchw)):
        raise lw.err(
            node,
            "its input is not in NCHW layout (a Transpose before it is not supported)"
            if nchw
            else "its input is not in NHWC layout",
        )
    return h, w, c


def _geometry(
    lw, node, a, kshape, names=("kernel_shape", "strides", "pads")
) -> tuple[int, int, int]:
    """Kernel, stride and padding of a square 2-D window with symmetric padding (``names``: the
    attributes holding them); every value is checked before any is used."""
    kname, sname, pname = names
    k = [int(v) for v in kshape]
    if len(k) != 2:
        raise lw.err(node, f"only 2-D kernels are supported, not {k}")
    if min(k) < 1:
        raise lw.err(node, f"{kname} {k} must hold positive sizes")
    if k[0] != k[1]:
        raise lw.err(
            node, f"kernel {tuple(k)} is not square; lowbit's sliding window needs a square kernel"
        )
    s = list(a.get(sname, [1, 1]))
    if len(s) != 2 or min(s) < 1:
        raise lw.err(node, f"attribute {sname!r} {s} must hold 2 positive integers")
    pads = list(a.get(pname, [0, 0, 0, 0]))
    if len(pads) != 4 or min(pads) < 0:
        raise lw.err(node, f"attribute {pname!r} {pads} must hold 4 non-negative integers")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise lw.err(node, f"dilations {list(a['dilations'])} are not supported; use dilation 1")
    if s[0] != s[1]:
        raise lw.err(node, f"{sname} {s} differ; lowbit needs equal strides")
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if s[0] != 1 or k[0] % 2 == 0:
            raise lw.err(
                node,
                f"auto_pad {auto} with stride {s[0]} and kernel {k[0]} is not "
                "supported; give explicit symmetric pads",
            )
        pads = [(k[0] - 1) // 2] * 4
    elif auto not in ("NOTSET", "VALID"):
        raise lw.err(node, f"auto_pad {auto!r} is not supported")
    if len(set(pads)) > 1:
        raise lw.err(
            node, f"{pname} {pads} are not symmetric; lowbit needs the same padding on every side"
        )
    if a.get("ceil_mode", 0):
        raise lw.err(node, "ceil_mode 1 is not supported; use ceil_mode 0 (pad the input instead)")
    return k[0], s[0], pads[0]


def _window(lw, node, h: int, w: int, k: int, s: int, p: int, kname="kernel_shape"):
    """The output height and width of a ``k x k`` window of stride ``s`` on an ``h x w`` image
    padded by ``p``; a kernel larger than the padded image is refused."""
    if k > min(h, w) + 2 * p:
        raise lw.err(
            node,
            f"{kname} {k}x{k} does not fit the {h}x{w} input (pads {p}); expected a kernel of at "
            f"most {min(h, w) + 2 * p}",
        )
    return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def _pad_code(lw, node, x: Codes) -> int:
    """The input code standing for the value 0 (what padding inserts)."""
    c = x.channels
    zero = [(-x.offset[i] / x.scale[i]) for i in range(c)]
    if len(set(zero)) != 1 or zero[0].denominator != 1:
        raise lw.err(
            node,
            "padding needs the value 0, which its input codes cannot represent; "
            "use pads 0 or an input quantizer that contains 0",
        )
    z = int(zero[0])
    if x.dtype.kind is Kind.BIPOLAR:
        if z not in (-1, 1):
            raise lw.err(
                node,
                "padding needs the value 0, which BIPOLAR inputs cannot represent "
                "(binary activations have no zero); use pads 0",
            )
        return (z + 1) // 2
    if not x.dtype.contains([z]):
        raise lw.err(
            node, f"padding needs the value 0, which {x.dtype} inputs cannot represent; use pads 0"
        )
    return z


def conv(lw, node, ins, a):
    """``Conv`` of an NCHW image and constant weights (groups, stride, symmetric padding): a
    sliding window and a matrix product on its columns."""
    codes, rs, dt = lw.weights(node, node.input[1], 0)
    if codes.ndim == 3 or len(a.get("kernel_shape", ())) == 1:
        return _conv1d(lw, node, ins, a, codes, rs, dt)
    x = lw.codes(node, ins[0])
    h, w_, c = _image(lw, node, x)
    if codes.ndim != 4:
        raise lw.err(node, f"weights must be (OC, IC/group, kH, kW), not {codes.shape}")
    k, s, p = _geometry(lw, node, a, codes.shape[2:])
    oh, ow = _window(lw, node, h, w_, k, s, p, "kernel (weights shape)")
    group = a.get("group", 1)
    oc = codes.shape[0]
    if group < 1:
        raise lw.err(node, f"attribute 'group' {group} must be a positive integer")
    if c % group or oc % group or codes.shape[1] != c // group:
        raise lw.err(
            node, f"weights {codes.shape} do not match {c} input channels in {group} groups"
        )
    if p and x.dtype.kind is Kind.BIPOLAR:  # binary activations have no zero: give them one
        x = lw.with_zero(node, x) or x
    pad_value = _pad_code(lw, node, x) if p else 0
    lw.limit(node, "weights of the dense kernel", oc * k * k * c, LIMITS.tensor_elements)
    dense = np.zeros((oc, k, k, c), dtype=np.int64)  # weight values (+-1 for bipolar weights)
    og, cg = oc // group, c // group
    for g in range(group):
        blk = np.transpose(codes[g * og : (g + 1) * og], (0, 2, 3, 1))  # (og, k, k, cg)
        dense[g * og : (g + 1) * og, :, :, g * cg : (g + 1) * cg] = blk
    depthwise = lw.native and group > 1 and group == c == oc
    dt_given = dt
    if group > 1 and dt.kind is Kind.BIPOLAR:
        dt = TERNARY
    if k > 1 or s > 1 or p or depthwise:  # a depthwise node reads windows, even 1x1 ones
        lw.emit(SlidingWindow(f"{node.name}_im2col", k, s, p, pad_value), node.name)
    wmat = dense.reshape(oc, k * k * c)
    bias = None
    if len(ins) > 2 and ins[2] is not None:
        bias = fraction_array(lw.fconst(node, node.input[2], "bias").reshape(-1))
    # column j of the window (ky, kx, c) reads input channel c
    cols = np.tile(np.arange(c), k * k)
    act = _pending_matmul(
        lw, node, x, wmat, rs, dt, bias, node.name, cols, image_idx(oc, oh, ow), (oh, ow, oc)
    )
    if depthwise:
        act = replace(act, layer=replace(act.layer, node=("depthwise", dt_given)))
    return act


def _sequence(lw, node, x: Act) -> tuple[int, int]:
    """``(L, C)`` of a sequence activation in the standard NCL layout."""
    if len(x.phys) == 1 and x.idx.ndim == 2:
        raise lw.err(
            node,
            f"reads {[1, *x.idx.shape]} as a vector: lowbit streams a model's (N, C, L) input as "
            "a sequence when a node has a 1-D kernel_shape, strides or dilations attribute; give "
            "this node its kernel_shape",
        )
    if len(x.phys) != 2 or x.idx.ndim != 2:
        raise lw.err(node, f"needs a sequence (1, C, L), not {[1, *x.idx.shape]}")
    length, c = x.phys
    if not np.array_equal(x.idx, seq_idx(c, length)):
        raise lw.err(
            node, "its input is not in NCL layout (a Transpose before it is not supported)"
        )
    return length, c


def _geometry1d(lw, node, a, kshape) -> tuple[int, int, int]:
    """Kernel, stride and padding of a 1-D window with symmetric padding; every value is checked
    before any is used."""
    k = [int(v) for v in kshape]
    if len(k) != 1 or k[0] < 1:
        raise lw.err(node, f"kernel {k} must hold one positive size (a 1-D kernel)")
    s = list(a.get("strides", [1]))
    if len(s) != 1 or s[0] < 1:
        raise lw.err(node, f"attribute 'strides' {s} must hold 1 positive integer")
    pads = list(a.get("pads", [0, 0]))
    if len(pads) != 2 or min(pads) < 0:
        raise lw.err(node, f"attribute 'pads' {pads} must hold 2 non-negative integers")
    dil = list(a.get("dilations", [1]))
    if any(d != 1 for d in dil):
        raise lw.err(
            node, f"dilations {dil}: a dilated 1-D window is not supported; use dilation 1"
        )
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        if s[0] != 1 or k[0] % 2 == 0:
            raise lw.err(
                node,
                f"auto_pad {auto} with stride {s[0]} and kernel {k[0]} is not "
                "supported; give explicit symmetric pads",
            )
        pads = [(k[0] - 1) // 2] * 2
    elif auto not in ("NOTSET", "VALID"):
        raise lw.err(node, f"auto_pad {auto!r} is not supported")
    if pads[0] != pads[1]:
        raise lw.err(
            node,
            f"pads {pads} are not symmetric: an asymmetric 1-D window is not supported; lowbit "
            "needs the same padding at both ends",
        )
    if a.get("ceil_mode", 0):
        raise lw.err(node, "ceil_mode 1 is not supported; use ceil_mode 0 (pad the input instead)")
    return k[0], s[0], pads[0]


def _window1d(lw, node, length: int, k: int, s: int, p: int, kname="kernel_shape") -> int:
    """The output length of a window ``k`` of stride ``s`` on a sequence of ``length`` padded by
    ``p``; a kernel longer than the padded sequence is refused."""
    if k > length + 2 * p:
        raise lw.err(
            node,
            f"{kname} {k} does not fit the input of length {length} (pads {p}); expected a "
            f"kernel of at most {length + 2 * p}",
        )
    return (length + 2 * p - k) // s + 1


def _conv1d(lw, node, ins, a, codes, rs, dt) -> Pending:
    """``Conv`` of an NCL sequence and constant ``(OC, IC/group, K)`` weights (groups, stride,
    symmetric padding): a 1-D sliding window and a matrix product on its columns."""
    x = lw.codes(node, ins[0])
    length, c = _sequence(lw, node, x)
    if codes.ndim != 3:
        raise lw.err(node, f"weights must be (OC, IC/group, K) for a 1-D kernel, not {codes.shape}")
    k, s, p = _geometry1d(lw, node, a, a.get("kernel_shape", codes.shape[2:]))
    if k != codes.shape[2]:
        raise lw.err(node, f"kernel_shape [{k}] does not match the weights {codes.shape}")
    ol = _window1d(lw, node, length, k, s, p, "kernel (weights shape)")
    group = a.get("group", 1)
    oc = codes.shape[0]
    if group < 1:
        raise lw.err(node, f"attribute 'group' {group} must be a positive integer")
    if c % group or oc % group or codes.shape[1] != c // group:
        raise lw.err(
            node, f"weights {codes.shape} do not match {c} input channels in {group} groups"
        )
    if p and x.dtype.kind is Kind.BIPOLAR:  # binary activations have no zero: give them one
        x = lw.with_zero(node, x) or x
    pad_value = _pad_code(lw, node, x) if p else 0
    lw.limit(node, "weights of the dense kernel", oc * k * c, LIMITS.tensor_elements)
    dense = np.zeros((oc, k, c), dtype=np.int64)  # weight values (+-1 for bipolar weights)
    og, cg = oc // group, c // group
    for g in range(group):
        blk = np.transpose(codes[g * og : (g + 1) * og], (0, 2, 1))  # (og, k, cg)
        dense[g * og : (g + 1) * og, :, g * cg : (g + 1) * cg] = blk
    depthwise = lw.native and group > 1 and group == c == oc
    dt_given = dt
    if group > 1 and dt.kind is Kind.BIPOLAR:
        dt = TERNARY
    if k > 1 or s > 1 or p or depthwise:  # a depthwise node reads windows, even 1-wide ones
        lw.emit(SlidingWindow1D(f"{node.name}_im2col", k, s, p, pad_value), node.name)
    bias = None
    if len(ins) > 2 and ins[2] is not None:
        bias = fraction_array(lw.fconst(node, node.input[2], "bias").reshape(-1))
    # column j of the window (k, c) reads input channel c
    cols = np.tile(np.arange(c), k)
    act = _pending_matmul(
        lw, node, x, dense.reshape(oc, k * c), rs, dt, bias, node.name, cols, seq_idx(oc, ol),
        (ol, oc),
    )
    if depthwise:
        act = replace(act, layer=replace(act.layer, node=("depthwise", dt_given)))
    return act


def im2col(lw, node, ins, a):
    """FINN ``Im2Col`` of an NHWC image: a sliding window; its columns are the codes."""
    x = lw.codes(node, ins[0])
    h, w_, c = _image(lw, node, x, nchw=False)
    k, s, p = _geometry(lw, node, a, a["kernel_size"], ("kernel_size", "stride", "pad_amount"))
    oh, ow = _window(lw, node, h, w_, k, s, p, "kernel_size")
    pv = int(a.get("pad_value", 0))
    pad_code = (pv + 1) // 2 if x.dtype.kind is Kind.BIPOLAR else pv
    lw.emit(SlidingWindow(node.name, k, s, p, pad_code), node.name)
    cc = k * k * c
    return Codes(
        image_idx(cc, oh, ow, nchw=False),
        (oh, ow, cc),
        node.name,
        x.dtype,
        np.tile(x.scale, k * k),
        np.tile(x.offset, k * k),
    )


def _maxpool(lw, node, x: Act, k, s, nchw):
    """A max-pool of codes (emitted now) or of a pending layer (after its thresholds)."""
    if isinstance(x, Codes):
        h, w_, c = _image(lw, node, x, nchw)
        oh, ow = _window(lw, node, h, w_, k, s, 0)
        if any(sc <= 0 for sc in x.scale):
            raise lw.err(node, "max-pool of codes with a negative scale is not supported")
        if x.dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
            raise lw.err(node, f"max-pool needs BIPOLAR or unsigned codes, not {x.dtype}")
        lw.emit(MaxPool(node.name, k, s), node.name)
        out: Codes | Pending = x
    elif isinstance(x, Pending):
        h, w_, c = _image(lw, node, x, nchw)
        oh, ow = _window(lw, node, h, w_, k, s, 0)
        out = replace(x, pools=x.pools + (Pool(node.name, k, s),))
    else:
        raise lw.err(node, "max-pool of the float input is not supported; quantize the input first")
    return replace(out, idx=image_idx(c, oh, ow, nchw), phys=(oh, ow, c))


def _maxpool1d(lw, node, x: Act, k, s):
    """A 1-D max-pool of codes (emitted now) or of a pending layer (after its thresholds)."""
    if isinstance(x, Codes):
        length, c = _sequence(lw, node, x)
        ol = _window1d(lw, node, length, k, s, 0)
        if any(sc <= 0 for sc in x.scale):
            raise lw.err(node, "max-pool of codes with a negative scale is not supported")
        if x.dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
            raise lw.err(node, f"max-pool needs BIPOLAR or unsigned codes, not {x.dtype}")
        lw.emit(MaxPool1D(node.name, k, s), node.name)
        out: Codes | Pending = x
    elif isinstance(x, Pending):
        length, c = _sequence(lw, node, x)
        ol = _window1d(lw, node, length, k, s, 0)
        out = replace(x, pools=x.pools + (Pool(node.name, k, s, dims=1),))
    else:
        raise lw.err(node, "max-pool of the float input is not supported; quantize the input first")
    return replace(out, idx=seq_idx(c, ol), phys=(ol, c))


def max_pool(lw, node, ins, a):
    """``MaxPool`` of an NCHW image, or of an NCL sequence (a 1-D kernel), without padding."""
    if len(a.get("kernel_shape", ())) == 1:
        k, s, p = _geometry1d(lw, node, a, a["kernel_shape"])
        if p:
            raise lw.err(node, "padding is not supported for MaxPool; use pads 0")
        return _maxpool1d(lw, node, ins[0], k, s)
    k, s, p = _geometry(lw, node, a, a["kernel_shape"])
    if p:
        raise lw.err(node, "padding is not supported for MaxPool; use pads 0")
    return _maxpool(lw, node, ins[0], k, s, True)


def max_pool_nhwc(lw, node, ins, a):
    """FINN ``MaxPoolNHWC`` of an NHWC image without padding."""
    k, s, p = _geometry(lw, node, a, a["kernel_shape"])
    if p:
        raise lw.err(node, "padding is not supported; use pads 0")
    return _maxpool(lw, node, ins[0], k, s, False)


def average_pool(lw, node, ins, a):
    """``AveragePool`` without padding: a sliding window and a per-channel sum, scaled exactly."""
    k, s, p = _geometry(lw, node, a, a["kernel_shape"])
    if p:
        raise lw.err(node, "padding is not supported for AveragePool; use pads 0")
    x = lw.codes(node, ins[0])
    h, w_, c = _image(lw, node, x)
    oh, ow = _window(lw, node, h, w_, k, s, 0)
    lw.limit(node, "weights of the dense kernel", c * k * k * c, LIMITS.tensor_elements)
    dense = np.zeros((c, k, k, c), dtype=np.int64)
    for ch in range(c):
        dense[ch, :, :, ch] = 1
    if lw.native and k == h == w_:  # global: an integer sum and thresholds, no window
        act = _pending_matmul(
            lw, node, x, dense.reshape(c, -1), fraction_array(np.ones(c)), DataType.int(2), None,
            node.name, np.tile(np.arange(c), k * k), np.arange(c).reshape(c, 1, 1), (c,),
        )
        layer = act.layer
        return replace(act, layer=replace(
            layer,
            scale=np.array([v / (k * k) for v in layer.scale], dtype=object),
            offset=np.array([v / (k * k) for v in layer.offset], dtype=object),
            node=("gap",),
        ))
    lw.emit(SlidingWindow(f"{node.name}_im2col", k, s, 0, 0), node.name)
    act = _pending_matmul(
        lw,
        node,
        x,
        dense.reshape(c, -1),
        fraction_array(np.full(c, 1.0 / 1)),
        DataType.int(2),
        None,
        node.name,
        np.tile(np.arange(c), k * k),
        image_idx(c, oh, ow),
        (oh, ow, c),
    )
    layer = act.layer  # the mean of the window
    n = k * k
    scale = np.array([v / n for v in layer.scale], dtype=object)
    offset = np.array([v / n for v in layer.offset], dtype=object)
    return replace(act, layer=replace(layer, scale=scale, offset=offset))


def _global_pool(lw, node, x, mean: bool, nchw: bool):
    """A global sum of the codes per channel: its type, scale, offset and the channel count."""
    x = lw.codes(node, x)
    h, w_, c = _image(lw, node, x, nchw)
    n = h * w_
    lw.emit(GlobalAccPool(node.name, x.dtype), node.name)
    lo, hi = n * x.dtype.min, n * x.dtype.max
    div = n if mean else 1
    scale = np.array([sc / div for sc in x.scale], dtype=object)
    offset = np.array([o * (1 if mean else n) for o in x.offset], dtype=object)
    return DataType.for_range(lo, hi), scale, offset, c


def global_average_pool(lw, node, ins, a):
    """``GlobalAveragePool`` of an NCHW image: a global sum, scaled exactly."""
    dt, scale, offset, c = _global_pool(lw, node, ins[0], True, True)
    return Codes(np.arange(c).reshape(c, 1, 1), (c,), node.name, dt, scale, offset)


def reduce_sum(lw, node, ins, a):
    """``ReduceSum`` over the spatial axes of an NHWC image (``keepdims`` 0): a global sum."""
    axes = a.get("axes", None if len(ins) < 2 or ins[1] is None else [int(v) for v in ins[1]])
    if sorted(axes or []) != [1, 2] or a.get("keepdims", 1):
        raise lw.err(
            node, "only the sum over axes [1, 2] of an NHWC image with keepdims 0 is supported"
        )
    dt, scale, offset, c = _global_pool(lw, node, ins[0], False, False)
    return Codes(np.arange(c), (c,), node.name, dt, scale, offset)


def qlinear_conv(lw, node, ins, a):
    """``QLinearConv``: a convolution of the dequantized input followed by its requantization."""
    x = lw.codes(node, ins[0])
    x, xs = _dequantized(lw, node, x, node.input[1:3], ("x scale", "x zero point"))
    wq = np.asarray(lw.const(node, node.input[3], "weights")).astype(np.int64)
    ws = lw.fconst(node, node.input[4], "w scale")
    wz = lw.fconst(node, node.input[5], "w zero point")
    codes = wq - per_axis(wz, 4, 0).astype(np.int64)
    scale = np.broadcast_to(per_axis(ws, 4, 0), codes.shape).astype(np.float64)
    tmp = f"__qlinear_w_{node.name}"
    lw.env[tmp] = QConst(codes, scale, weight_dtype(codes))
    bias_name = None
    if len(ins) > 8 and ins[8] is not None:
        bias_name = f"__qlinear_b_{node.name}"
        lw.env[bias_name] = (
            np.asarray(ins[8]).astype(np.float64)
            * xs
            * np.broadcast_to(ws.reshape(-1), (codes.shape[0],))
        )
    operands = [node.input[0], tmp] + ([bias_name] if bias_name else [])
    as_conv = onnx.helper.make_node("Conv", operands, [node.output[0]], name=node.name, **a)
    act = conv(lw, as_conv, [x, lw.env[tmp]] + ([lw.env[bias_name]] if bias_name else []), a)
    return _requant(lw, node, act, ins[6:8], node.input[6:8])


# constants: shape arithmetic and weight quantizers --------------------------------------------


def shape(lw, node, ins, a):
    """The shape of an activation, batch 1 (shape arithmetic such as ``x.view(x.size(0), -1)``)."""
    return np.array([1, *ins[0].idx.shape], dtype=np.int64)


def gather(lw, node, ins, a):
    """``Gather`` and ``Concat`` evaluate shape arithmetic on constants only."""
    raise lw.err(
        node, "gathers from an activation; only shape arithmetic on constants is supported"
    )


def greater_or_equal(lw, node, ins, a):
    """Comparisons of the activation are rejected (thresholds come as ``MultiThreshold``)."""
    raise lw.err(
        node,
        "comparisons of activations are not supported; use MultiThreshold (import "
        "the QONNX form of a lowbit export: lowbit export --format qonnx)",
    )


def constant(lw, node, ins, a):
    """``Constant`` has no operands: the lowering folds it like every node without an activation."""
    return lw.execute(node, ins)[0]


def _scale(lw, node) -> np.ndarray:
    """The positive scale operand (input 1) of a quantizer."""
    scale = lw.fconst(node, node.input[1], "scale")
    if (scale <= 0).any():
        raise lw.err(node, f"scale must be positive, found {scale.min():g}")
    return scale


def _quant_params(lw, node, a) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point of a QONNX ``Quant``, with its bit width and rounding mode checked."""
    scale = _scale(lw, node)
    zp = lw.fconst(node, node.input[2], "zero point")
    if (zp != np.round(zp)).any():
        raise lw.err(node, "zero point must hold integers")
    bw = lw.fconst(node, node.input[3], "bit width").reshape(-1)
    if bw.size != 1 or bw[0] != round(float(bw[0])) or bw[0] < 1:
        raise lw.err(node, f"bit width must be a positive integer scalar, not {bw.tolist()}")
    try:
        round_mode(a.get("rounding_mode", "ROUND"))
    except ValueError as e:
        raise lw.err(node, str(e)) from None
    return scale, zp


def _float_weights(lw, node, ins) -> np.ndarray:
    """The constant operand 0 as finite float64 weights."""
    x = ins[0].value if isinstance(ins[0], QConst) else np.asarray(ins[0])
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise lw.err(node, "the weights contain NaN or infinity")
    return x


def _over_weights(lw, node, v: np.ndarray, x: np.ndarray, what: str) -> np.ndarray:
    """A quantizer parameter broadcast over the weights ``x`` (its shape must not widen them)."""
    try:
        if np.broadcast_shapes(v.shape, x.shape) == x.shape:
            return np.broadcast_to(v, x.shape)
    except ValueError:
        pass
    raise lw.err(node, f"{what} of shape {list(v.shape)} does not broadcast to the weights of "
                 f"shape {list(x.shape)}")


def fold_quant(lw, node, ins, a) -> QConst:
    """QONNX ``Quant`` of constant weights: integer codes, scales and the data type they fit
    (``None`` for a non-zero zero point)."""
    x = _float_weights(lw, node, ins)
    scale, zp = _quant_params(lw, node, a)
    s = _over_weights(lw, node, scale, x, "scale")
    _over_weights(lw, node, zp, x, "zero point")
    bits = int(lw.fconst(node, node.input[3]).reshape(-1)[0])
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    y = quant_float(x, scale, zp, bits, signed, narrow, a.get("rounding_mode", "ROUND"))
    codes = np.round(y / s).astype(np.int64)
    dtype: DataType | None
    if signed and narrow and bits == 2:
        dtype = TERNARY
    elif bits == 1 and signed:
        dtype = BIPOLAR
    else:
        dtype = DataType.int(bits if signed else bits + 1)
    if (np.asarray(zp) != 0).any():
        dtype = None
    return QConst(codes, s.astype(np.float64), dtype)


def fold_bipolar_quant(lw, node, ins, a) -> QConst:
    """QONNX ``BipolarQuant`` of constant weights: codes -1/+1 and scales."""
    x = _float_weights(lw, node, ins)
    s = _over_weights(lw, node, _scale(lw, node), x, "scale")
    return QConst(np.where(x / s >= 0, 1, -1).astype(np.int64), s.astype(np.float64), BIPOLAR)


def fold_dequantize_linear(lw, node, ins, a) -> QConst:
    """``DequantizeLinear`` of integer weights: codes less the zero point, per-axis scales."""
    x = ins[0].value if isinstance(ins[0], QConst) else np.asarray(ins[0])
    scale = _scale(lw, node)
    zp = (
        np.zeros(1)
        if len(ins) < 3 or ins[2] is None
        else lw.fconst(node, node.input[2], "zero point")
    )
    if x.dtype.kind not in "iu":
        raise lw.err(node, f"quantized weights must be integers, not {x.dtype}")
    axis = a.get("axis", 1)
    s = per_axis(scale, x.ndim, axis)
    z = per_axis(zp, x.ndim, axis)
    codes = x.astype(np.int64) - z.astype(np.int64)
    dtype = DataType.for_range(min(int(codes.min()), -1), max(int(codes.max()), 1))
    return QConst(codes, np.broadcast_to(s, x.shape).astype(np.float64), dtype)
