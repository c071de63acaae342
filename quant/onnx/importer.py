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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from ... import LowbitError
from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ...ir.graph import IntegerGraph, MatMulThreshold, MaxPool
from ..streamline import (Affine, BipolarQuantizer, IntQuantizer, SignQuantizer, ThresholdQuantizer, fraction_array,
                          solve_thresholds)
from . import ops as onnx_ops
from .ops import OPS, OpSpec
from .states import Act, Codes, Layer, Pending, QConst, Raw, detect_codes, image_idx, stored, weight_dtype

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


def _nearest(op: str, table: Mapping[str, OpSpec]) -> str:
    if op in _HINTS:
        return _HINTS[op]
    close = difflib.get_close_matches(op, sorted(table), n=1, cutoff=0.5)
    return close[0] if close else "a chain of Conv/Gemm/MatMul, batch-norm, activations and quantizers"


def _check(model: onnx.ModelProto, label: str, table: Mapping[str, OpSpec] = OPS) -> onnx.ModelProto:
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
        if node.op_type not in table:
            raise LowbitError(f"{label}: node {name!r} ({node.op_type}): operator {node.op_type!r} is not "
                              f"supported; nearest supported form: {_nearest(node.op_type, table)}")
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
    table: Mapping[str, OpSpec] = field(default_factory=lambda: OPS)
    """The op table the model was imported with (:func:`encode` runs the model's input part)."""

    def encode(self, x) -> np.ndarray:
        x = np.asarray(x)
        if self.input_tensor is not None:
            v = onnx_ops.run(self.model, x.astype(np.float32), stop_at=self.input_tensor,
                             table=self.table)[self.input_tensor]
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
    def __init__(self, model: onnx.ModelProto, label: str, input_dtype: DataType | None, table=OPS):
        self.model, self.label = model, label
        self.ops = table
        self.opset = _opset(model)
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
            self.env[inp.name] = Codes(idx, phys, f"input {inp.name!r}", dtype,
                                       fraction_array(np.ones(c)), fraction_array(np.zeros(c)))
        else:
            self.env[inp.name] = Raw(idx, phys, f"input {inp.name!r}")
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
                return self.ops[node.op_type].nhwc or a.get("data_layout") == "NHWC"
        return False

    def _input_layout(self, shape, nhwc=False):
        if len(shape) == 3:
            if nhwc:
                h, w, c = shape
                return image_idx(c, h, w, nchw=False), (h, w, c)
            c, h, w = shape
            return image_idx(c, h, w), (h, w, c)
        if len(shape) == 1:
            return np.arange(shape[0]), (shape[0],)
        n = int(np.prod(shape))
        return np.arange(n).reshape(shape), (n,)

    def err(self, node, msg) -> LowbitError:
        return LowbitError(f"{self.label}: node {node.name!r} ({node.op_type}): {msg}")

    # constants -------------------------------------------------------------------------------
    def const(self, node, name, what="operand"):
        v = self.env.get(name)
        if isinstance(v, Act):
            raise self.err(node, f"{what} {name!r} must be a constant (an initializer), not an activation")
        return v

    def fconst(self, node, name, what="operand") -> np.ndarray:
        v = self.const(node, name, what)
        if isinstance(v, QConst):
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
    def per_channel(self, node, act: Act, arr, what: str) -> np.ndarray:
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
            acts = [x for x in ins if isinstance(x, Act)]
            if not acts:
                self.fold_const(node, ins)
                continue
            if len(acts) > 1:
                raise self.err(node, "combines two activations (a residual or skip connection); lowbit imports "
                                     "chains: fold the branch into one path")
            try:
                out = self.ops[node.op_type].lower(self, node, ins, onnx_ops.attributes(node))
            except (ValueError, ZeroDivisionError, OverflowError) as e:
                raise self.err(node, str(e)) from None
            self.env[node.output[0]] = out  # an activation, or a constant (Shape)
        out = self.env[self.model.graph.output[0].name]
        if not isinstance(out, Act):
            raise LowbitError(f"{self.label}: the output does not depend on the input")
        return self.finish(out)

    def execute(self, node, ins) -> list:
        """The float outputs of ``node`` on the constants ``ins`` (the op table's executor)."""
        return onnx_ops.execute(node, ins, self.opset, self.ops)

    def fold_const(self, node, ins):
        a = onnx_ops.attributes(node)
        row = self.ops[node.op_type]
        if row.fold is not None and ins[0] is not None:
            self.env[node.output[0]] = row.fold(self, node, ins, a)
            return
        if row.relayout and isinstance(ins[0], QConst):
            rest = ins[1:]
            codes = self.execute(node, [ins[0].codes] + rest)[0]
            scale = self.execute(node, [np.broadcast_to(ins[0].scale, ins[0].codes.shape)] + rest)[0]
            self.env[node.output[0]] = QConst(codes, scale, ins[0].dtype)
            return
        vals = [x.value if isinstance(x, QConst) else x for x in ins]
        try:
            outs = self.execute(node, vals)
        except (ValueError, TypeError, IndexError) as e:
            raise self.err(node, f"cannot evaluate on constants: {e}") from None
        for name, v in zip(node.output, outs):
            self.env[name] = v

    # weights ---------------------------------------------------------------------------------
    def weights(self, node, name, out_axis: int):
        """Integer codes, per-output-channel scale (Fractions) and data type of a weight tensor."""
        v = self.const(node, name, "weights")
        if v is None:
            raise self.err(node, "has no weights")
        if isinstance(v, QConst):
            codes, scale, dtype = v.codes, np.asarray(v.scale, dtype=np.float64), v.dtype
        else:
            w = np.asarray(v)
            if w.dtype.kind in "iu":
                codes, scale, dtype = w.astype(np.int64), np.ones(w.shape), None
            else:
                w = w.astype(np.float64)
                if not np.isfinite(w).all():
                    raise self.err(node, f"weights {name!r} contain NaN or infinity")
                codes, scale = detect_codes(w, out_axis)
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
            dtype = weight_dtype(codes)
        if dtype.kind is Kind.BIPOLAR and not set(np.unique(codes).tolist()) <= {-1, 1}:
            dtype = weight_dtype(codes)
        return codes, row_scale, dtype

    # activations -----------------------------------------------------------------------------
    def materialize(self, node, act: Act) -> Act:
        """The activation as integer codes: emit the pending layer (thresholds) or the input quantizer."""
        if isinstance(act, Codes):
            return act
        q = act.last_quantizer()
        if q is None:
            what = "the input" if isinstance(act, Raw) else f"the output of {act.origin!r}"
            raise self.err(node, f"{what} is a float activation here; insert a quantizer (Quant, BipolarQuant, "
                                 "MultiThreshold, QuantizeLinear or Sign) before this node, or run "
                                 "'lowbit quantize' on a float model")
        quant, post = act.chain[q], act.chain[q + 1:]

        def value_of(code, c):
            v = quant.value(code, c)
            for op in post:
                v = op(v, c)
            return v

        if isinstance(act, Raw):
            return self.materialize_input(node, act, quant, value_of)
        mm = act.layer
        pre = act.chain[:q]

        def func(a, c):
            d = 2 * a - mm.weights.shape[1] if mm.xnor else a
            v = mm.scale[c] * d + mm.offset[c]
            for op in pre:
                v = op(v, c)
            return v

        def func_vec(a, c):
            d = 2 * a - mm.weights.shape[1] if mm.xnor else a
            v = float(mm.scale[c]) * d + float(mm.offset[c])
            for op in pre:
                v = op.vec(v, c)
            return v

        probe = MatMulThreshold("probe", mm.input_dtype, stored(mm.weights, mm.weight_dtype), None,
                                weight_dtype=mm.weight_dtype)
        lo, hi = probe.acc_range
        mw = mm.weights.shape[1]
        neg = (lambda a: mw - a) if mm.xnor else (lambda a: -a)
        solved = solve_thresholds(func, quant.code, value_of, act.channels, lo, hi, neg, mm.name,
                                  quant.nominal, func_vec, quant.vcode)
        w = mm.weights.copy()
        w[solved.negate] *= -1
        wdtype = mm.weight_dtype
        if not wdtype.contains(w) and wdtype.kind is Kind.INT:
            wdtype = DataType.int(wdtype.bits + 1)
            node_probe = MatMulThreshold("probe", mm.input_dtype, w, None, weight_dtype=wdtype)
            lo, hi = node_probe.acc_range
            solved = solve_thresholds(func, quant.code, value_of, act.channels, lo, hi, neg, mm.name,
                                      quant.nominal, func_vec, quant.vcode)
            w = mm.weights.copy()
            w[solved.negate] *= -1
        self.emit(MatMulThreshold(mm.name, mm.input_dtype, stored(w, wdtype), solved.thresholds,
                                  solved.dtype, wdtype), act.origin)
        self.layer_scales[mm.name] = (solved.scale, solved.offset)
        for pool in act.pools:
            self.emit(MaxPool(pool.name, pool.kernel, pool.stride), pool.name)
        return Codes(act.idx, act.phys, act.origin, solved.dtype, solved.scale, solved.offset)

    def materialize_input(self, node, act, quant, value_of) -> Act:
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
        out = Codes(act.idx, act.phys, act.origin, dtype, scale, offset)
        self.input_act = (out, act.tensor, act.idx)
        return out

    def emit(self, graph_node, origin):
        self.nodes.append(graph_node)
        self.origins.setdefault(graph_node.name, []).append(origin)

    def elementwise(self, node, act: Act, op, internal: bool = False) -> Act:
        """Apply an exact element-wise function: folded into codes (affine) or the pending chain."""
        if isinstance(act, Codes):
            if isinstance(op, Affine):
                return Codes(act.idx, act.phys, act.origin, act.dtype,
                             np.array([op.scale[c] * act.scale[c] for c in range(act.channels)], dtype=object),
                             np.array([op(act.offset[c], c) for c in range(act.channels)], dtype=object))
            act = self.identity_layer(node, act)
        out = act.then(op)
        if isinstance(act, Raw) and not internal:  # the ONNX tensor holding this value (for encode)
            out = replace(out, tensor=node.output[0])
        return out

    def identity_layer(self, node, act: Act) -> Act:
        """Re-open integer codes as a pending 1x1 identity layer so a nonlinear function can be thresholded."""
        c = act.channels
        return Pending(act.idx, act.phys, node.name, Layer(f"{node.name}_requant", act.dtype,
                                                           np.eye(c, dtype=np.int64), TERNARY, act.scale,
                                                           act.offset, False))

    def affine_from(self, node, act, scale, offset, what) -> Affine:
        s = self.per_channel(node, act, scale, what) if np.ndim(scale) else np.full(act.channels, scale)
        o = self.per_channel(node, act, offset, what) if np.ndim(offset) else np.full(act.channels, offset)
        return Affine(fraction_array(s), fraction_array(o))

    # output ----------------------------------------------------------------------------------
    def finish(self, act: Act) -> ImportResult:
        if not isinstance(act, Pending):
            raise LowbitError(f"{self.label}: the model must end in a fully connected layer (Gemm or MatMul) "
                              f"followed only by element-wise operations; it ends in {act.origin!r}")
        if len(act.phys) != 1 or act.pools:
            raise LowbitError(f"{self.label}: the model must end in class scores (a vector), not {list(act.phys)}")
        mm = act.layer
        self.emit(MatMulThreshold(mm.name, mm.input_dtype, stored(mm.weights, mm.weight_dtype), None,
                                  weight_dtype=mm.weight_dtype), act.origin)
        chain = list(act.chain)
        S, O = mm.scale, mm.offset

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
                            self.origins, self.layer_scales, self.scores_decide, self.ops)

    def _input_is_image(self):
        return len(self.env[self.input_name].phys) == 3

    def _in_phys(self):
        return self.env[self.input_name].phys

    def _input_dtype(self):
        if self.input_act is not None:
            return self.input_act[0].dtype
        return self.env[self.input_name].dtype


def import_onnx(source, *, input_dtype: DataType | None = None,
                table: Mapping[str, OpSpec] = OPS) -> ImportResult:
    """Import an ONNX, QONNX or QDQ model (path, bytes or ``ModelProto``) into the typed integer graph.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        The model.
    input_dtype : DataType, optional
        Data type of a float input that no quantizer follows (for example ``UINT8`` pixels given
        as floats). Integer inputs, FINN ``finn_datatype`` annotations and input quantizers set it
        otherwise.
    table : mapping of str to OpSpec, optional
        The operators to import (:data:`lowbit.quant.onnx.ops.OPS`, or an extension of it such as
        ``{**OPS, "MyOp": OpSpec(...)}``).

    Raises
    ------
    LowbitError
        For any model lowbit cannot import; the message names the file, node and op type.
    """
    model, label = load_model(source)
    model = _check(model, label, table)
    imp = _Importer(model, label, input_dtype, table)
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
