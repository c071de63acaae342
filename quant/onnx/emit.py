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
from ...ir.datatypes import Kind
from ...ir.graph import IntegerGraph, MatMulThreshold
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
    """True when the graph's integer scores give the model's class decision
    (``IntegerGraph.predict``); False when the last layer has a per-class bias or scale, or
    element-wise operations after it, which the graph does not hold (``outputs``/``run``/
    ``predict`` here apply them exactly)."""
    table: Mapping[str, OpSpec] = field(default_factory=lambda: OPS)
    """The op table the model was imported with (:meth:`encode` runs the model's input part)."""

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
    last = MatMulThreshold(
        mm.name,
        mm.input_dtype,
        stored(mm.weights, mm.weight_dtype),
        None,
        weight_dtype=mm.weight_dtype,
    )
    nodes = lowered.nodes + (last,)
    origins = {k: list(v) for k, v in lowered.origins.items()}
    origins.setdefault(last.name, []).append(act.origin)
    chain = list(act.chain)
    scale, offset = mm.scale, mm.offset

    # The graph's scores decide the class exactly when the model's output is one increasing affine
    # map of them (the same positive scale and offset for every class, nothing after the layer).
    scores_decide = (
        not chain
        and len(set(scale.tolist())) == 1
        and len(set(offset.tolist())) == 1
        and scale[0] > 0
    )
    if not scores_decide:
        log.info(
            "%s: the last layer's per-class scale, bias or activation is not part of the "
            "integer graph: use ImportResult.run/predict for the model's outputs",
            label,
        )

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
        graph = IntegerGraph(codes.dtype, nodes, input_shape)
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
    )
