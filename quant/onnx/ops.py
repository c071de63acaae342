"""A small NumPy executor for the ONNX, QONNX and QDQ operators lowbit imports (float64 throughout).

It is the float reference of the importer: a float model runs here and is compared with
``onnxruntime`` (within float tolerance); post-training quantization reads activation ranges from
:func:`run` with ``keep_all=True``. The integer semantics live in :mod:`lowbit.quant.streamline` and
the typed graph; this module never decides what is exact.

Supported operators (:data:`SUPPORTED_OPS`): ``Gemm``, ``MatMul``, ``Conv`` (``group``, stride,
padding, dilation 1), ``BatchNormalization``, ``Relu``, ``Clip``, ``Sign``, ``MaxPool``,
``AveragePool``, ``GlobalAveragePool``, ``Flatten``, ``Reshape``, ``Transpose``, ``Add``, ``Mul``,
``Sub``, ``Div``, ``Identity``, ``Dropout``, ``Constant``, ``Cast``, ``Squeeze``, ``Unsqueeze``,
``ReduceSum``, ``GreaterOrEqual``, ``Shape``, ``Gather``, ``Concat`` (shape arithmetic); QONNX ``Quant``/``IntQuant``, ``BipolarQuant``, ``Trunc``,
``MultiThreshold``, ``XnorPopcountMatMul``, ``Im2Col``, ``MaxPoolNHWC``; ``QuantizeLinear``,
``DequantizeLinear``, ``QLinearConv``, ``QLinearMatMul``, ``MatMulInteger``.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ... import LowbitError
from ..streamline import round_mode

__all__ = ["SUPPORTED_OPS", "attributes", "round_mode", "run", "execute", "per_axis", "quant_float", "qonnx_int_range"]

log = logging.getLogger(__name__)


def attributes(node: onnx.NodeProto) -> dict:
    """The node's attributes as Python values (strings decoded)."""
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


def _pads2(pads, nd=2):
    pads = list(pads) if pads else [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _windows(x, kernel, strides, fill):
    """(N, C, H, W) -> (N, C, OH, OW, kh, kw) windows of an already padded image."""
    v = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return v[:, :, ::strides[0], ::strides[1]]


def _pad(x, begin, end, value):
    return np.pad(x, ((0, 0), (0, 0), (begin[0], end[0]), (begin[1], end[1])), constant_values=value)


def _conv(x, w, b, a):
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("Conv: only dilation 1 is supported")
    group = a.get("group", 1)
    k = w.shape[2:]
    strides = a.get("strides", [1, 1])
    begin, end = _pads2(a.get("pads"))
    xp = _pad(x, begin, end, 0.0)
    win = _windows(xp, k, strides, 0.0)  # N, C, OH, OW, kh, kw
    n, c, oh, ow = win.shape[:4]
    oc = w.shape[0]
    cg, og = c // group, oc // group
    out = np.empty((n, oc, oh, ow))
    for g in range(group):
        out[:, g * og:(g + 1) * og] = np.einsum("ncyxkl,ockl->noyx", win[:, g * cg:(g + 1) * cg],
                                                w[g * og:(g + 1) * og])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _maxpool(x, a):
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise ValueError("MaxPool: only ceil_mode 0 and dilation 1 are supported")
    k = a["kernel_shape"]
    begin, end = _pads2(a.get("pads"))
    xp = _pad(x, begin, end, -np.inf)
    return _windows(xp, k, a.get("strides", [1, 1]), -np.inf).max(axis=(4, 5))


def _avgpool(x, a):
    k = a["kernel_shape"]
    begin, end = _pads2(a.get("pads"))
    s = a.get("strides", [1, 1])
    total = _windows(_pad(x, begin, end, 0.0), k, s, 0.0).sum(axis=(4, 5))
    if a.get("count_include_pad", 0):
        return total / (k[0] * k[1])
    ones = _pad(np.ones((1, 1) + x.shape[2:]), begin, end, 0.0)
    return total / _windows(ones, k, s, 0.0).sum(axis=(4, 5))


def _gemm(x, w, c, a):
    if a.get("transA", 0):
        x = x.T
    if a.get("transB", 0):
        w = w.T
    y = a.get("alpha", 1.0) * (x @ w)
    if c is not None:
        y = y + a.get("beta", 1.0) * c
    return y


def _bn(x, scale, bias, mean, var, a):
    eps = a.get("epsilon", 1e-5)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * scale.reshape(shape) + bias.reshape(shape)


def _reshape(x, shape, a):
    shape = [int(s) for s in shape]
    shape = [x.shape[i] if s == 0 and not a.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(x, a):
    axis = a.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _multithreshold(x, t, a):
    layout = a.get("data_layout", "")
    channels_last = layout in ("NHWC", "NC", "NWC") or (layout == "" and x.ndim == 2)
    v = x if channels_last else np.moveaxis(x, 1, -1)
    out = (v[..., None] >= t).sum(axis=-1).astype(np.float64)
    if not channels_last:
        out = np.moveaxis(out, -1, 1)
    return a.get("out_scale", 1.0) * out + a.get("out_bias", 0.0)


def _im2col(x, a):
    k = a["kernel_size"]
    s = a["stride"]
    p = a.get("pad_amount", [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (p[0], p[2]), (p[1], p[3]), (0, 0)), constant_values=a.get("pad_value", 0))
    n, h, w, c = xp.shape
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    cols = [xp[:, ky:ky + s[0] * (oh - 1) + 1:s[0], kx:kx + s[1] * (ow - 1) + 1:s[1], :]
            for ky in range(k[0]) for kx in range(k[1])]
    return np.concatenate(cols, axis=-1)


def _sat_round(x, zp, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.round(x) + zp, info.min, info.max)


def _quantize_linear(x, s, zp, a):
    axis = a.get("axis", 1)
    dtype = zp.dtype if zp is not None else np.uint8
    zp = np.zeros(1) if zp is None else zp.astype(np.float64)
    if np.ndim(s) == 1 and s.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, zp = s.reshape(shape), zp.reshape(shape)
    return _sat_round(x / s, zp, dtype).astype(dtype)


def _dequantize_linear(x, s, zp, a):
    axis = a.get("axis", 1)
    zp = np.zeros(1) if zp is None else zp.astype(np.float64)
    if np.ndim(s) == 1 and s.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        s, zp = s.reshape(shape), zp.reshape(shape)
    return (x.astype(np.float64) - zp) * s


def per_axis(v, ndim, axis):
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1 and v.size > 1:
        shape = [1] * ndim
        shape[axis] = -1
        return v.reshape(shape)
    return v


def _qlinear_conv(ins, a):
    x, xs, xz, w, ws, wz, ys, yz = ins[:8]
    b = ins[8] if len(ins) > 8 else None
    xf = (x.astype(np.float64) - xz) * xs
    wf = (w.astype(np.float64) - per_axis(wz, 4, 0)) * per_axis(ws, 4, 0)
    bf = None if b is None else b.astype(np.float64) * xs * np.asarray(ws, dtype=np.float64).reshape(-1)
    y = _conv(xf, wf, bf, a)
    return _sat_round(y / ys, yz.astype(np.float64), yz.dtype).astype(yz.dtype)


def _qlinear_matmul(ins):
    a, as_, az, b, bs, bz, ys, yz = ins
    af = (a.astype(np.float64) - az) * as_
    bf = (b.astype(np.float64) - per_axis(bz, 2, 1)) * per_axis(bs, 2, 1)
    return _sat_round((af @ bf) / ys, yz.astype(np.float64), yz.dtype).astype(yz.dtype)


def _f(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def execute(op: str, ins: list, a: dict, node) -> list:
    """Outputs of one operator ``op`` on NumPy inputs ``ins`` with attributes ``a``."""
    f = _f
    if op == "Gemm":
        return [_gemm(f(ins[0]), f(ins[1]), f(ins[2]) if len(ins) > 2 else None, a)]
    if op == "MatMul":
        return [f(ins[0]) @ f(ins[1])]
    if op == "Conv":
        return [_conv(f(ins[0]), f(ins[1]), f(ins[2]) if len(ins) > 2 else None, a)]
    if op == "BatchNormalization":
        return [_bn(*map(f, ins[:5]), a)]
    if op == "Relu":
        return [np.maximum(f(ins[0]), 0.0)]
    if op == "Clip":
        lo = a.get("min", -np.inf) if len(ins) < 2 or ins[1] is None else float(ins[1])
        hi = a.get("max", np.inf) if len(ins) < 3 or ins[2] is None else float(ins[2])
        return [np.clip(f(ins[0]), lo, hi)]
    if op == "Sign":
        return [np.sign(f(ins[0]))]
    if op == "MaxPool":
        return [_maxpool(f(ins[0]), a)]
    if op == "AveragePool":
        return [_avgpool(f(ins[0]), a)]
    if op == "GlobalAveragePool":
        return [f(ins[0]).mean(axis=(2, 3), keepdims=True)]
    if op == "Flatten":
        return [_flatten(ins[0], a)]
    if op == "Reshape":
        return [_reshape(ins[0], ins[1], a)]
    if op == "Transpose":
        perm = a.get("perm", list(range(np.ndim(ins[0])))[::-1])
        return [np.transpose(ins[0], perm)]
    if op in ("Add", "Sub", "Mul", "Div"):
        x, y = f(ins[0]), f(ins[1])
        return [{"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](x, y)]
    if op in ("Identity", "Dropout"):
        return [ins[0]]
    if op == "Constant":
        return [a["value"]]
    if op == "Cast":
        return [ins[0]]
    if op == "Squeeze":
        axes = a.get("axes", None if len(ins) < 2 else [int(v) for v in ins[1]])
        return [np.squeeze(ins[0], axis=None if axes is None else tuple(axes))]
    if op == "Unsqueeze":
        axes = a.get("axes", None if len(ins) < 2 else [int(v) for v in ins[1]])
        return [np.expand_dims(ins[0], tuple(axes))]
    if op == "ReduceSum":
        axes = a.get("axes", None if len(ins) < 2 else [int(v) for v in ins[1]])
        return [f(ins[0]).sum(axis=None if axes is None else tuple(axes), keepdims=bool(a.get("keepdims", 1)))]
    if op == "Shape":
        return [np.array(np.shape(ins[0]), dtype=np.int64)]
    if op == "Gather":
        return [np.take(ins[0], np.asarray(ins[1]).astype(np.int64), axis=a.get("axis", 0))]
    if op == "Concat":
        return [np.concatenate([np.asarray(v) for v in ins], axis=a["axis"])]
    if op == "GreaterOrEqual":
        return [f(ins[0]) >= f(ins[1])]
    if op in ("Quant", "IntQuant"):
        return [quant_float(f(ins[0]), f(ins[1]), f(ins[2]), int(np.asarray(ins[3]).item()), bool(a.get("signed", 1)),
                            bool(a.get("narrow", 0)), a.get("rounding_mode", "ROUND"))]
    if op == "BipolarQuant":
        return [np.where(f(ins[0]) / f(ins[1]) >= 0, 1.0, -1.0) * f(ins[1])]
    if op == "Trunc":
        x, s, zp, ibw, obw = map(f, ins[:5])
        y = np.round(x / s + zp)
        y = round_mode(a.get("rounding_mode", "FLOOR"))(y / 2.0 ** (float(ibw) - float(obw)))
        return [(y - zp) * s * 2.0 ** (float(ibw) - float(obw))]
    if op == "MultiThreshold":
        return [_multithreshold(f(ins[0]), f(ins[1]), a)]
    if op == "XnorPopcountMatMul":
        x, w = f(ins[0]), f(ins[1])  # bits {0, 1}
        return [(x @ w) + ((1 - x) @ (1 - w))]
    if op == "Im2Col":
        return [_im2col(f(ins[0]), a)]
    if op == "MaxPoolNHWC":
        x = np.transpose(f(ins[0]), (0, 3, 1, 2))
        return [np.transpose(_maxpool(x, a), (0, 2, 3, 1))]
    if op == "QuantizeLinear":
        return [_quantize_linear(f(ins[0]), f(ins[1]), ins[2] if len(ins) > 2 else None, a)]
    if op == "DequantizeLinear":
        return [_dequantize_linear(ins[0], f(ins[1]), ins[2] if len(ins) > 2 else None, a)]
    if op == "QLinearConv":
        return [_qlinear_conv(ins, a)]
    if op == "QLinearMatMul":
        return [_qlinear_matmul(ins)]
    if op == "MatMulInteger":
        a0 = ins[0].astype(np.int64) - (0 if len(ins) < 3 or ins[2] is None else ins[2].astype(np.int64))
        b0 = ins[1].astype(np.int64) - (0 if len(ins) < 4 or ins[3] is None else ins[3].astype(np.int64))
        return [(a0 @ b0).astype(np.int32)]
    raise LowbitError(f"node {node.name!r} ({op}): no float implementation")


SUPPORTED_OPS = frozenset(
    "Gemm MatMul Conv BatchNormalization Relu Clip Sign MaxPool AveragePool GlobalAveragePool Flatten Reshape "
    "Transpose Add Sub Mul Div Identity Dropout Constant Cast Squeeze Unsqueeze ReduceSum GreaterOrEqual "
    "Quant IntQuant BipolarQuant Trunc MultiThreshold XnorPopcountMatMul Im2Col MaxPoolNHWC QuantizeLinear "
    "DequantizeLinear QLinearConv QLinearMatMul MatMulInteger Shape Gather Concat".split())


def run(model: onnx.ModelProto, inputs, *, keep_all: bool = False, stop_at: str | None = None) -> dict[str, np.ndarray]:
    """Execute ``model`` on ``inputs`` (an array for the single input, or a dict by input name).

    Returns the graph outputs by name (every tensor when ``keep_all``, or when stopping early after
    computing the tensor ``stop_at``). Float tensors are float64.
    """
    g = model.graph
    env: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    real_inputs = [i.name for i in g.input if i.name not in env]
    if not isinstance(inputs, dict):
        if len(real_inputs) != 1:
            raise ValueError(f"the model has {len(real_inputs)} inputs; pass a dict by name")
        inputs = {real_inputs[0]: inputs}
    env.update({k: np.asarray(v) for k, v in inputs.items()})
    for node in g.node:
        ins = [env[n] if n else None for n in node.input]
        outs = execute(node.op_type, ins, attributes(node), node)
        for name, v in zip(node.output, outs):
            env[name] = v
        if stop_at is not None and stop_at in node.output:
            return env
    if keep_all:
        return env
    return {o.name: env[o.name] for o in g.output}
