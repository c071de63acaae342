"""Float semantics of the operators lowbit imports: the executors of the op table (:mod:`.ops`).

Every executor has the signature ``(ins, attrs, node, opset) -> list`` (NumPy inputs in the node's
input order, ``None`` for an absent optional input; attributes as :func:`attributes` decodes them;
the node and the model's default-domain opset) and returns the node's outputs. The executor holds
every float tensor in float64: it is the float reference of the importer (a float model runs here
and is compared with ``onnxruntime`` within float tolerance) and the calibration pass of
post-training quantization. The integer semantics live in :mod:`lowbit.quant.streamline` and the
typed graph; nothing here decides what is exact.

Standard operators run through :class:`Reference`, onnx's own reference implementation
(``onnx.reference``), wherever it computes exactly what lowbit needs, bit for bit. The hand-written
executors below stay where it does not; each docstring says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..streamline import round_mode

__all__ = [
    "Executor",
    "Reference",
    "attributes",
    "per_axis",
    "quant_float",
    "qonnx_int_range",
    "cast",
    "conv",
    "batch_normalization",
    "max_pool",
    "average_pool",
    "quantize_linear",
    "dequantize_linear",
    "qlinear_conv",
    "qlinear_matmul",
    "quant",
    "bipolar_quant",
    "trunc",
    "multi_threshold",
    "xnor_popcount_matmul",
    "im2col",
    "max_pool_nhwc",
]

Executor = Callable[[list, dict, onnx.NodeProto, int], list]
"""An executor: ``(ins, attrs, node, opset) -> outputs``."""


def attributes(node: onnx.NodeProto) -> dict:
    """The node's attributes as Python values (strings decoded, tensors as arrays)."""
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        elif isinstance(v, list):
            v = [x.decode() if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def qonnx_int_range(bits: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """Integer range of a QONNX ``Quant`` (Brevitas ``IntQuant``)."""
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def quant_float(x, scale, zp, bits, signed, narrow, mode):
    """QONNX ``Quant`` in float: ``(clip(round(x / scale + zp)) - zp) * scale``."""
    y = x / scale + zp
    if bits == 1 and signed:
        y = np.where(y >= 0, 1.0, -1.0)
    else:
        lo, hi = qonnx_int_range(int(bits), signed, narrow)
        y = round_mode(mode)(np.clip(y, lo, hi))
    return (y - zp) * scale


def per_axis(v, ndim, axis):
    """A per-axis (1-D) parameter reshaped to broadcast along ``axis`` of an ``ndim`` tensor."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1 and v.size > 1:
        shape = [1] * ndim
        shape[axis] = -1
        return v.reshape(shape)
    return v


def _f(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


# -- onnx's reference implementation --------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """A standard operator evaluated by ``onnx.reference`` for the model's opset, in float64.

    Parameters
    ----------
    f64 : tuple of int or None
        The inputs converted to float64 first (``None``: every input), as the executor holds every
        float tensor in float64; the others keep their type.
    ints : tuple of int
        Shape operands (shape, axes, indices) converted to int64 first: shape arithmetic on
        constants may have produced them in float64.

    Notes
    -----
    Like the hand-written executors, it reads only the operands and attributes the operator
    defines (extra ones are ignored) and raises the error of the failing computation itself (the
    evaluator's wrappers are unwrapped).
    """

    f64: tuple[int, ...] | None = ()
    ints: tuple[int, ...] = ()

    def __call__(self, ins: list, a: dict, node: onnx.NodeProto, opset: int) -> list:
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:  # an operator newer than the model's opset: its latest form
            schema = onnx.defs.get_schema(node.op_type, "")
            opset = schema.since_version
        ins = list(ins[: schema.max_input])
        names = [f"in{i}" if v is not None else "" for i, v in enumerate(ins)]
        outs = [f"out{i}" for i in range(len(node.output))]
        call = helper.make_node(node.op_type, names, outs, name=node.name)
        call.attribute.extend(x for x in node.attribute if x.name in schema.attributes)
        feeds = {}
        for i, v in enumerate(ins):
            if v is None:
                continue
            if i in self.ints:
                v = np.asarray(v).astype(np.int64)
            elif self.f64 is None or i in self.f64:
                v = np.asarray(v, dtype=np.float64)
            feeds[names[i]] = np.asarray(v)
        fn = helper.make_function(
            "lowbit",
            node.op_type,
            [n for n in names if n],
            outs,
            [call],
            opset_imports=[helper.make_opsetid("", opset)],
        )
        try:
            return list(ReferenceEvaluator(fn).run(None, feeds, attributes={}))
        except Exception as e:  # the evaluator wraps the failing computation's error
            cause: BaseException = e
            while cause.__cause__ is not None:
                cause = cause.__cause__
            raise cause from None


# -- hand-written executors -----------------------------------------------------------------------


def cast(ins, a, *_):
    """``Cast`` keeps the value: tensors are float64 containers here, and the importer rejects a
    cast that would round a float activation; onnx's ``Cast`` to FLOAT would round float64
    values."""
    return [ins[0]]


def _pads2(pads, nd=2):
    pads = list(pads) if pads else [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _windows(x, kernel, strides):
    """(N, C, H, W) -> (N, C, OH, OW, kh, kw) windows of an already padded image."""
    v = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return v[:, :, :: strides[0], :: strides[1]]


def _pad(x, begin, end, value):
    widths = ((0, 0), (0, 0), (begin[0], end[0]), (begin[1], end[1]))
    return np.pad(x, widths, constant_values=value)


def _conv(x, w, b, a):
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("Conv: only dilation 1 is supported")
    group = a.get("group", 1)
    k = w.shape[2:]
    strides = a.get("strides", [1, 1])
    begin, end = _pads2(a.get("pads"))
    win = _windows(_pad(x, begin, end, 0.0), k, strides)  # N, C, OH, OW, kh, kw
    n, c, oh, ow = win.shape[:4]
    oc = w.shape[0]
    cg, og = c // group, oc // group
    out = np.empty((n, oc, oh, ow))
    for g in range(group):
        out[:, g * og : (g + 1) * og] = np.einsum(
            "ncyxkl,ockl->noyx", win[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og]
        )
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _as_2d(a) -> dict:
    """The attributes of a 1-D window as those of a ``1 x K`` 2-D one."""
    out = dict(a)
    for name, unit in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
        if name in a:
            out[name] = [unit, *a[name]]
    if "pads" in a:
        b, e = a["pads"]
        out["pads"] = [0, b, 0, e]
    return out


def conv(ins, a, *_):
    """``Conv``: onnx's reference sums the window in another order (results differ in the last bit,
    which moves the activation ranges post-training quantization calibrates on). A 1-D one
    ``(N, C, L)`` runs as a ``1 x K`` 2-D one."""
    x, w = _f(ins[0]), _f(ins[1])
    b = _f(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    if x.ndim == 3:
        return [_conv(x[:, :, None], w[:, :, None], b, _as_2d(a))[:, :, 0]]
    return [_conv(x, w, b, a)]


def batch_normalization(ins, a, *_):
    """``BatchNormalization`` in inference mode, ``(x - mean) / sqrt(var + eps) * scale + bias``:
    onnx's reference uses the batch statistics when a ``momentum`` attribute is present (opsets 9
    to 13, as PyTorch exports write it) and multiplies in another order."""
    x, scale, bias, mean, var = map(_f, ins[:5])
    eps = a.get("epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return [
        (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape)
        + bias.reshape(shape)
    ]


def _maxpool(x, a):
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("MaxPool: only ceil_mode 0 and dilation 1 are supported")
    k = a["kernel_shape"]
    begin, end = _pads2(a.get("pads"))
    return _windows(_pad(x, begin, end, -np.inf), k, a.get("strides", [1, 1])).max(axis=(4, 5))


def max_pool(ins, a, *_):
    """``MaxPool``: onnx's reference loops over every output element in Python (about 20 times
    slower on a calibration set of 64 images of 32x32x32)."""
    x = _f(ins[0])
    if x.ndim == 3:  # a 1-D one (N, C, L) as a 1 x K 2-D one
        return [_maxpool(x[:, :, None], _as_2d(a))[:, :, 0]]
    return [_maxpool(x, a)]


def average_pool(ins, a, *_):
    """``AveragePool``: onnx's reference loops in Python (about 1000 times slower on a calibration
    set) and sums the window in another order."""
    x = _f(ins[0])
    k = a["kernel_shape"]
    begin, end = _pads2(a.get("pads"))
    s = a.get("strides", [1, 1])
    total = _windows(_pad(x, begin, end, 0.0), k, s).sum(axis=(4, 5))
    if a.get("count_include_pad", 0):
        return [total / (k[0] * k[1])]
    ones = _pad(np.ones((1, 1) + x.shape[2:]), begin, end, 0.0)
    return [total / _windows(ones, k, s).sum(axis=(4, 5))]


def _sat_round(x, zp, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.round(x) + zp, info.min, info.max)


def quantize_linear(ins, a, *_):
    """``QuantizeLinear``: saturates in float64; onnx's reference converts to int32 before it
    clips, which wraps values of ``|x / scale|`` at or above ``2^31``."""
    x, s = _f(ins[0]), _f(ins[1])
    zp = ins[2] if len(ins) > 2 else None
    axis = a.get("axis", 1)
    dtype = zp.dtype if zp is not None else np.uint8
    zp = np.zeros(1) if zp is None else zp.astype(np.float64)
    if np.ndim(s) == 1 and s.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, zp = s.reshape(shape), zp.reshape(shape)
    return [_sat_round(x / s, zp, dtype).astype(dtype)]


def dequantize_linear(ins, a, *_):
    """``DequantizeLinear`` in float64: onnx's reference implements opsets 19 and later only and
    returns the scale's type (float32)."""
    x, s = ins[0], _f(ins[1])
    zp = ins[2] if len(ins) > 2 else None
    axis = a.get("axis", 1)
    zp = np.zeros(1) if zp is None else zp.astype(np.float64)
    if np.ndim(s) == 1 and s.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, zp = s.reshape(shape), zp.reshape(shape)
    return [(x.astype(np.float64) - zp) * s]


def qlinear_conv(ins, a, *_):
    """``QLinearConv``: dequantize, convolve and requantize in float64 (round, then saturate);
    onnx's reference requantizes with a float32 multiplier and clips before it rounds."""
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    b = ins[8] if len(ins) > 8 else None
    xf = (x.astype(np.float64) - xz) * xs
    wf = (w.astype(np.float64) - per_axis(wz, 4, 0)) * per_axis(ws, 4, 0)
    bf = None
    if b is not None:
        bf = b.astype(np.float64) * xs * np.asarray(ws, dtype=np.float64).reshape(-1)
    y = _conv(xf, wf, bf, a)
    return [_sat_round(y / ys, yz.astype(np.float64), yz.dtype).astype(yz.dtype)]


def qlinear_matmul(ins, a, *_):
    """``QLinearMatMul``: as :func:`qlinear_conv` (onnx's reference requantizes with a float32
    multiplier)."""
    x, xs, xz, w, ws, wz, ys, yz = ins
    af = (x.astype(np.float64) - xz) * xs
    bf = (w.astype(np.float64) - per_axis(wz, 2, 1)) * per_axis(ws, 2, 1)
    return [_sat_round((af @ bf) / ys, yz.astype(np.float64), yz.dtype).astype(yz.dtype)]


# -- QONNX operators (no onnx reference implementation) -------------------------------------------


def quant(ins, a, *_):
    """QONNX ``Quant`` / ``IntQuant`` (:func:`quant_float`): a QONNX custom operator."""
    bits = int(np.asarray(ins[3]).item())
    return [
        quant_float(
            _f(ins[0]),
            _f(ins[1]),
            _f(ins[2]),
            bits,
            bool(a.get("signed", 1)),
            bool(a.get("narrow", 0)),
            a.get("rounding_mode", "ROUND"),
        )
    ]


def bipolar_quant(ins, a, *_):
    """QONNX ``BipolarQuant``: ``scale * (+1 if x / scale >= 0 else -1)``; a custom operator."""
    return [np.where(_f(ins[0]) / _f(ins[1]) >= 0, 1.0, -1.0) * _f(ins[1])]


def trunc(ins, a, *_):
    """QONNX ``Trunc`` as qonnx 1.0 computes it, told apart by its inputs; a QONNX custom operator.

    v1 (five inputs: x, scale, zero point, input bit width, output bit width) keeps the input
    scale: ``(rounding(round(x / scale + zp) / 2^(in - out)) - zp) * scale``. v2 (six inputs, as
    Brevitas exports it: x, scale, zero point, input bit width, output scale, output bit width)
    divides by ``t``, the power of two nearest ``output scale / scale``, clips to the output bit
    width (``signed``, ``narrow``), rounds and rescales: ``(rounding(clip(round(x / scale + zp) /
    t)) - zp / t) * output scale``; its input bit width is unused.
    """
    x, s, zp = _f(ins[0]), _f(ins[1]), _f(ins[2])
    y = np.round(x / s + zp)
    rounding = round_mode(a.get("rounding_mode", "FLOOR"))
    if len(ins) < 6 or ins[5] is None:
        t = 2.0 ** (float(np.asarray(ins[3]).item()) - float(np.asarray(ins[4]).item()))
        return [(rounding(y / t) - zp) * s]
    out_scale = _f(ins[4])
    t = 2.0 ** np.round(np.log2(out_scale / s))
    bits = int(np.asarray(ins[5]).item())
    lo, hi = qonnx_int_range(bits, bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
    return [(rounding(np.clip(y / t, lo, hi)) - zp / t) * out_scale]


def multi_threshold(ins, a, *_):
    """QONNX ``MultiThreshold``: ``out_scale * #{t : x >= t} + out_bias`` per channel; a QONNX
    custom operator."""
    x, t = _f(ins[0]), _f(ins[1])
    layout = a.get("data_layout", "")
    channels_last = layout in ("NHWC", "NC", "NWC") or (layout == "" and x.ndim == 2)
    v = x if channels_last else np.moveaxis(x, 1, -1)
    out = (v[..., None] >= t).sum(axis=-1).astype(np.float64)
    if not channels_last:
        out = np.moveaxis(out, -1, 1)
    return [a.get("out_scale", 1.0) * out + a.get("out_bias", 0.0)]


def xnor_popcount_matmul(ins, a, *_):
    """FINN ``XnorPopcountMatMul`` on bits ``{0, 1}``: the number of agreeing bits; a custom
    operator."""
    x, w = _f(ins[0]), _f(ins[1])
    return [(x @ w) + ((1 - x) @ (1 - w))]


def im2col(ins, a, *_):
    """FINN ``Im2Col`` on an NHWC image (windows flattened ``(ky, kx, c)``); a custom operator."""
    x = _f(ins[0])
    k = a["kernel_size"]
    s = a["stride"]
    p = a.get("pad_amount", [0, 0, 0, 0])
    widths = ((0, 0), (p[0], p[2]), (p[1], p[3]), (0, 0))
    xp = np.pad(x, widths, constant_values=a.get("pad_value", 0))
    n, h, w, c = xp.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    cols = [
        xp[:, ky : ky + s[0] * (oh - 1) + 1 : s[0], kx : kx + s[1] * (ow - 1) + 1 : s[1], :]
        for ky in range(k[0])
        for kx in range(k[1])
    ]
    return [np.concatenate(cols, axis=-1)]


def max_pool_nhwc(ins, a, *_):
    """FINN ``MaxPoolNHWC``: :func:`max_pool` on an NHWC image; a custom operator."""
    x = np.transpose(_f(ins[0]), (0, 3, 1, 2))
    return [np.transpose(_maxpool(x, a), (0, 2, 3, 1))]


def dtype_name(value: int) -> str:
    """The name of an ONNX tensor data type, or ``unknown (N)`` for a value ONNX does not define."""
    try:
        return onnx.TensorProto.DataType.Name(value)
    except ValueError:
        return f"unknown ({value})"
