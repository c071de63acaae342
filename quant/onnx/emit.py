"""Stage 4 of the import: assemble the integer graph and the :class:`ImportResult`.

:func:`assemble` emits the model's last layer (a matrix product without thresholds: its integer
scores are the graph's output), builds the :class:`~lowbit.ir.graph.IntegerGraph` and records how
the graph's integers relate to the ONNX tensors: the input's layout, scale and offset, and the
exact map from integer scores to the model's outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import SupportsFloat

import numpy as np
import onnx

from ... import LowbitError
from ...ir.boundary import ClassMap, InputQuant
from ...ir.datatypes import Kind
from ...ir.graph import IntegerGraph, MatMulThreshold
from ..streamline import (
    Affine,
    BipolarQuantizer,
    Clip,
    IntQuantizer,
    Relu,
    SignQuantizer,
    ThresholdQuantizer,
    TruncQuantizer,
)
from . import ops as onnx_ops
from .lower import Lowered
from .ops import OPS, OpSpec
from .states import Codes, Pending, stored

__all__ = ["ImportResult", "assemble"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ImportResult:
    """An imported model: the integer graph and how its integers relate to the ONNX tensors.

    ``encode(x)`` turns ONNX inputs (logical layout, float or integer) into the graph's input codes;
    ``outputs(scores)`` turns the graph's integer scores into the ONNX model's output values
    (exactly, then as float64); ``predict(x)`` is the class decision of the imported model.
    """

    graph: IntegerGraph
    source: str
    model: onnx.ModelProto
    input_idx: np.ndarray
    input_scale: np.ndarray
    input_offset: np.ndarray
    input_tensor: str | None
    output_fn: Callable[[int, int], SupportsFloat]
    origins: dict
    layer_scales: dict = field(default_factory=dict)
    scores_decide: bool = True
    """True when the raw integer scores alone give the model's class decision; False when the
    graph's last node needs its class map (a per-class scale or bias, a TensorNorm, ...). Either
    way ``IntegerGraph.predict`` (and the hardware's label select) decides as the model does on
    every input whose top-2 is not tied."""
    table: Mapping[str, OpSpec] = field(default_factory=lambda: OPS)
    """The op table the model was imported with (:meth:`encode` runs the model's input part)."""
    quantize_input: bool = False
    """The input quantizer was given at import (``input_quant``), not part of the model:
    :meth:`encode` rounds float inputs with the graph's own quantizer."""

    def encode(self, x) -> np.ndarray:
        """The graph's input codes for ONNX inputs ``x`` (each a value of the input quantizer)."""
        x = np.asarray(x)
        if self.input_tensor is not None:
            v = onnx_ops.run(
                self.model, x.astype(np.float32), stop_at=self.input_tensor, table=self.table
            )[self.input_tensor]
        else:
            v = x.astype(np.float64)
        b = v.shape[0]
        flat = np.empty((b, self.input_idx.size))
        flat[:, self.input_idx.reshape(-1)] = v.reshape(b, -1)
        if self.quantize_input and self.graph.input_quant is not None:
            return self.graph.encode(flat)
        c = self.input_scale.shape[0]
        s = np.array([float(t) for t in self.input_scale])
        o = np.array([float(t) for t in self.input_offset])
        vals = (flat.reshape(b, -1, c) - o) / s
        q = np.round(vals)
        if not np.array_equal(q, vals):
            bad = tuple(np.argwhere(q != vals)[0])
            value = flat.reshape(b, -1, c)[bad]
            raise LowbitError(
                f"{self.source}: input element {bad} is {value!r}, not a value of "
                f"the input quantizer ({self.graph.input_dtype})"
            )
        q = q.astype(np.int64).reshape(b, -1)
        if self.graph.input_dtype.kind is Kind.BIPOLAR:
            q = (q + 1) // 2
        return q.reshape((b,) + self.graph.input_shape_of(0))

    def outputs(self, scores: np.ndarray) -> np.ndarray:
        """The model's outputs for the graph's integer ``scores`` ``(B, classes)``."""
        scores = np.asarray(scores)
        out = np.empty(scores.shape, dtype=np.float64)
        for (i, c), s in np.ndenumerate(scores):
            out[i, c] = float(self.output_fn(int(s), c))
        return out

    def run(self, x) -> np.ndarray:
        """The ONNX model's output for inputs ``x`` computed through the integer graph."""
        return self.outputs(self.graph.scores(self.encode(x)))

    def predict(self, x) -> np.ndarray:
        """The class decision of the imported model for inputs ``x``."""
        return np.argmax(self.run(x), axis=-1).astype(np.int64)


def assemble(lowered: Lowered) -> ImportResult:
    """The integer graph of a lowered model, ending in its last layer's integer scores.

    Raises
    ------
    LowbitError
        When the model does not end in a fully connected layer with a vector output, or the graph
        is invalid.
    """
    src, act = lowered.source, lowered.output
    label = src.label
    if not isinstance(act, Pending):
        raise LowbitError(
            f"{label}: the model must end in a fully connected layer (Gemm or "
            "MatMul) followed only by element-wise operations; it ends in "
            f"{act.origin!r}"
        )
    if len(act.phys) != 1 or act.pools:
        raise LowbitError(
            f"{label}: the model must end in class scores (a vector), not {list(act.phys)}"
        )
    mm = act.layer
    if mm.node:
        raise LowbitError(
            f"{label}: the model must end in a fully connected layer (Gemm or MatMul) giving the "
            f"class scores; it ends in {act.origin!r}"
        )
    origins = {k: list(v) for k, v in lowered.origins.items()}
    origins.setdefault(mm.name, []).append(act.origin)
    chain = list(act.chain)
    scale, offset = mm.scale, mm.offset
    class_map, scores_decide = _class_map(label, mm.name, scale, offset, chain)
    last = MatMulThreshold(
        mm.name,
        mm.input_dtype,
        stored(mm.weights, mm.weight_dtype),
        None,
        weight_dtype=mm.weight_dtype,
        class_map=class_map,
    )
    nodes = lowered.nodes + (last,)
    inputs = tuple(lowered.inputs.get(n.name, ("",)) for n in lowered.nodes) + ((act.src,),)

    def output_fn(score, c, _chain=chain):
        v = scale[c] * score + offset[c]
        for op in _chain:
            v = op(v, c)
        return v

    start = src.input
    image = len(start.phys) == 3
    input_shape = None if isinstance(nodes[0], MatMulThreshold) and not image else start.phys
    codes = lowered.input
    if not isinstance(codes, Codes):  # not reached: the last layer's input was quantized
        raise LowbitError(f"{label}: no quantizer reads the model input")
    try:
        graph = IntegerGraph(
            codes.dtype, nodes, input_shape, _input_quant(codes, lowered.input_chain), inputs
        )
    except (ValueError, TypeError) as e:
        raise LowbitError(f"{label}: the imported graph is invalid: {e}") from None
    return ImportResult(
        graph,
        label,
        src.model,
        lowered.input_idx,
        codes.scale,
        codes.offset,
        lowered.input_tensor,
        output_fn,
        origins,
        dict(lowered.layer_scales),
        scores_decide,
        lowered.table,
        lowered.input_tensor is None and bool(lowered.input_chain),
    )


def _uniform(op) -> bool:
    """True when the element-wise function ``op`` is the same non-decreasing function for every
    channel (then it can merge class scores into ties but never reorder them)."""
    if isinstance(op, (Relu, SignQuantizer)):
        return True
    if isinstance(op, Clip):
        return op.lo is None or op.hi is None or op.lo <= op.hi
    if isinstance(op, Affine):
        return len(set(op.scale.tolist())) == 1 and len(set(op.offset.tolist())) == 1 and (
            op.scale[0] > 0
        )
    if isinstance(op, IntQuantizer):
        return (
            len(set(np.asarray(op.scale).tolist())) == 1
            and len(set(np.asarray(op.zero_point).tolist())) == 1
            and (not op.dequantize or op.scale[0] > 0)
        )
    if isinstance(op, BipolarQuantizer):
        return len(set(np.asarray(op.scale).tolist())) == 1 and op.scale[0] > 0
    if isinstance(op, ThresholdQuantizer):
        rows = {tuple(r) for r in op.thresholds.tolist()}
        return len(rows) == 1 and op.out_scale > 0
    if isinstance(op, TruncQuantizer):
        return all(
            len(set(np.asarray(v).tolist())) == 1 for v in (op.scale, op.zero_point, op.out_scale)
        ) and (op.out_scale[0] > 0)
    return False


def _class_map(label: str, name: str, scale, offset, chain) -> tuple[ClassMap | None, bool]:
    """The exact class map of the model's tail after the last layer ``name``: the per-class
    affine map ``scale[c] * s + offset[c]`` composed with the leading affine functions of
    ``chain``; what follows them must be the same non-decreasing function for every class (a
    Relu, a per-tensor quantizer, an increasing per-tensor affine map), which only merges scores
    into ties. Returns the map (``None`` when the raw scores decide) and whether the raw scores
    decide."""
    s = [scale[c] for c in range(len(scale))]
    o = [offset[c] for c in range(len(offset))]
    rest = list(chain)
    while rest and isinstance(rest[0], Affine):
        op = rest.pop(0)
        s = [op.scale[c] * s[c] for c in range(len(s))]
        o = [op(o[c], c) for c in range(len(o))]
    for op in rest:
        if not _uniform(op):
            raise LowbitError(
                f"{label}: after the last layer {name!r}, a per-class {type(op).__name__} "
                "follows a non-linear function; lowbit folds the model's tail into the label "
                "select exactly only as per-class affine maps followed by per-tensor "
                "non-decreasing functions"
            )
    try:
        cmap = ClassMap.from_fractions(s, o)
    except ValueError as e:
        raise LowbitError(f"{label}: the tail after the last layer {name!r}: {e}") from None
    return cmap, cmap is None and not rest


def _one(v: tuple) -> tuple:
    """A per-channel tuple of equal values as one value (a per-tensor parameter)."""
    return v[:1] if len(set(v)) == 1 else v


def _input_quant(codes: Codes, chain: tuple) -> InputQuant | None:
    """The graph's input quantizer when the model input goes straight into one quantizer that
    :class:`~lowbit.ir.boundary.InputQuant` describes; else ``None`` (``ImportResult.encode``
    still runs the model's own input part)."""
    if len(chain) != 1:
        return None
    q = chain[0]
    c = codes.channels
    if isinstance(q, BipolarQuantizer):
        sc = np.broadcast_to(np.asarray(q.scale, dtype=object), (c,))
        if any(v <= 0 for v in sc):
            return None
        return InputQuant(codes.dtype, _one(tuple(float(v) for v in sc)), (0.0,))
    if isinstance(q, IntQuantizer) and q.dequantize:
        sc = np.broadcast_to(np.asarray(q.scale, dtype=object), (c,))
        zp = np.broadcast_to(np.asarray(q.zero_point, dtype=object), (c,))
        fs = tuple(float(v) for v in sc)
        fz = tuple(float(v) for v in zp)
        if any(np.float32(v) != v for v in fs + fz):  # not float32 values: not a model's scale
            return None
        narrow = codes.dtype.signed and q.lo == codes.dtype.min + 1
        if (q.lo, q.hi) != (codes.dtype.min + narrow, codes.dtype.max):
            return None
        try:
            return InputQuant(codes.dtype, _one(fs), _one(fz), q.rounding.upper(), narrow)
        except ValueError:
            return None
    return None
