"""Import ONNX, QONNX (Brevitas) and QDQ models into the typed integer graph.

This is the one module of lowbit that reads ONNX strings (op types, attribute names, domains).
The model must be a chain: one input, one output, every other operand a constant. Nodes are
visited in order, each tensor being a constant, a quantized constant (codes and scales), or the
activation, which is in one of three states:

* *raw*: the float input before its quantizer (the graph input becomes that quantizer's codes);
* *codes*: integer codes produced by the graph so far, with per-channel value
  ``scale * values(code) + offset``;
* *pending*: the dot product of a matrix product not yet emitted, followed by a chain of exact
  element-wise functions (:mod:`lowbit.quant.streamline`), folded into integer thresholds when the
  next consumer needs codes.

Layout: the integer graph streams images as ``(H, W, C)`` and vectors in that flattened order. Each
activation carries ``idx``, an array with the ONNX (logical) shape holding the physical position
of every element, so that ``Transpose``/``Reshape``/``Flatten`` are absorbed exactly and fully
connected weights are permuted into the physical order.

Errors name the input file, the node, its op type and the nearest supported form.
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from ... import LowbitError
from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ...ir.graph import GlobalAccPool, IntegerGraph, MatMulThreshold, MaxPool, SlidingWindow
from . import ops as onnx_ops
from ..streamline import (Affine, BipolarQuantizer, Clip, IntQuantizer, Relu, SignQuantizer,
                          ThresholdQuantizer, TruncQuantizer, exact, fraction_array, is_quantizer,
                          solve_thresholds)

__all__ = ["ImportResult", "import_onnx", "load_model", "layer_table", "graphs_equal", "MIN_OPSET", "MAX_OPSET",
           "SUPPORTED_OPS"]

log = logging.getLogger(__name__)

MIN_OPSET = 11
MAX_OPSET = onnx.defs.onnx_opset_version()
SUPPORTED_OPS = onnx_ops.SUPPORTED_OPS
_CUSTOM_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn", "qonnx",
                   "com.microsoft")
_HINTS = {
    "Gelu": "Relu", "LeakyRelu": "Relu", "PRelu": "Relu", "Elu": "Relu", "Selu": "Relu", "HardSigmoid": "Clip",
    "Sigmoid": "a quantizer (MultiThreshold) after Relu or Clip", "Tanh": "Clip (HardTanh) followed by a quantizer",
    "Softmax": "no Softmax: drop it (the class decision is unchanged)", "LogSoftmax": "no LogSoftmax: drop it",
    "ConvTranspose": "Conv", "Pad": "the pads attribute of Conv", "Concat": "a single chain (no Concat)",
    "Resize": "MaxPool or AveragePool", "Upsample": "MaxPool or AveragePool",
    "ReduceMean": "GlobalAveragePool", "Einsum": "MatMul", "Split": "a single chain (no Split)",
    "LSTM": "Gemm layers", "GRU": "Gemm layers", "Floor": "Quant with rounding_mode FLOOR",
    "Round": "Quant with rounding_mode ROUND", "BinaryQuant": "BipolarQuant",
}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}
_INT_INPUT = {onnx.TensorProto.UINT8: DataType.uint(8), onnx.TensorProto.INT8: DataType.int(8),
              onnx.TensorProto.UINT16: DataType.uint(16), onnx.TensorProto.INT16: DataType.int(16)}


# -- loading and checks -----------------------------------------------------------------------------


def load_model(source) -> tuple[onnx.ModelProto, str]:
    """Read a model from a path, bytes or a ``ModelProto``; returns it and a label for messages."""
    if isinstance(source, onnx.ModelProto):
        return source, "<model>"
    if isinstance(source, (bytes, bytearray)):
        label, data = "<bytes>", bytes(source)
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise LowbitError(f"{label}: no such file")
        data = path.read_bytes()
    if not data:
        raise LowbitError(f"{label}: empty file; expected an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError (a bare Exception subclass) on corrupt input
        raise LowbitError(f"{label}: not a readable ONNX model (truncated or corrupt protobuf: {e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise LowbitError(f"{label}: not an ONNX model (no graph nodes); truncated or wrong file type?")
    return model, label


def _opset(model) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def _nearest(op: str) -> str:
    if op in _HINTS:
        return _HINTS[op]
    close = difflib.get_close_matches(op, sorted(SUPPORTED_OPS), n=1, cutoff=0.5)
    return close[0] if close else "a chain of Conv/Gemm/MatMul, batch-norm, activations and quantizers"


def _check(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    v = _opset(model)
    if v is None:
        raise LowbitError(f"{label}: the model imports no default-domain opset; expected an opset from "
                          f"{MIN_OPSET} to {MAX_OPSET}")
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise LowbitError(f"{label}: opset {v} is not supported; lowbit reads opsets {MIN_OPSET} to {MAX_OPSET} "
                          f"(convert with onnx.version_converter.convert_version)")
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise LowbitError(f"{label}: the model has {len(inputs)} inputs ({', '.join(repr(i.name) for i in inputs)}); "
                          "lowbit imports single-input chains")
    if len(g.output) != 1:
        raise LowbitError(f"{label}: the model has {len(g.output)} outputs; lowbit imports single-output chains "
                          "(keep only the class scores)")
    inp = inputs[0]
    et = inp.type.tensor_type.elem_type
    if et not in _FLOAT_TYPES and et not in _INT_INPUT:
        raise LowbitError(f"{label}: input {inp.name!r} has data type {onnx.TensorProto.DataType.Name(et)}; "
                          "expected FLOAT, DOUBLE, UINT8, INT8, UINT16 or INT16")
    dims = inp.type.tensor_type.shape.dim
    if not inp.type.tensor_type.HasField("shape") or not dims:
        raise LowbitError(f"{label}: input {inp.name!r} has no shape; export with a fixed input shape")
    for axis, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value < 1:
            what = repr(d.dim_param) if d.HasField("dim_param") else "unknown"
            raise LowbitError(f"{label}: input {inp.name!r} has a dynamic dimension {what} at axis {axis}; lowbit "
                              "needs fixed shapes except the batch axis (export with a fixed input size)")
    for t in g.initializer:
        if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64,
                               onnx.TensorProto.INT32, onnx.TensorProto.INT8, onnx.TensorProto.UINT8,
                               onnx.TensorProto.FLOAT16, onnx.TensorProto.INT16, onnx.TensorProto.UINT16):
            raise LowbitError(f"{label}: initializer {t.name!r} has data type "
                              f"{onnx.TensorProto.DataType.Name(t.data_type)}; expected a numeric tensor")
    known = set(inits) | {inp.name}
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        if node.domain not in ("", "ai.onnx") + _CUSTOM_DOMAINS:
            raise LowbitError(f"{label}: node {name!r} ({node.op_type}): unknown domain {node.domain!r}; "
                              "expected the ONNX default domain or qonnx.custom_op.general")
        if node.op_type not in SUPPORTED_OPS:
            raise LowbitError(f"{label}: node {name!r} ({node.op_type}): operator {node.op_type!r} is not "
                              f"supported; nearest supported form: {_nearest(node.op_type)}")
        for x in node.input:
            if x and x not in known:
                raise LowbitError(f"{label}: node {name!r} ({node.op_type}): input {x!r} is neither an initializer, "
                                  "the graph input nor the output of an earlier node (missing initializer?)")
        known.update(node.output)
    if g.output[0].name not in known:
        raise LowbitError(f"{label}: output {g.output[0].name!r} is produced by no node")
    try:
        return shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx raises InferenceError / ValidationError with the failing node in the text
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LowbitError(f"{label}: shape inference failed (mismatched shapes?): {msg}") from None


# -- tensor states ----------------------------------------------------------------------------------


@dataclass
class _QConst:
    """A quantized constant: ``value = scale * codes`` (codes exact integers), with the source's type."""

    codes: np.ndarray
    scale: np.ndarray
    dtype: DataType | None

    @property
    def value(self):
        return self.codes * self.scale


@dataclass
class _Act:
    kind: str  # "raw", "codes", "pending"
    idx: np.ndarray
    phys: tuple
    origin: str
    dtype: DataType | None = None
    scale: np.ndarray | None = None  # codes: per physical channel
    offset: np.ndarray | None = None
    mm: dict | None = None  # pending: name, input_dtype, w (MH, MW) values, wdtype, S, O, xnor
    chain: list = field(default_factory=list)
    pools: list = field(default_factory=list)  # pending max-pools (name, kernel, stride)
    tensor: str | None = None  # raw: the ONNX tensor holding the quantized input

    @property
    def channels(self) -> int:
        return self.phys[-1]

    def last_quantizer(self) -> int | None:
        for i in range(len(self.chain) - 1, -1, -1):
            if is_quantizer(self.chain[i]):
                return i
            if not isinstance(self.chain[i], Affine):
                return None
        return None


def _std_image_idx(c, h, w, nchw=True) -> np.ndarray:
    pos = np.arange(h * w * c).reshape(h, w, c)
    return np.transpose(pos, (2, 0, 1)).copy() if nchw else pos


@dataclass(frozen=True, eq=False)
class ImportResult:
    """An imported model: the integer graph and how its integers relate to the ONNX tensors.

    ``encode(x)`` turns ONNX inputs (logical layout, float or integer) into the graph's input codes;
    ``outputs(scores)`` turns the graph's integer scores into the ONNX model's output values (exactly,
    then as float64); ``predict(x)`` is the class decision of the imported model.
    """

    graph: IntegerGraph
    source: str
    model: onnx.ModelProto
    input_idx: np.ndarray
    input_scale: np.ndarray
    input_offset: np.ndarray
    input_tensor: str | None
    output_fn: object
    origins: dict
    layer_scales: dict = field(default_factory=dict)
    scores_decide: bool = True
    """True when the graph's integer scores give the model's class decision (``IntegerGraph.predict``); False
    when the last layer has a per-class bias or scale, or element-wise operations after it, which the graph
    does not hold (``outputs``/``run``/``predict`` here apply them exactly)."""

    def encode(self, x) -> np.ndarray:
        x = np.asarray(x)
        if self.input_tensor is not None:
            v = onnx_ops.run(self.model, x.astype(np.float32), stop_at=self.input_tensor)[self.input_tensor]
        else:
            v = x.astype(np.float64)
        b = v.shape[0]
        flat = np.empty((b, self.input_idx.size))
        flat[:, self.input_idx.reshape(-1)] = v.reshape(b, -1)
        c = self.input_scale.shape[0]
        s = np.array([float(t) for t in self.input_scale])
        o = np.array([float(t) for t in self.input_offset])
        vals = (flat.reshape(b, -1, c) - o) / s
        q = np.round(vals)
        if not np.array_equal(q, vals):
            bad = np.argwhere(q != vals)[0]
            raise LowbitError(f"{self.source}: input element {tuple(bad)} is {flat.reshape(b, -1, c)[tuple(bad)]!r}, "
                              f"not a value of the input quantizer ({self.graph.input_dtype})")
        q = q.astype(np.int64).reshape(b, -1)
        if self.graph.input_dtype.kind is Kind.BIPOLAR:
            q = (q + 1) // 2
        return q.reshape((b,) + self.graph.input_shape)

    def outputs(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        out = np.empty(scores.shape, dtype=np.float64)
        for (i, c), s in np.ndenumerate(scores):
            out[i, c] = float(self.output_fn(int(s), c))
        return out

    def run(self, x) -> np.ndarray:
        """The ONNX model's output for inputs ``x`` computed through the integer graph."""
        return self.outputs(self.graph.scores(self.encode(x)))

    def predict(self, x) -> np.ndarray:
        return _argmax_float(self.run(x))


def _argmax_float(v: np.ndarray) -> np.ndarray:
    return np.argmax(v, axis=-1).astype(np.int64)


# -- the importer -----------------------------------------------------------------------------------


class _Importer:
    def __init__(self, model: onnx.ModelProto, label: str, input_dtype: DataType | None):
        self.model, self.label = model, label
        self.nodes: list = []
        self.layer_scales: dict = {}
        self.origins: dict[str, list[str]] = {}
        self.env: dict[str, object] = {}
        self.meta = {p.key: p.value for p in model.metadata_props}
        self.annot = {}
        for a in model.graph.quantization_annotation:
            for kv in a.quant_parameter_tensor_names:
                if kv.key == "finn_datatype":
                    self.annot[a.tensor_name] = kv.value
        for t in model.graph.initializer:
            self.env[t.name] = numpy_helper.to_array(t)
        g = model.graph
        inits = {t.name for t in g.initializer}
        inp = [i for i in g.input if i.name not in inits][0]
        self.input_name = inp.name
        shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[1:])
        idx, phys = self._input_layout(shape, self._input_nhwc(inp.name))
        et = inp.type.tensor_type.elem_type
        dtype = input_dtype
        if dtype is None and self.meta.get(f"lowbit.dtype.{inp.name}"):
            dtype = DataType.parse(self.meta[f"lowbit.dtype.{inp.name}"])
        if dtype is None and inp.name in self.annot:
            dtype = self._finn_dtype(self.annot[inp.name], inp.name)
        if dtype is None and et in _INT_INPUT:
            dtype = _INT_INPUT[et]
        c = phys[-1]
        if dtype is not None:
            self.env[inp.name] = _Act("codes", idx, phys, f"input {inp.name!r}", dtype,
                                      fraction_array(np.ones(c)), fraction_array(np.zeros(c)))
        else:
            self.env[inp.name] = _Act("raw", idx, phys, f"input {inp.name!r}")
        self.input_act = None

    def _finn_dtype(self, name: str, tensor: str) -> DataType:
        try:
            return DataType.parse(name)
        except ValueError:
            raise LowbitError(f"{self.label}: tensor {tensor!r} is annotated {name!r}; expected BIPOLAR, TERNARY, "
                              "UINT<k> or INT<k>") from None

    def _input_nhwc(self, name) -> bool:
        """True when the input image is NHWC: lowbit's own exports, or a first consumer working on NHWC."""
        if self.meta.get(f"lowbit.layout.{name}") == "NHWC":
            return True
        for node in self.model.graph.node:
            if name in node.input:
                a = onnx_ops.attributes(node)
                return node.op_type in ("Im2Col", "MaxPoolNHWC") or a.get("data_layout") == "NHWC"
        return False

    def _input_layout(self, shape, nhwc=False):
        if len(shape) == 3:
            if nhwc:
                h, w, c = shape
                return _std_image_idx(c, h, w, nchw=False), (h, w, c)
            c, h, w = shape
            return _std_image_idx(c, h, w), (h, w, c)
        if len(shape) == 1:
            return np.arange(shape[0]), (shape[0],)
        n = int(np.prod(shape))
        return np.arange(n).reshape(shape), (n,)

    def err(self, node, msg) -> LowbitError:
        return LowbitError(f"{self.label}: node {node.name!r} ({node.op_type}): {msg}")

    # constants -------------------------------------------------------------------------------
    def const(self, node, name, what="operand"):
        v = self.env.get(name)
        if isinstance(v, _Act):
            raise self.err(node, f"{what} {name!r} must be a constant (an initializer), not an activation")
        return v

    def fconst(self, node, name, what="operand") -> np.ndarray:
        v = self.const(node, name, what)
        if isinstance(v, _QConst):
            v = v.value
        v = np.asarray(v, dtype=np.float64)
        if not np.isfinite(v).all():
            raise self.err(node, f"{what} {name!r} contains NaN or infinity")
        return v

    def scalar(self, node, name, what) -> float:
        v = self.fconst(node, name, what)
        if v.size != 1:
            raise self.err(node, f"{what} must be a scalar, not shape {v.shape}")
        return float(v.reshape(-1)[0])

    # per-channel mapping ---------------------------------------------------------------------
    def per_channel(self, node, act: _Act, arr, what: str) -> np.ndarray:
        """A constant broadcast over the activation's logical shape, as one Fraction per physical channel."""
        arr = np.asarray(arr)
        full_shape = (1,) + act.idx.shape
        try:
            b = np.broadcast_to(arr, np.broadcast_shapes(arr.shape, full_shape))
        except ValueError:
            raise self.err(node, f"{what} of shape {arr.shape} does not broadcast to the activation "
                                 f"{list(full_shape)}") from None
        if b.shape != full_shape:
            raise self.err(node, f"{what} of shape {arr.shape} would change the activation shape {list(full_shape)}")
        flat = np.empty(act.idx.size, dtype=b.dtype)
        flat[act.idx.reshape(-1)] = b.reshape(-1)
        cols = flat.reshape(-1, act.channels)
        if not (cols == cols[:1]).all():
            raise self.err(node, f"{what} varies over the pixels of a channel; lowbit folds per-channel "
                                 "or per-tensor constants only")
        return cols[0]

    # main loop -------------------------------------------------------------------------------
    def run(self) -> ImportResult:
        for i, node in enumerate(self.model.graph.node):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
            ins = [self.env.get(n) if n else None for n in node.input]
            acts = [x for x in ins if isinstance(x, _Act)]
            if not acts:
                self.fold_const(node, ins)
                continue
            if len(acts) > 1:
                raise self.err(node, "combines two activations (a residual or skip connection); lowbit imports "
                                     "chains: fold the branch into one path")
            try:
                out = getattr(self, "op_" + node.op_type)(node, ins, onnx_ops.attributes(node))
            except (ValueError, ZeroDivisionError, OverflowError) as e:
                raise self.err(node, str(e)) from None
            self.env[node.output[0]] = out  # an activation, or a constant (Shape)
        out = self.env[self.model.graph.output[0].name]
        if not isinstance(out, _Act):
            raise LowbitError(f"{self.label}: the output does not depend on the input")
        return self.finish(out)

    def fold_const(self, node, ins):
        a = onnx_ops.attributes(node)
        op = node.op_type
        if op in ("Quant", "IntQuant", "BipolarQuant", "DequantizeLinear") and ins[0] is not None:
            self.env[node.output[0]] = self.quantize_const(node, ins, a)
            return
        if op in ("Transpose", "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze") and isinstance(ins[0], _QConst):
            rest = ins[1:]
            codes = onnx_ops.execute(op, [ins[0].codes] + rest, a, node)[0]
            scale = onnx_ops.execute(op, [np.broadcast_to(ins[0].scale, ins[0].codes.shape)] + rest, a, node)[0]
            self.env[node.output[0]] = _QConst(codes, scale, ins[0].dtype)
            return
        vals = [x.value if isinstance(x, _QConst) else x for x in ins]
        try:
            outs = onnx_ops.execute(op, vals, a, node)
        except (ValueError, TypeError, IndexError) as e:
            raise self.err(node, f"cannot evaluate on constants: {e}") from None
        for name, v in zip(node.output, outs):
            self.env[name] = v

    def quant_params(self, node, ins, a):
        op = node.op_type
        scale = self.fconst(node, node.input[1], "scale")
        if (scale <= 0).any():
            raise self.err(node, f"scale must be positive, found {scale.min():g}")
        if op == "BipolarQuant":
            return scale, None
        if op == "DequantizeLinear":
            zp = np.zeros(1) if len(ins) < 3 or ins[2] is None else self.fconst(node, node.input[2], "zero point")
            return scale, zp
        zp = self.fconst(node, node.input[2], "zero point")
        if (zp != np.round(zp)).any():
            raise self.err(node, "zero point must hold integers")
        bw = self.fconst(node, node.input[3], "bit width")
        if bw.size != 1 or bw.reshape(-1)[0] != round(float(bw.reshape(-1)[0])) or bw.reshape(-1)[0] < 1:
            raise self.err(node, f"bit width must be a positive integer scalar, not {bw.reshape(-1).tolist()}")
        mode = a.get("rounding_mode", "ROUND")
        try:
            onnx_ops.round_mode(mode)
        except ValueError as e:
            raise self.err(node, str(e)) from None
        return scale, zp

    def quantize_const(self, node, ins, a) -> _QConst:
        op = node.op_type
        x = ins[0].value if isinstance(ins[0], _QConst) else np.asarray(ins[0])
        if op == "DequantizeLinear":
            scale, zp = self.quant_params(node, ins, a)
            if x.dtype.kind not in "iu":
                raise self.err(node, f"quantized weights must be integers, not {x.dtype}")
            axis = a.get("axis", 1)
            s = onnx_ops.per_axis(scale, x.ndim, axis)
            z = onnx_ops.per_axis(zp, x.ndim, axis)
            codes = x.astype(np.int64) - z.astype(np.int64)
            return _QConst(codes, np.broadcast_to(s, x.shape).astype(np.float64), DataType.for_range(
                min(int(codes.min()), -1), max(int(codes.max()), 1)))
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise self.err(node, "the weights contain NaN or infinity")
        scale, zp = self.quant_params(node, ins, a)
        s = np.broadcast_to(scale, x.shape)
        if op == "BipolarQuant":
            return _QConst(np.where(x / s >= 0, 1, -1).astype(np.int64), s.astype(np.float64), BIPOLAR)
        bits = int(self.fconst(node, node.input[3]).reshape(-1)[0])
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        y = onnx_ops.quant_float(x, scale, zp, bits, signed, narrow, a.get("rounding_mode", "ROUND"))
        codes = np.round(y / s).astype(np.int64)
        if signed and narrow and bits == 2:
            dtype = TERNARY
        elif bits == 1 and signed:
            dtype = BIPOLAR
        else:
            dtype = DataType.int(bits if signed else bits + 1)
        if (np.asarray(zp) != 0).any():
            dtype = None
        return _QConst(codes, s.astype(np.float64), dtype)

    # weights ---------------------------------------------------------------------------------
    def weights(self, node, name, out_axis: int):
        """Integer codes, per-output-channel scale (Fractions) and data type of a weight tensor."""
        v = self.const(node, name, "weights")
        if v is None:
            raise self.err(node, "has no weights")
        if isinstance(v, _QConst):
            codes, scale, dtype = v.codes, np.asarray(v.scale, dtype=np.float64), v.dtype
        else:
            w = np.asarray(v)
            if w.dtype.kind in "iu":
                codes, scale, dtype = w.astype(np.int64), np.ones(w.shape), None
            else:
                w = w.astype(np.float64)
                if not np.isfinite(w).all():
                    raise self.err(node, f"weights {name!r} contain NaN or infinity")
                codes, scale = _detect_codes(w, out_axis)
                if codes is None:
                    raise self.err(node, f"weights {name!r} are float values that are not quantized; quantize them "
                                         "(Quant, BipolarQuant or DequantizeLinear) or run 'lowbit quantize'")
                dtype = None
        meta = self.meta.get(f"lowbit.dtype.{name}")
        if meta:
            dtype = DataType.parse(meta)
        elif name in self.annot and dtype is None:
            dtype = self._finn_dtype(self.annot[name], name)
        moved = np.moveaxis(scale, out_axis, 0).reshape(scale.shape[out_axis], -1)
        if not (moved == moved[:, :1]).all():
            raise self.err(node, f"weights {name!r} have a scale that varies along the input axis; lowbit folds "
                                 "per-tensor or per-output-channel weight scales only")
        row_scale = fraction_array(moved[:, 0])
        if dtype is None:
            dtype = _weight_dtype(codes)
        if dtype.kind is Kind.BIPOLAR and not set(np.unique(codes).tolist()) <= {-1, 1}:
            dtype = _weight_dtype(codes)
        return codes, row_scale, dtype

    # activations -----------------------------------------------------------------------------
    def materialize(self, node, act: _Act) -> _Act:
        """The activation as integer codes: emit the pending layer (thresholds) or the input quantizer."""
        if act.kind == "codes":
            return act
        q = act.last_quantizer()
        if q is None:
            what = "the input" if act.kind == "raw" else f"the output of {act.origin!r}"
            raise self.err(node, f"{what} is a float activation here; insert a quantizer (Quant, BipolarQuant, "
                                 "MultiThreshold, QuantizeLinear or Sign) before this node, or run "
                                 "'lowbit quantize' on a float model")
        quant, post = act.chain[q], act.chain[q + 1:]

        def value_of(code, c):
            v = quant.value(code, c)
            for op in post:
                v = op(v, c)
            return v

        if act.kind == "raw":
            return self.materialize_input(node, act, quant, value_of)
        mm = act.mm
        pre = act.chain[:q]

        def func(a, c):
            d = 2 * a - mm["w"].shape[1] if mm["xnor"] else a
            v = mm["S"][c] * d + mm["O"][c]
            for op in pre:
                v = op(v, c)
            return v

        def func_vec(a, c):
            d = 2 * a - mm["w"].shape[1] if mm["xnor"] else a
            v = float(mm["S"][c]) * d + float(mm["O"][c])
            for op in pre:
                v = op.vec(v, c)
            return v

        probe = MatMulThreshold("probe", mm["input_dtype"], _stored(mm["w"], mm["wdtype"]), None,
                                weight_dtype=mm["wdtype"])
        lo, hi = probe.acc_range
        mw = mm["w"].shape[1]
        neg = (lambda a: mw - a) if mm["xnor"] else (lambda a: -a)
        solved = solve_thresholds(func, quant.code, value_of, act.channels, lo, hi, neg, mm["name"],
                                      quant.nominal, func_vec, quant.vcode)
        w = mm["w"].copy()
        w[solved.negate] *= -1
        wdtype = mm["wdtype"]
        if not wdtype.contains(w) and wdtype.kind is Kind.INT:
            wdtype = DataType.int(wdtype.bits + 1)
            node_probe = MatMulThreshold("probe", mm["input_dtype"], w, None, weight_dtype=wdtype)
            lo, hi = node_probe.acc_range
            solved = solve_thresholds(func, quant.code, value_of, act.channels, lo, hi, neg, mm["name"],
                                      quant.nominal, func_vec, quant.vcode)
            w = mm["w"].copy()
            w[solved.negate] *= -1
        self.emit(MatMulThreshold(mm["name"], mm["input_dtype"], _stored(w, wdtype), solved.thresholds,
                                  solved.dtype, wdtype), act.origin)
        self.layer_scales[mm["name"]] = (solved.scale, solved.offset)
        for name, kernel, stride in act.pools:
            self.emit(MaxPool(name, kernel, stride), name)
        return _Act("codes", act.idx, act.phys, act.origin, solved.dtype, solved.scale, solved.offset)

    def materialize_input(self, node, act, quant, value_of) -> _Act:
        if isinstance(quant, BipolarQuantizer):
            dtype, lo, hi = BIPOLAR, 0, 1
        elif isinstance(quant, IntQuantizer):
            lo, hi = quant.lo, quant.hi
            dtype = DataType.for_range(lo, hi) if lo >= 0 else DataType.int(max(2, max((-lo - 1).bit_length(),
                                                                                       hi.bit_length()) + 1))
        elif isinstance(quant, ThresholdQuantizer):
            lo, hi = 0, quant.thresholds.shape[1]
            dtype = BIPOLAR if hi == 1 else DataType.for_range(0, hi)
        elif isinstance(quant, SignQuantizer):
            lo, hi, dtype = -1, 1, DataType.int(2)
        else:
            raise self.err(node, "the input quantizer must be Quant, BipolarQuant, MultiThreshold, QuantizeLinear "
                                 "or Sign")
        c = act.channels
        scale, offset = np.empty(c, dtype=object), np.empty(c, dtype=object)
        for ch in range(c):
            if dtype.kind is Kind.BIPOLAR:
                v0, v1 = value_of(lo, ch), value_of(lo + 1, ch)
                scale[ch], offset[ch] = (v1 - v0) / 2, (v1 + v0) / 2
            else:
                v0, v1 = value_of(0, ch), value_of(1, ch)
                scale[ch], offset[ch] = v1 - v0, v0
        out = _Act("codes", act.idx, act.phys, act.origin, dtype, scale, offset)
        self.input_act = (out, act.tensor, act.idx)
        return out

    def emit(self, graph_node, origin):
        self.nodes.append(graph_node)
        self.origins.setdefault(graph_node.name, []).append(origin)

    def append(self, node, act: _Act, op) -> _Act:
        new = _copy(act)
        new.chain.append(op)
        return new

    def elementwise(self, node, act: _Act, op, internal: bool = False) -> _Act:
        """Apply an exact element-wise function: folded into codes (affine) or the pending chain."""
        if act.kind == "codes":
            if isinstance(op, Affine):
                return _Act("codes", act.idx, act.phys, act.origin, act.dtype,
                            np.array([op.scale[c] * act.scale[c] for c in range(act.channels)], dtype=object),
                            np.array([op(act.offset[c], c) for c in range(act.channels)], dtype=object))
            act = self.identity_layer(node, act)
        out = self.append(node, act, op)
        if act.kind == "raw" and not internal:  # the ONNX tensor holding this value (for encode)
            out.tensor = node.output[0]
        return out

    def identity_layer(self, node, act: _Act) -> _Act:
        """Re-open integer codes as a pending 1x1 identity layer so a nonlinear function can be thresholded."""
        c = act.channels
        return _Act("pending", act.idx, act.phys, node.name, mm={
            "name": f"{node.name}_requant", "input_dtype": act.dtype, "w": np.eye(c, dtype=np.int64),
            "wdtype": TERNARY, "S": act.scale, "O": act.offset, "xnor": False})

    def affine_from(self, node, act, scale, offset, what) -> Affine:
        s = self.per_channel(node, act, scale, what) if np.ndim(scale) else np.full(act.channels, scale)
        o = self.per_channel(node, act, offset, what) if np.ndim(offset) else np.full(act.channels, offset)
        return Affine(fraction_array(s), fraction_array(o))

    # element-wise ops --------------------------------------------------------------------------
    def op_Identity(self, node, ins, a):
        return ins[0]

    op_Dropout = op_Identity

    def op_Cast(self, node, ins, a):
        """Casts keep values; a cast to an integer type must not round a float activation."""
        act = ins[0]
        to = a.get("to", onnx.TensorProto.FLOAT)
        if to not in _FLOAT_TYPES and act.kind != "codes" and act.last_quantizer() is None:
            raise self.err(node, f"casts a float activation to {onnx.TensorProto.DataType.Name(to)}, which would "
                                 "round it; quantize it first (QuantizeLinear or Quant)")
        return act

    def _binary(self, node, ins, a):
        act_first = isinstance(ins[0], _Act)
        act = ins[0] if act_first else ins[1]
        k = self.fconst(node, node.input[1 if act_first else 0], "constant")
        op = node.op_type
        if op == "Add":
            return self.elementwise(node, act, self.affine_from(node, act, 1.0, k, "the added constant"))
        if op == "Sub":
            if act_first:
                return self.elementwise(node, act, self.affine_from(node, act, 1.0, -k, "the subtracted constant"))
            return self.elementwise(node, act, self.affine_from(node, act, -np.ones_like(k), k, "the constant"))
        if op == "Mul":
            return self.elementwise(node, act, self.affine_from(node, act, k, 0.0, "the factor"))
        if not act_first:
            raise self.err(node, "divides a constant by an activation; only division by a constant is supported")
        if (k == 0).any():
            raise self.err(node, "divides by zero")
        inv = self.per_channel(node, act, k, "the divisor") if np.ndim(k) else np.full(act.channels, float(k))
        return self.elementwise(node, act, Affine(np.array([1 / exact(v) for v in inv], dtype=object),
                                                  fraction_array(np.zeros(act.channels))))

    op_Add = op_Sub = op_Mul = op_Div = _binary

    def op_BatchNormalization(self, node, ins, a):
        act = ins[0]
        gamma, beta, mean, var = (self.fconst(node, n, w) for n, w in zip(node.input[1:5],
                                                                           ("scale", "bias", "mean", "var")))
        if (var < 0).any():
            raise self.err(node, "variance must be non-negative")
        eps = a.get("epsilon", 1e-5)
        shape = (-1,) + (1,) * (act.idx.ndim - 1)
        c = act.channels
        # exact: z = gamma * (y - mean) / sqrt(var + eps) + beta; sqrt is computed in float64 (as every runtime does)
        sigma = np.sqrt(var.astype(np.float64) + eps)
        g = self.per_channel(node, act, (gamma / sigma).reshape(shape), "batch-norm scale")
        pm = self.per_channel(node, act, mean.reshape(shape), "batch-norm mean")
        pb = self.per_channel(node, act, beta.reshape(shape), "batch-norm bias")
        s = np.array([exact(g[i]) for i in range(c)], dtype=object)
        o = np.array([exact(pb[i]) - exact(g[i]) * exact(pm[i]) for i in range(c)], dtype=object)
        return self.elementwise(node, act, Affine(s, o))

    def op_Relu(self, node, ins, a):
        return self.elementwise(node, ins[0], Relu())

    def op_Clip(self, node, ins, a):
        lo = a.get("min") if len(ins) < 2 or ins[1] is None else self.scalar(node, node.input[1], "min")
        hi = a.get("max") if len(ins) < 3 or ins[2] is None else self.scalar(node, node.input[2], "max")
        return self.elementwise(node, ins[0], Clip(None if lo is None else exact(lo), None if hi is None else exact(hi)))

    def op_Sign(self, node, ins, a):
        return self.elementwise(node, ins[0], SignQuantizer())

    def op_Quant(self, node, ins, a):
        act = ins[0]
        scale, zp = self.quant_params(node, ins, a)
        bits = int(self.fconst(node, node.input[3]).reshape(-1)[0])
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        c = act.channels
        s = self.per_channel(node, act, scale, "scale") if scale.size > 1 else np.full(c, float(scale.reshape(-1)[0]))
        z = self.per_channel(node, act, zp, "zero point") if zp.size > 1 else np.full(c, float(zp.reshape(-1)[0]))
        if bits == 1 and signed:
            if (z != 0).any():
                raise self.err(node, "a 1-bit signed Quant needs zero point 0")
            return self.elementwise(node, act, BipolarQuantizer(fraction_array(s)))
        lo, hi = onnx_ops.qonnx_int_range(bits, signed, narrow)
        return self.elementwise(node, act, IntQuantizer(fraction_array(s), fraction_array(z), lo, hi,
                                                        a.get("rounding_mode", "ROUND")))

    op_IntQuant = op_Quant

    def op_BipolarQuant(self, node, ins, a):
        act = ins[0]
        scale, _ = self.quant_params(node, ins, a)
        s = self.per_channel(node, act, scale, "scale") if scale.size > 1 else np.full(act.channels, float(scale.item()))
        return self.elementwise(node, act, BipolarQuantizer(fraction_array(s)))

    def op_Trunc(self, node, ins, a):
        act = ins[0]
        scale = self.fconst(node, node.input[1], "scale")
        if (scale <= 0).any():
            raise self.err(node, f"scale must be positive, found {scale.min():g}")
        zp = self.fconst(node, node.input[2], "zero point")
        ibw, obw = self.scalar(node, node.input[3], "input bit width"), self.scalar(node, node.input[4],
                                                                                   "output bit width")
        if ibw < obw or obw < 1:
            raise self.err(node, f"bit widths must satisfy input ({ibw:g}) >= output ({obw:g}) >= 1")
        c = act.channels
        s = self.per_channel(node, act, scale, "scale") if scale.size > 1 else np.full(c, float(scale.item()))
        z = self.per_channel(node, act, zp, "zero point") if zp.size > 1 else np.full(c, float(zp.item()))
        shift = Fraction(2) ** int(round(ibw - obw))
        lo = hi = None
        out_scale = fraction_array(s) * shift
        if len(ins) > 5 and ins[5] is not None:  # Trunc v2: output scale and clipping
            os_ = self.scalar(node, node.input[5], "output scale")
            shift = Fraction(2) ** int(round(math.log2(os_ / float(s[0]))))
            out_scale = np.array([exact(os_)] * c, dtype=object)
            lo, hi = onnx_ops.qonnx_int_range(int(obw), bool(a.get("signed", 1)), bool(a.get("narrow", 0)))
        return self.elementwise(node, act, TruncQuantizer(fraction_array(s), fraction_array(z), shift, out_scale,
                                                          a.get("rounding_mode", "FLOOR"), lo, hi))

    def op_MultiThreshold(self, node, ins, a):
        act = ins[0]
        t = self.fconst(node, node.input[1], "thresholds")
        if t.ndim != 2:
            raise self.err(node, f"thresholds must have shape (C, k), not {t.shape}")
        if (np.diff(t, axis=1) < 0).any():
            raise self.err(node, "each row of thresholds must be sorted ascending")
        layout = a.get("data_layout", "")
        nd = act.idx.ndim
        axis = nd - 1 if layout in ("NHWC", "NC", "NWC") or (layout == "" and nd == 1) else 0
        logical_c = np.indices(act.idx.shape)[axis] if nd > 1 else np.arange(act.idx.shape[0])
        lch = self.per_channel(node, act, logical_c[None], "the channel axis")
        if t.shape[0] not in (1, act.idx.shape[axis]):
            raise self.err(node, f"thresholds have {t.shape[0]} rows, but the channel axis has "
                                 f"{act.idx.shape[axis]} channels")
        rows = np.array([t[0 if t.shape[0] == 1 else int(l)] for l in lch])
        return self.elementwise(node, act, ThresholdQuantizer(fraction_array(rows), exact(a.get("out_scale", 1.0)),
                                                              exact(a.get("out_bias", 0.0))))

    def op_QuantizeLinear(self, node, ins, a):
        act = ins[0]
        scale = self.fconst(node, node.input[1], "scale")
        if (scale <= 0).any():
            raise self.err(node, f"scale must be positive, found {scale.min():g}")
        zp_raw = ins[2] if len(ins) > 2 and ins[2] is not None else np.zeros((), dtype=np.uint8)
        zp_raw = np.asarray(zp_raw)
        if zp_raw.dtype not in (np.uint8, np.int8):
            raise self.err(node, f"zero point type {zp_raw.dtype} is not supported; expected uint8 or int8")
        info = np.iinfo(zp_raw.dtype)
        axis = a.get("axis", 1)
        s = self._axis_param(node, act, scale, axis, "scale")
        z = self._axis_param(node, act, zp_raw.astype(np.float64), axis, "zero point")
        return self.elementwise(node, act, IntQuantizer(fraction_array(s), fraction_array(z), int(info.min),
                                                        int(info.max), "ROUND", round_then_clip=True,
                                                        dequantize=False))

    def _axis_param(self, node, act, v, axis, what):
        if v.size == 1:
            return np.full(act.channels, float(v.reshape(-1)[0]))
        shape = [1] * (act.idx.ndim + 1)
        shape[axis] = -1
        return self.per_channel(node, act, v.reshape(shape), what)

    def op_DequantizeLinear(self, node, ins, a):
        act = ins[0]
        scale = self.fconst(node, node.input[1], "scale")
        if (scale <= 0).any():
            raise self.err(node, f"scale must be positive, found {scale.min():g}")
        zp = self.fconst(node, node.input[2], "zero point") if len(ins) > 2 and ins[2] is not None else np.zeros(1)
        axis = a.get("axis", 1)
        s = self._axis_param(node, act, scale, axis, "scale")
        z = self._axis_param(node, act, zp, axis, "zero point")
        return self.elementwise(node, act, Affine(fraction_array(s), np.array([-exact(zi) * exact(si)
                                                                             for zi, si in zip(z, s)], dtype=object)))

    # shape ops -------------------------------------------------------------------------------
    def _reshape_like(self, node, ins, a):
        act = ins[0]
        rest = [x if not isinstance(x, _QConst) else x.value for x in ins[1:]]
        try:
            out = onnx_ops.execute(node.op_type, [act.idx[None]] + rest, a, node)[0]
        except ValueError as e:
            raise self.err(node, f"cannot apply to the activation of shape {[1, *act.idx.shape]}: {e}") from None
        if out.ndim < 1 or out.shape[0] != 1:
            raise self.err(node, f"moves the batch axis (output shape {list(out.shape)}); keep the batch axis first")
        new = _copy(act)
        new.idx = out[0]
        if act.kind == "raw":
            new.tensor = node.output[0]
        return new

    op_Reshape = op_Flatten = op_Transpose = op_Squeeze = op_Unsqueeze = _reshape_like

    # matrix products -------------------------------------------------------------------------
    def _input_codes(self, node, act) -> _Act:
        return self.materialize(node, act)

    def _pending_matmul(self, node, x: _Act, wq: np.ndarray, row_scale, wdtype, bias, name, cols_phys, out_idx,
                        out_phys, alpha=1.0):
        """Start a pending layer: ``wq`` (MH, K) logical codes, columns mapped to physical positions."""
        mh = wq.shape[0]
        xnor = x.dtype.kind is Kind.BIPOLAR and wdtype.kind is Kind.BIPOLAR
        # input channel of every column, uniform input scale per row over its non-zero weights
        col_ch = cols_phys % x.channels
        s_in = x.scale[col_ch]
        o_in = x.offset[col_ch]
        S = np.empty(mh, dtype=object)
        O = np.empty(mh, dtype=object)
        uniq_o = {}
        for j, o in enumerate(o_in):
            uniq_o.setdefault(o, []).append(j)
        for r in range(mh):
            nz = np.nonzero(wq[r])[0] if wdtype.kind is not Kind.BIPOLAR else np.arange(wq.shape[1])
            scales = {s_in[j] for j in nz}
            if len(scales) > 1:
                raise self.err(node, "its input has per-channel scales that differ across the inputs of one output; "
                                     "use a per-tensor activation quantizer before this layer")
            si = next(iter(scales)) if scales else Fraction(1)
            k = exact(row_scale[r]) * exact(alpha)
            S[r] = k * si
            off = sum((o * int(wq[r, js].sum()) for o, js in uniq_o.items() if o != 0), Fraction(0))
            O[r] = k * off + (exact(bias[r]) if bias is not None else Fraction(0))
        return _Act("pending", out_idx, out_phys, name, mm={
            "name": name, "input_dtype": x.dtype, "w": wq, "wdtype": wdtype, "S": S, "O": O, "xnor": xnor})

    def _fc(self, node, x: _Act, wlog: np.ndarray, row_scale, wdtype, bias, alpha=1.0):
        """A fully connected layer on the activation ``x`` with logical weights ``(MH, K)``."""
        x = self._input_codes(node, x)
        k = int(np.prod(x.idx.shape))
        if wlog.shape[1] != x.idx.shape[-1]:
            raise self.err(node, f"weights have {wlog.shape[1]} inputs, but the activation has shape "
                                 f"{[1, *x.idx.shape]}")
        if x.idx.ndim != 1:
            raise self.err(node, f"needs a vector input (1, K), not {[1, *x.idx.shape]}; add Flatten")
        if k != int(np.prod(x.phys)):
            raise self.err(node, "its input is a part of the previous tensor; lowbit needs the whole tensor")
        w = np.zeros((wlog.shape[0], k), dtype=np.int64)
        w[:, x.idx] = wlog
        cols = np.arange(k)
        mh = wlog.shape[0]
        return self._pending_matmul(node, x, w, row_scale, wdtype, bias, node.name, cols, np.arange(mh), (mh,), alpha)

    def op_Gemm(self, node, ins, a):
        if a.get("transA", 0):
            raise self.err(node, "transA=1 is not supported; transpose the activation with Transpose first")
        if not isinstance(ins[0], _Act):
            raise self.err(node, "the activation must be the first operand (A)")
        codes, rs, dt = self.weights(node, node.input[1], 0 if a.get("transB", 0) else 1)
        wlog = codes if a.get("transB", 0) else codes.T
        bias = None
        if len(ins) > 2 and ins[2] is not None:
            b = np.broadcast_to(self.fconst(node, node.input[2], "bias"), (wlog.shape[0],))
            bias = fraction_array(b * a.get("beta", 1.0))
        return self._fc(node, ins[0], wlog, rs, dt, bias, a.get("alpha", 1.0))

    def op_MatMul(self, node, ins, a):
        if not isinstance(ins[0], _Act):
            raise self.err(node, "the activation must be the first operand (x @ W)")
        if isinstance(ins[1], _Act):
            raise self.err(node, f"weights {node.input[1]!r} must be a constant (an initializer), not an activation")
        w = self.const(node, node.input[1])
        if np.ndim(w.codes if isinstance(w, _QConst) else w) != 2:
            raise self.err(node, "weights must be a 2-D matrix (K, N)")
        x = ins[0]
        if x.idx.ndim == 3 and len(x.phys) == 3:  # NHWC image times (K, N): a 1x1 convolution per pixel
            codes, rs, dt = self.weights(node, node.input[1], 1)
            return self._pixelwise(node, x, codes.T, rs, dt)
        codes, rs, dt = self.weights(node, node.input[1], 1)
        return self._fc(node, x, codes.T, rs, dt, None)

    def _pixelwise(self, node, x, wlog, rs, dt):
        x = self._input_codes(node, x)
        if not np.array_equal(x.idx, _std_image_idx(x.phys[2], x.phys[0], x.phys[1], nchw=False)):
            raise self.err(node, "needs an NHWC activation on its last axis")
        if wlog.shape[1] != x.phys[2]:
            raise self.err(node, f"weights have {wlog.shape[1]} inputs, but the activation has {x.phys[2]} channels")
        h, w, c = x.phys
        mh = wlog.shape[0]
        return self._pending_matmul(node, x, wlog, rs, dt, None, node.name, np.arange(c),
                                    _std_image_idx(mh, h, w, nchw=False), (h, w, mh))

    def op_XnorPopcountMatMul(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        if x.dtype.kind is not Kind.BIPOLAR:
            raise self.err(node, f"needs a binary input, not {x.dtype}")
        wb = np.asarray(self.fconst(node, node.input[1], "weights"))
        if not set(np.unique(wb).tolist()) <= {0.0, 1.0}:
            raise self.err(node, "weights must be bits (0/1)")
        wvals = (2 * wb.T - 1).astype(np.int64)
        k = wvals.shape[1]
        bits = _copy(x)
        bits.scale = fraction_array(np.full(x.channels, 0.5))
        bits.offset = fraction_array(np.full(x.channels, 0.5))
        act = self._fc(node, bits, wvals, fraction_array(np.ones(wvals.shape[0])), BIPOLAR, None)
        act.mm["S"] = np.array([Fraction(1, 2)] * wvals.shape[0], dtype=object)  # popcount = (d + K) / 2
        act.mm["O"] = np.array([Fraction(k, 2)] * wvals.shape[0], dtype=object)
        return act

    def op_MatMulInteger(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        if len(ins) > 2 and ins[2] is not None:
            z = self.fconst(node, node.input[2], "a zero point")
            x = self.elementwise(node, x, self.affine_from(node, x, 1.0, -z, "a zero point"), internal=True)
        w = np.asarray(self.const(node, node.input[1], "weights")).astype(np.int64)
        if len(ins) > 3 and ins[3] is not None:
            w = w - np.asarray(self.const(node, node.input[3], "b zero point")).astype(np.int64)
        node_w = w.T
        return self._fc(node, x, node_w, fraction_array(np.ones(node_w.shape[0])), _weight_dtype(node_w), None)

    def op_QLinearMatMul(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        xs, xz = self.scalar(node, node.input[1], "a scale"), self.scalar(node, node.input[2], "a zero point")
        x = self.elementwise(node, x, Affine(fraction_array([xs] * x.channels),
                                             fraction_array([-xz * xs] * x.channels)), internal=True)
        b = np.asarray(self.const(node, node.input[3], "b")).astype(np.int64)
        bs, bz = self.fconst(node, node.input[4], "b scale"), self.fconst(node, node.input[5], "b zero point")
        codes = b - onnx_ops.per_axis(bz, 2, 1).astype(np.int64)
        rs = fraction_array(np.broadcast_to(bs.reshape(-1), (b.shape[1],)))
        act = self._fc(node, x, codes.T, rs, _weight_dtype(codes.T), None)
        return self._requant(node, act, ins[6:8], node.input[6:8])

    def _requant(self, node, act, ins, names):
        ys = self.fconst(node, names[0], "y scale")
        yz = np.asarray(ins[1])
        info = np.iinfo(yz.dtype)
        c = act.channels
        return self.append(node, act, IntQuantizer(fraction_array(np.full(c, float(ys.reshape(-1)[0]))),
                                                   fraction_array(np.full(c, float(yz.reshape(-1)[0]))),
                                                   int(info.min), int(info.max), "ROUND", round_then_clip=True,
                                                   dequantize=False))

    # convolutions and pools ------------------------------------------------------------------
    def _image(self, node, x: _Act, nchw=True) -> tuple[int, int, int]:
        if len(x.phys) != 3 or x.idx.ndim != 3:
            raise self.err(node, f"needs an image (1, C, H, W), not {[1, *x.idx.shape]}")
        h, w, c = x.phys
        if not np.array_equal(x.idx, _std_image_idx(c, h, w, nchw)):
            raise self.err(node, "its input is not in NCHW layout (a Transpose before it is not supported)"
                           if nchw else "its input is not in NHWC layout")
        return h, w, c

    def _geometry(self, node, a, kshape):
        k = list(kshape)
        if len(k) != 2:
            raise self.err(node, f"only 2-D kernels are supported, not {k}")
        if k[0] != k[1]:
            raise self.err(node, f"kernel {tuple(k)} is not square; lowbit's sliding window needs a square kernel")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.err(node, f"dilations {list(a['dilations'])} are not supported; use dilation 1")
        s = list(a.get("strides", [1, 1]))
        if s[0] != s[1]:
            raise self.err(node, f"strides {s} differ; lowbit needs equal strides")
        auto = a.get("auto_pad", "NOTSET")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            if s[0] != 1 or k[0] % 2 == 0:
                raise self.err(node, f"auto_pad {auto} with stride {s[0]} and kernel {k[0]} is not supported; "
                                     "give explicit symmetric pads")
            pads = [(k[0] - 1) // 2] * 4
        elif auto not in ("NOTSET", "VALID"):
            raise self.err(node, f"auto_pad {auto!r} is not supported")
        if len(set(pads)) > 1:
            raise self.err(node, f"pads {pads} are not symmetric; lowbit needs the same padding on every side")
        if a.get("ceil_mode", 0):
            raise self.err(node, "ceil_mode 1 is not supported; use ceil_mode 0 (pad the input instead)")
        return k[0], s[0], pads[0]

    def op_Conv(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        h, w_, c = self._image(node, x)
        codes, rs, dt = self.weights(node, node.input[1], 0)
        if codes.ndim != 4:
            raise self.err(node, f"weights must be (OC, IC/group, kH, kW), not {codes.shape}")
        k, s, p = self._geometry(node, a, codes.shape[2:])
        group = a.get("group", 1)
        oc = codes.shape[0]
        if c % group or oc % group or codes.shape[1] != c // group:
            raise self.err(node, f"weights {codes.shape} do not match {c} input channels in {group} groups")
        pad_value = 0
        if p:
            zero = [(-x.offset[i] / x.scale[i]) for i in range(c)]
            if len(set(zero)) != 1 or zero[0].denominator != 1:
                raise self.err(node, "padding needs the value 0, which its input codes cannot represent; "
                                     "use pads 0 or an input quantizer that contains 0")
            z = int(zero[0])  # the code value standing for 0.0
            if x.dtype.kind is Kind.BIPOLAR:
                if z not in (-1, 1):
                    raise self.err(node, "padding needs the value 0, which BIPOLAR inputs cannot represent "
                                         "(binary activations have no zero); use pads 0")
                z = (z + 1) // 2
            elif not x.dtype.contains([z]):
                raise self.err(node, f"padding needs the value 0, which {x.dtype} inputs cannot represent; use pads 0")
            pad_value = z
        vals = codes  # weight values (+-1 for bipolar weights)
        dense = np.zeros((oc, k, k, c), dtype=np.int64)
        og, cg = oc // group, c // group
        for g in range(group):
            blk = np.transpose(vals[g * og:(g + 1) * og], (0, 2, 3, 1))  # (og, k, k, cg)
            dense[g * og:(g + 1) * og, :, :, g * cg:(g + 1) * cg] = blk
        if group > 1 and dt.kind is Kind.BIPOLAR:
            dt = TERNARY
        sw_name = f"{node.name}_im2col" if k > 1 or s > 1 or p else None
        oh, ow = (h + 2 * p - k) // s + 1, (w_ + 2 * p - k) // s + 1
        if sw_name is not None:
            self.emit(SlidingWindow(sw_name, k, s, p, pad_value), node.name)
        wmat = dense.reshape(oc, k * k * c)
        bias = None
        if len(ins) > 2 and ins[2] is not None:
            bias = fraction_array(self.fconst(node, node.input[2], "bias").reshape(-1))
        # column j of the window (ky, kx, c) reads input channel c
        cols = np.tile(np.arange(c), k * k)
        return self._pending_matmul(node, x, wmat, rs, dt, bias, node.name, cols, _std_image_idx(oc, oh, ow),
                                    (oh, ow, oc))

    def op_Im2Col(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        h, w_, c = self._image(node, x, nchw=False)
        ks, st = list(a["kernel_size"]), list(a["stride"])
        pads = list(a.get("pad_amount", [0, 0, 0, 0]))
        if ks[0] != ks[1] or st[0] != st[1] or len(set(pads)) > 1:
            raise self.err(node, "needs a square kernel, equal strides and symmetric padding")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.err(node, "dilations must be 1")
        k, s, p = ks[0], st[0], pads[0]
        pv = int(a.get("pad_value", 0))
        self.emit(SlidingWindow(node.name, k, s, p, (pv + 1) // 2 if x.dtype.kind is Kind.BIPOLAR else pv),
                  node.name)
        oh, ow = (h + 2 * p - k) // s + 1, (w_ + 2 * p - k) // s + 1
        cc = k * k * c
        new = _Act("codes", _std_image_idx(cc, oh, ow, nchw=False), (oh, ow, cc), node.name, x.dtype,
                   np.tile(x.scale, k * k), np.tile(x.offset, k * k))
        return new

    def _maxpool(self, node, x: _Act, k, s, nchw):
        if x.kind == "codes":
            h, w_, c = self._image(node, x, nchw)
            if any(sc <= 0 for sc in x.scale):
                raise self.err(node, "max-pool of codes with a negative scale is not supported")
            if x.dtype.kind not in (Kind.BIPOLAR, Kind.UINT):
                raise self.err(node, f"max-pool needs BIPOLAR or unsigned codes, not {x.dtype}")
            self.emit(MaxPool(node.name, k, s), node.name)
            out = _copy(x)
        elif x.kind == "pending":
            h, w_, c = self._image(node, x, nchw)
            out = _copy(x)
            out.pools.append((node.name, k, s))
        else:
            raise self.err(node, "max-pool of the float input is not supported; quantize the input first")
        oh, ow = (h - k) // s + 1, (w_ - k) // s + 1
        out.idx = _std_image_idx(c, oh, ow, nchw)
        out.phys = (oh, ow, c)
        return out

    def op_MaxPool(self, node, ins, a):
        k, s, p = self._geometry(node, a, a["kernel_shape"])
        if p:
            raise self.err(node, "padding is not supported for MaxPool; use pads 0")
        return self._maxpool(node, ins[0], k, s, True)

    def op_MaxPoolNHWC(self, node, ins, a):
        k, s, p = self._geometry(node, a, a["kernel_shape"])
        if p:
            raise self.err(node, "padding is not supported; use pads 0")
        return self._maxpool(node, ins[0], k, s, False)

    def op_AveragePool(self, node, ins, a):
        k, s, p = self._geometry(node, a, a["kernel_shape"])
        if p:
            raise self.err(node, "padding is not supported for AveragePool; use pads 0")
        x = self._input_codes(node, ins[0])
        h, w_, c = self._image(node, x)
        dense = np.zeros((c, k, k, c), dtype=np.int64)
        for ch in range(c):
            dense[ch, :, :, ch] = 1
        self.emit(SlidingWindow(f"{node.name}_im2col", k, s, 0, 0), node.name)
        oh, ow = (h - k) // s + 1, (w_ - k) // s + 1
        act = self._pending_matmul(node, x, dense.reshape(c, -1), fraction_array(np.full(c, 1.0 / 1)), DataType.int(2),
                                   None, node.name, np.tile(np.arange(c), k * k), _std_image_idx(c, oh, ow), (oh, ow, c))
        act.mm["S"] = np.array([v / (k * k) for v in act.mm["S"]], dtype=object)  # the mean of the window
        act.mm["O"] = np.array([v / (k * k) for v in act.mm["O"]], dtype=object)
        return act

    def _global_pool(self, node, x, mean: bool, nchw: bool):
        x = self._input_codes(node, x)
        h, w_, c = self._image(node, x, nchw)
        n = h * w_
        self.emit(GlobalAccPool(node.name, x.dtype), node.name)
        lo, hi = n * x.dtype.min, n * x.dtype.max
        div = n if mean else 1
        scale = np.array([sc / div for sc in x.scale], dtype=object)
        offset = np.array([o * (1 if mean else n) for o in x.offset], dtype=object)
        return DataType.for_range(lo, hi), scale, offset, c

    def op_GlobalAveragePool(self, node, ins, a):
        dt, scale, offset, c = self._global_pool(node, ins[0], True, True)
        return _Act("codes", np.arange(c).reshape(c, 1, 1), (c,), node.name, dt, scale, offset)

    def op_ReduceSum(self, node, ins, a):
        axes = a.get("axes", None if len(ins) < 2 or ins[1] is None else [int(v) for v in ins[1]])
        if sorted(axes or []) != [1, 2] or a.get("keepdims", 1):
            raise self.err(node, "only the sum over axes [1, 2] of an NHWC image with keepdims 0 is supported")
        dt, scale, offset, c = self._global_pool(node, ins[0], False, False)
        return _Act("codes", np.arange(c), (c,), node.name, dt, scale, offset)

    def op_Shape(self, node, ins, a):
        """The shape of an activation, batch 1 (shape arithmetic such as ``x.view(x.size(0), -1)``)."""
        return np.array([1, *ins[0].idx.shape], dtype=np.int64)

    def op_Gather(self, node, ins, a):
        raise self.err(node, "gathers from an activation; only shape arithmetic on constants is supported")

    op_Concat = op_Gather

    def op_GreaterOrEqual(self, node, ins, a):
        raise self.err(node, "comparisons of activations are not supported; use MultiThreshold (import the QONNX "
                             "form of a lowbit export: lowbit export --format qonnx)")

    def op_QLinearConv(self, node, ins, a):
        x = self._input_codes(node, ins[0])
        xs, xz = self.scalar(node, node.input[1], "x scale"), self.scalar(node, node.input[2], "x zero point")
        x = self.elementwise(node, x, Affine(fraction_array([xs] * x.channels),
                                             fraction_array([-xz * xs] * x.channels)), internal=True)
        wq = np.asarray(self.const(node, node.input[3], "weights")).astype(np.int64)
        ws, wz = self.fconst(node, node.input[4], "w scale"), self.fconst(node, node.input[5], "w zero point")
        codes = wq - onnx_ops.per_axis(wz, 4, 0).astype(np.int64)
        scale = np.broadcast_to(onnx_ops.per_axis(ws, 4, 0), codes.shape).astype(np.float64)
        tmp = f"__qlinear_w_{node.name}"
        self.env[tmp] = _QConst(codes, scale, _weight_dtype(codes))
        bias_name = None
        if len(ins) > 8 and ins[8] is not None:
            bias_name = f"__qlinear_b_{node.name}"
            self.env[bias_name] = np.asarray(ins[8]).astype(np.float64) * xs * np.broadcast_to(
                ws.reshape(-1), (codes.shape[0],))
        fake = onnx.helper.make_node("Conv", [node.input[0], tmp] + ([bias_name] if bias_name else []),
                                     [node.output[0]], name=node.name, **{k: v for k, v in a.items()})
        act = self.op_Conv(fake, [x, self.env[tmp]] + ([self.env[bias_name]] if bias_name else []), a)
        return self._requant(node, act, ins[6:8], node.input[6:8])

    # output ----------------------------------------------------------------------------------
    def finish(self, act: _Act) -> ImportResult:
        if act.kind != "pending" or act.mm is None:
            raise LowbitError(f"{self.label}: the model must end in a fully connected layer (Gemm or MatMul) "
                              f"followed only by element-wise operations; it ends in {act.origin!r}")
        if len(act.phys) != 1 or act.pools:
            raise LowbitError(f"{self.label}: the model must end in class scores (a vector), not {list(act.phys)}")
        mm = act.mm
        self.emit(MatMulThreshold(mm["name"], mm["input_dtype"], _stored(mm["w"], mm["wdtype"]), None,
                                  weight_dtype=mm["wdtype"]), act.origin)
        chain = list(act.chain)
        S, O = mm["S"], mm["O"]

        # The graph's scores decide the class exactly when the model's output is one increasing affine map of them
        # (the same positive scale and offset for every class, nothing else after the last layer).
        self.scores_decide = (not chain and len(set(S.tolist())) == 1 and len(set(O.tolist())) == 1
                              and S[0] > 0)
        if not self.scores_decide:
            log.info("%s: the last layer's per-class scale, bias or activation is not part of the integer "
                        "graph: use ImportResult.run/predict for the model's outputs", self.label)

        def output_fn(score, c, _chain=chain):
            v = S[c] * score + O[c]
            for op in _chain:
                v = op(v, c)
            return v

        first = self.nodes[0]
        in_act = self.input_act
        input_shape = None if isinstance(first, MatMulThreshold) and not self._input_is_image() else self._in_phys()
        try:
            graph = IntegerGraph(self._input_dtype(), tuple(self.nodes), input_shape)
        except (ValueError, TypeError) as e:
            raise LowbitError(f"{self.label}: the imported graph is invalid: {e}") from None
        start = self.env[self.input_name]
        codes, tensor, idx = in_act if in_act is not None else (start, None, start.idx)
        return ImportResult(graph, self.label, self.model, idx, codes.scale, codes.offset, tensor, output_fn,
                            self.origins, self.layer_scales, self.scores_decide)

    def _input_is_image(self):
        return len(self.env[self.input_name].phys) == 3

    def _in_phys(self):
        return self.env[self.input_name].phys

    def _input_dtype(self):
        if self.input_act is not None:
            return self.input_act[0].dtype
        return self.env[self.input_name].dtype


def _copy(act: _Act) -> _Act:
    return _Act(act.kind, act.idx, act.phys, act.origin, act.dtype, act.scale, act.offset, act.mm, list(act.chain),
                list(act.pools), act.tensor)


def _stored(w: np.ndarray, dtype: DataType) -> np.ndarray:
    """Weight values to the graph's storage (bits for BIPOLAR)."""
    return ((w + 1) // 2).astype(np.uint8) if dtype.kind is Kind.BIPOLAR else w.astype(np.int64)


def _weight_dtype(codes: np.ndarray) -> DataType:
    u = set(np.unique(codes).tolist())
    if u <= {-1, 1}:
        return BIPOLAR
    if u <= {-1, 0, 1}:
        return TERNARY
    a = np.abs(codes[codes != 0])
    if a.size and ((a & (a - 1)) == 0).all() and len(u) > 3:
        j = int(a.max()).bit_length() - 1
        for b in range(3, 7):
            if DataType.pow2(b).max_exponent >= j:
                return DataType.pow2(b)
    lo, hi = int(codes.min()), int(codes.max())
    return DataType.for_range(min(lo, -1), max(hi, 1))


def _detect_codes(w: np.ndarray, out_axis: int):
    """Float weights that are exact multiples of one scale per output channel: (codes, scale) or (None, None)."""
    if (w == np.round(w)).all() and np.abs(w).max(initial=0) < 2 ** 24:
        return w.astype(np.int64), np.ones(w.shape)
    moved = np.moveaxis(w, out_axis, 0).reshape(w.shape[out_axis], -1)
    codes = np.zeros(moved.shape, dtype=np.int64)
    scales = np.ones(moved.shape[0])
    for r, row in enumerate(moved):
        nz = np.abs(row[row != 0])
        if nz.size == 0:
            continue
        a = nz.min()
        q = row / a
        if not (q == np.round(q)).all() or np.abs(q).max() > 2 ** 15:
            return None, None
        codes[r], scales[r] = np.round(q).astype(np.int64), a
    shape = (w.shape[out_axis],) + tuple(np.delete(np.array(w.shape), out_axis))
    codes = np.moveaxis(codes.reshape(shape), 0, out_axis)
    scale = np.moveaxis(np.broadcast_to(scales.reshape((-1,) + (1,) * (w.ndim - 1)), shape), 0, out_axis)
    return codes, np.asarray(scale, dtype=np.float64)


def import_onnx(source, *, input_dtype: DataType | None = None) -> ImportResult:
    """Import an ONNX, QONNX or QDQ model (path, bytes or ``ModelProto``) into the typed integer graph.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        The model.
    input_dtype : DataType, optional
        Data type of a float input that no quantizer follows (for example ``UINT8`` pixels given
        as floats). Integer inputs, FINN ``finn_datatype`` annotations and input quantizers set it
        otherwise.

    Raises
    ------
    LowbitError
        For any model lowbit cannot import; the message names the file, node and op type.
    """
    model, label = load_model(source)
    model = _check(model, label)
    imp = _Importer(model, label, input_dtype)
    result = imp.run()
    log.info("imported %s: %d nodes", label, len(result.graph.nodes))
    return result


def graphs_equal(a: IntegerGraph, b: IntegerGraph) -> bool:
    """True when two graphs have the same nodes, parameters, arrays and types."""
    if a.input_dtype != b.input_dtype or a.input_shape != b.input_shape or len(a.nodes) != len(b.nodes):
        return False
    for x, y in zip(a.nodes, b.nodes):
        if type(x) is not type(y) or x.name != y.name or x._meta() != y._meta():
            return False
        if isinstance(x, MatMulThreshold):
            if not np.array_equal(x.weights, y.weights):
                return False
            if (x.thresholds is None) != (y.thresholds is None):
                return False
            if x.thresholds is not None and not np.array_equal(x.thresholds, y.thresholds):
                return False
    return True


# MAC kinds: XNOR-popcount (bipolar x bipolar), ternary (add/subtract/skip: ternary weights, or bipolar weights on
# integer inputs), shift (power-of-two weights), integer (multiplications).
_KIND = {Kind.BIPOLAR: "ternary", Kind.TERNARY: "ternary", Kind.POW2: "shift", Kind.INT: "integer"}


def layer_table(graph: IntegerGraph, origins: dict | None = None) -> list[dict]:
    """Per-layer rows: op, shapes, data types, parameters, memory bits, MACs by kind and bit-operations."""
    rows = []
    dtype = graph.input_dtype
    for i, n in enumerate(graph.nodes):
        ishape, oshape = graph.input_shape_of(i), graph.output_shape(i)
        row = {"name": n.name, "op": type(n).__name__, "from": ", ".join((origins or {}).get(n.name, [])),
               "input_shape": list(ishape), "output_shape": list(oshape), "input": dtype.name, "weights": "",
               "output": "", "params": 0, "memory_bits": 0, "macs": {"xnor": 0, "ternary": 0, "shift": 0,
                                                                     "integer": 0}, "bops": 0}
        if isinstance(n, MatMulThreshold):
            pixels = math.prod(oshape[:-1]) if len(oshape) > 1 else 1
            macs = n.mh * n.mw * pixels
            kind = "xnor" if n.xnor else _KIND[n.weight_dtype.kind]
            lo, hi = n.acc_range
            acc_bits = DataType.for_range(lo, hi + 1).bits
            tbits = 0 if n.thresholds is None else n.thresholds.size * acc_bits
            row.update(weights=n.weight_dtype.name, output=n.output_dtype.name,
                       params=int(n.weights.size + (0 if n.thresholds is None else n.thresholds.size)),
                       memory_bits=int(n.weights.size * n.weight_dtype.bits + tbits),
                       bops=int(macs * n.weight_dtype.bits * n.input_dtype.bits))
            row["macs"][kind] = int(macs)
            dtype = n.output_dtype
        else:
            _, dtype = n.infer(ishape, dtype)
            row["output"] = dtype.name
        rows.append(row)
    return rows
