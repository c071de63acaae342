"""Stage 2 of the import: walk the nodes of a checked model into a chain of graph nodes.

The model has one input and one output; an activation read by two nodes is a fork (its codes
solved there, :meth:`Lowering.fork`) and a node reading two activations a join (``Add``,
``Concat``: the op table's ``joins``). Nodes are visited in order; each tensor is a constant (a
NumPy array), a quantized constant (:class:`~.states.QConst`) or the activation, in one of three
states (:mod:`.states`):

* :class:`~.states.Raw`: the float input before its quantizer (the graph input becomes that
  quantizer's codes);
* :class:`~.states.Codes`: integer codes produced by the graph so far, with per-channel value
  ``scale * values(code) + offset``;
* :class:`~.states.Pending`: the dot product of a matrix product not yet emitted, followed by a
  chain of exact element-wise functions (:mod:`lowbit.quant.streamline`), folded into integer
  thresholds (:mod:`.solve`) when the next consumer needs codes.

A node without an activation operand is folded on constants (its row's ``fold`` for weight
quantizers, its executor otherwise); a node with one goes to its row's handler (:mod:`.handlers`).
The result is a :class:`Lowered` graph: the graph nodes emitted so far with the inputs of each
(every activation knows the graph node it is or reads, ``Act.src``) and the final activation,
which :mod:`.emit` turns into the last layer and the :class:`~.emit.ImportResult`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from onnx import numpy_helper

from ... import LowbitError
from ...ir.datatypes import BIPOLAR, TERNARY, DataType, Kind
from ...ir.graph import (
    Add,
    DepthwiseConv,
    GlobalAvgPool,
    MatMulThreshold,
    MaxPool,
    MaxPool1D,
    Threshold,
)
from ...limits import LIMITS, check
from ...sw_reference import simplest_join
from ..streamline import Affine, fraction_array
from . import ops as onnx_ops
from .ops import OPS, OpSpec
from .read import Source, finn_dtype, node_error
from .solve import solve_input, solve_layer
from .states import Act, Codes, Layer, Pending, QConst, Raw, detect_codes, weight_dtype

__all__ = ["Lowered", "Lowering", "lower"]

log = logging.getLogger(__name__)

_USER_ERRORS = (ValueError, ZeroDivisionError, OverflowError)
"""What a handler raises for a model it cannot lower (the lowering names the node)."""


@dataclass(frozen=True, eq=False)
class Lowered:
    """A model walked into graph nodes, up to its last layer.

    Parameters
    ----------
    source : Source
        The checked model.
    nodes : tuple
        The graph nodes emitted, in order.
    origins : mapping of str to tuple of str
        For each graph node, the ONNX nodes it comes from.
    layer_scales : mapping of str to (numpy.ndarray, numpy.ndarray)
        For each thresholding layer, the exact scale and offset of its output codes.
    output : Act
        The model's output activation (a pending last layer when the model can be imported).
    input : Codes or Raw
        The graph's input codes (the input quantizer's, or the integer input's); the model's
        :class:`~.states.Raw` input when no quantizer reads it (:func:`~.emit.assemble` refuses
        such a model).
    input_tensor : str or None
        The ONNX tensor holding the quantized input (``None``: the model input itself).
    input_idx : numpy.ndarray
        Layout of ``input_tensor``: the physical position of every element.
    table : mapping of str to OpSpec
        The op table the walk used.
    input_chain : tuple
        The element-wise functions from the model input to its quantizer (the quantizer last);
        empty when the input is integer codes already.
    inputs : mapping of str to tuple of str
        For each graph node, the graph nodes it reads (``""``: the graph input).
    """

    source: Source
    nodes: tuple
    origins: Mapping[str, tuple[str, ...]]
    layer_scales: Mapping[str, tuple[np.ndarray, np.ndarray]]
    output: Act
    input: Codes | Raw
    input_tensor: str | None
    input_idx: np.ndarray
    table: Mapping[str, OpSpec]
    input_chain: tuple = ()
    inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Lowering:
    """The state of the walk, and what the handlers use: constants, per-channel constants, weights,
    integer codes of the activation, element-wise functions and graph nodes.

    Parameters
    ----------
    source : Source
        The checked model.
    table : mapping of str to OpSpec
        The op table whose handlers and executors the walk uses.
    native : bool
        Emit ``DepthwiseConv`` for a convolution with ``group == channels``, ``GlobalAvgPool``
        for a global ``AveragePool`` and ``Threshold`` for a requantizer of integer codes (a
        shortcut's own quantizer) (else their chain forms: a block-diagonal ``MatMulThreshold``,
        a window and a ``MatMulThreshold`` summing it, a 1x1 identity ``MatMulThreshold``).
    """

    def __init__(self, source: Source, table: Mapping[str, OpSpec] = OPS, native: bool = False):
        self.source = source
        self.model, self.label, self.ops = source.model, source.label, table
        self.nodes: list = []
        self.layer_scales: dict = {}
        self.origins: dict[str, list[str]] = {}
        self.env: dict[str, object] = {
            t.name: numpy_helper.to_array(t) for t in source.model.graph.initializer
        }
        self.env[source.input_name] = source.input
        self.producers = {o: n for n in source.model.graph.node for o in n.output if o}
        self.input_act: tuple[Codes, str | None, np.ndarray] | None = None
        self.input_chain: tuple = ()
        self.last_solved: Codes | None = None  # the codes of the layer emitted last
        self.native = native
        self.tail = ""  # the graph node the next emitted node reads ("": the graph input)
        self.inputs: dict[str, tuple[str, ...]] = {}
        graph = source.model.graph
        self.uses = Counter(
            name
            for n in graph.node
            if not (n.op_type in table and table[n.op_type].shape_only)
            for name in n.input
        )
        self.uses.update(o.name for o in graph.output)

    def err(self, node, msg) -> LowbitError:
        """The error for ``node``: names the file, the node and its op type."""
        return node_error(self.label, node.name, node.op_type, msg)

    def limit(self, node, quantity: str, value: int, limit: int) -> None:
        """Refuse ``value`` of ``quantity`` at ``node`` above ``limit`` (one of
        :data:`~lowbit.limits.LIMITS`), before the work or allocation it sizes."""
        check(f"{self.label}: node {node.name!r} ({node.op_type})", quantity, value, limit)

    # the walk -----------------------------------------------------------------------------------
    def walk(self) -> Lowered:
        """Lower every node in order; the chain up to the model's output."""
        for i, node in enumerate(self.model.graph.node):
            if not node.name:
                node.name = f"{node.op_type}_{i}"
            ins = [self.env.get(n) if n else None for n in node.input]
            acts = [x for x in ins if isinstance(x, Act)]
            if not acts:
                self.fold(node, ins)
                continue
            row = self.ops[node.op_type]
            if len(acts) > 1 and not row.joins:
                raise self.err(
                    node,
                    "combines two activations; lowbit joins branches with Add and Concat only",
                )
            self.tail = acts[0].src
            try:
                out = row.lower(self, node, ins, onnx_ops.attributes(node))
            except _USER_ERRORS as e:
                raise self.err(node, str(e)) from None
            if isinstance(out, Act):
                out = replace(out, src=self.tail)
                if self.uses[node.output[0]] > 1:
                    out = self.fork(node, out)
            self.env[node.output[0]] = out  # an activation, or a constant (Shape)
        out = self.env[self.model.graph.output[0].name]
        if not isinstance(out, Act):
            raise LowbitError(f"{self.label}: the output does not depend on the input")
        start = self.env[self.source.input_name]
        codes: Codes | Raw
        if self.input_act is not None:
            codes, tensor, idx = self.input_act
        elif isinstance(start, (Codes, Raw)):
            codes, tensor, idx = start, None, start.idx
        else:
            raise LowbitError(
                f"{self.label}: a node overwrites the model input {self.source.input_name!r}"
            )
        return Lowered(
            self.source,
            tuple(self.nodes),
            {k: tuple(v) for k, v in self.origins.items()},
            dict(self.layer_scales),
            out,
            codes,
            tensor,
            idx,
            self.ops,
            self.input_chain,
            dict(self.inputs),
        )

    def fork(self, node, act: Act) -> Act:
        """An activation that two or more nodes read: its codes, solved once here, so that no
        branch emits the pending layer again. A float activation (no quantizer yet) is refused."""
        if isinstance(act, Codes):
            return act
        if not isinstance(act, (Raw, Pending)) or act.last_quantizer() is None:
            raise self.err(
                node,
                "its output is read by two or more nodes but is not quantized; lowbit forks "
                "quantized activations (insert a quantizer before the fork)",
            )
        return self.codes(node, act)

    def join_codes(self, node, acts) -> list[Codes]:
        """The codes of each of the activations a join reads, each solved on its own branch."""
        out = []
        for act in acts:
            self.tail = act.src
            out.append(self.codes(node, act))
        return out

    def execute(self, node, ins) -> list:
        """The float outputs of ``node`` on the constants ``ins`` (the op table's executor)."""
        return onnx_ops.execute(node, ins, self.source.opset, self.ops)

    def fold(self, node, ins):
        """Evaluate a node whose operands are all constants."""
        a = onnx_ops.attributes(node)
        row = self.ops[node.op_type]
        if row.fold is not None and ins[0] is not None:
            try:
                self.env[node.output[0]] = row.fold(self, node, ins, a)
            except _USER_ERRORS as e:
                raise self.err(node, str(e)) from None
            return
        if row.relayout and isinstance(ins[0], QConst):
            rest = ins[1:]
            codes = self.execute(node, [ins[0].codes] + rest)[0]
            scales = np.broadcast_to(ins[0].scale, ins[0].codes.shape)
            scale = self.execute(node, [scales] + rest)[0]
            self.env[node.output[0]] = QConst(codes, scale, ins[0].dtype)
            return
        vals = [x.value if isinstance(x, QConst) else x for x in ins]
        try:
            outs = self.execute(node, vals)
        except (ValueError, TypeError, IndexError) as e:
            raise self.err(node, f"cannot evaluate on constants: {e}") from None
        for name, v in zip(node.output, outs):
            self.env[name] = v

    # constants ----------------------------------------------------------------------------------
    def const(self, node, name, what="operand"):
        """The constant (array or :class:`~.states.QConst`) ``name``; the activation is an error."""
        v = self.env.get(name)
        if isinstance(v, Act):
            raise self.err(
                node, f"{what} {name!r} must be a constant (an initializer), not an activation"
            )
        return v

    def fconst(self, node, name, what="operand") -> np.ndarray:
        """The constant ``name`` as finite float64 values."""
        v = self.const(node, name, what)
        if isinstance(v, QConst):
            v = v.value
        v = np.asarray(v, dtype=np.float64)
        if not np.isfinite(v).all():
            raise self.err(node, f"{what} {name!r} contains NaN or infinity")
        return v

    def scalar(self, node, name, what) -> float:
        """The constant ``name`` as one float."""
        v = self.fconst(node, name, what)
        if v.size != 1:
            raise self.err(node, f"{what} must be a scalar, not shape {v.shape}")
        return float(v.reshape(-1)[0])

    def per_channel(self, node, act: Act, arr, what: str) -> np.ndarray:
        """A constant broadcast over the activation's logical shape, as one value per physical
        channel (it must not vary over the pixels of a channel)."""
        arr = np.asarray(arr)
        full_shape = (1,) + act.idx.shape
        try:
            b = np.broadcast_to(arr, np.broadcast_shapes(arr.shape, full_shape))
        except ValueError:
            raise self.err(
                node,
                f"{what} of shape {arr.shape} does not broadcast to the "
                f"activation {list(full_shape)}",
            ) from None
        if b.shape != full_shape:
            raise self.err(
                node,
                f"{what} of shape {arr.shape} would change the activation shape {list(full_shape)}",
            )
        flat = np.empty(act.idx.size, dtype=b.dtype)
        flat[act.idx.reshape(-1)] = b.reshape(-1)
        cols = flat.reshape(-1, act.channels)
        if not (cols == cols[:1]).all():
            raise self.err(
                node,
                f"{what} varies over the pixels of a channel; lowbit folds "
                "per-channel or per-tensor constants only",
            )
        return cols[0]

    def affine_from(self, node, act, scale, offset, what) -> Affine:
        """The exact affine map ``scale * x + offset`` of per-channel or per-tensor constants."""
        s = (
            self.per_channel(node, act, scale, what)
            if np.ndim(scale)
            else np.full(act.channels, scale)
        )
        o = (
            self.per_channel(node, act, offset, what)
            if np.ndim(offset)
            else np.full(act.channels, offset)
        )
        return Affine(fraction_array(s), fraction_array(o))

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
                    raise self.err(
                        node,
                        f"weights {name!r} are float values that are not "
                        "quantized; quantize them (Quant, BipolarQuant or "
                        "DequantizeLinear) or run 'lowbit quantize'",
                    )
                dtype = None
        meta = self.source.meta.get(f"lowbit.dtype.{name}")
        if meta:
            dtype = DataType.parse(meta)
        elif name in self.source.annotations and dtype is None:
            dtype = finn_dtype(self.label, self.source.annotations[name], name)
        moved = np.moveaxis(scale, out_axis, 0).reshape(scale.shape[out_axis], -1)
        if not (moved == moved[:, :1]).all():
            raise self.err(
                node,
                f"weights {name!r} have a scale that varies along the input axis; "
                "lowbit folds per-tensor or per-output-channel weight scales only",
            )
        row_scale = fraction_array(moved[:, 0])
        if dtype is None:
            dtype = weight_dtype(codes)
        if dtype.kind is Kind.BIPOLAR and not set(np.unique(codes).tolist()) <= {-1, 1}:
            dtype = weight_dtype(codes)
        where = f"{self.label}: node {node.name!r} ({node.op_type}): weights {name!r}"
        q = self.producers.get(name)
        if q is not None:  # the quantizer that typed them is where the bit width was chosen
            where = (
                f"{self.label}: node {q.name!r} ({q.op_type}): weights {name!r} read by node "
                f"{node.name!r} ({node.op_type})"
            )
        check(where, f"({dtype}) bit width", dtype.bits, LIMITS.weight_bits)
        return codes, row_scale, dtype

    # the activation -----------------------------------------------------------------------------
    def codes(self, node, act: Act) -> Codes:
        """The activation as integer codes: emit the pending layer (thresholds, :mod:`.solve`) or
        take the input quantizer's codes."""
        if isinstance(act, Codes):
            return act
        if not isinstance(act, (Raw, Pending)):  # the kinds of Act
            raise TypeError(f"not an activation: {act!r}")
        if act.last_quantizer() is None:
            what = "the input" if isinstance(act, Raw) else f"the output of {act.origin!r}"
            raise self.err(
                node,
                f"{what} is a float activation here; insert a quantizer (Quant, "
                "BipolarQuant, MultiThreshold, QuantizeLinear or Sign) before "
                "this node, or run 'lowbit quantize' on a float model",
            )
        if isinstance(act, Raw):
            out = solve_input(act)
            self.input_act = (out, act.tensor, act.idx)
            self.input_chain = act.chain[: (act.last_quantizer() or 0) + 1]
            return out
        solved = solve_layer(act)
        self.tail = act.src
        for i, (graph_node, origin) in enumerate(solved.nodes):
            if i == 0 and act.layer.node:
                graph_node, inputs = self.native_node(act, graph_node)
                self.emit(graph_node, origin, inputs)
            else:
                self.emit(graph_node, origin)
        codes = replace(solved.codes, src=self.tail)
        self.layer_scales[act.layer.name] = (codes.scale, codes.offset)
        self.last_solved = codes
        return codes

    def native_node(self, act: Pending, mm: MatMulThreshold):
        """The graph node that a pending layer of kind ``act.layer.node`` stands for, from the
        ``MatMulThreshold`` its thresholds were solved for, and its inputs (``None``: the tail).
        Thresholds outside the node's exact accumulator range are clipped into it (an accumulator
        never reaches them: the same comparisons)."""
        kind = act.layer.node
        w = mm.weight_values
        thresholds = mm.thresholds
        if thresholds is None:  # not reached: solve_layer gives thresholds
            raise ValueError(f"{mm.name!r} has no thresholds")
        if kind[0] == "add":
            _, src_a, src_b, dtype_a, dtype_b = kind
            c = w.shape[0]
            wa, wb = w[np.arange(c), np.arange(c)], w[np.arange(c), c + np.arange(c)]
            join = Add(mm.name, (dtype_a, dtype_b), wa, wb, np.zeros((1, 1), np.int64), BIPOLAR)
            lo, hi = join.acc_range
            t = np.clip(thresholds, lo, hi + 1)
            # the smallest coefficients with the same output on every pair of input values
            wa, wb, t = simplest_join(wa, wb, t, _value_set(dtype_a), _value_set(dtype_b))
            return Add(mm.name, (dtype_a, dtype_b), wa, wb, t, mm.output_dtype), (src_a, src_b)
        if kind[0] == "threshold":
            if not np.array_equal(w, np.eye(w.shape[0], dtype=w.dtype)):
                return mm, None  # a decreasing function negated the identity: keep the product
            d = mm.input_dtype
            t = np.clip(thresholds, d.min, d.max + 1)
            return Threshold(mm.name, t, d, mm.output_dtype), None
        if kind[0] == "gap":
            if (w < 0).any():
                raise ValueError("a global average pool whose output decreases is not supported")
            n = w.shape[1] // w.shape[0]
            d = mm.input_dtype
            t = np.clip(thresholds, n * d.min, n * d.max + 1)
            return GlobalAvgPool(mm.name, d, t, mm.output_dtype), None
        # depthwise: tap j of channel c is column j * C + c
        c = w.shape[0]
        taps = w.shape[1] // c
        cols = np.arange(taps)[None, :] * c + np.arange(c)[:, None]
        dw = w[np.arange(c)[:, None], cols]
        wdtype = kind[1] if kind[1].kind is Kind.BIPOLAR else mm.weight_dtype
        t = thresholds
        xnor = mm.input_dtype.kind is Kind.BIPOLAR and wdtype.kind is Kind.BIPOLAR
        if xnor:  # thresholds on the dot product d = 2 a - K*K become thresholds on the count a
            t = -((-(t + taps)) // 2)  # ceil((T + K*K) / 2)
        stored_w = ((dw + 1) // 2).astype(np.uint8) if wdtype.kind is Kind.BIPOLAR else dw
        probe = DepthwiseConv(
            mm.name, mm.input_dtype, stored_w, np.zeros((1, 1), np.int64), BIPOLAR, wdtype
        )
        lo, hi = probe.acc_range
        t = np.clip(t, lo, hi + 1)
        return DepthwiseConv(mm.name, mm.input_dtype, stored_w, t, mm.output_dtype, wdtype), None

    def with_zero(self, node, x: Codes) -> Codes | None:
        """``BIPOLAR`` codes ``x`` of the layer emitted last, re-emitted as ``UINT2`` codes
        ``{0, 2}`` (the same values, ``-s`` and ``+s``) so that code 1 stands for 0, which zero
        padding inserts: the layer's single threshold ``t`` becomes ``[t, t, hi + 1]``. ``None``
        when ``x`` is not the output of the layer emitted last (the model input, for example)."""
        if x is not self.last_solved or x.dtype.kind is not Kind.BIPOLAR:
            return None
        at = max(
            i
            for i, n in enumerate(self.nodes)
            if isinstance(n, (MatMulThreshold, DepthwiseConv, GlobalAvgPool, Add))
        )
        mm = self.nodes[at]
        if not isinstance(mm, MatMulThreshold):
            return None
        if mm.thresholds is None or mm.thresholds.shape[1] != 1:
            return None
        if not all(isinstance(n, (MaxPool, MaxPool1D)) for n in self.nodes[at + 1 :]):
            return None
        t = mm.thresholds
        hi = np.full_like(t, mm.acc_range[1] + 1)
        self.nodes[at] = replace(
            mm, thresholds=np.concatenate([t, t, hi], axis=1), output_dtype=DataType.uint(2)
        )
        c = x.channels
        offset = np.array([x.offset[i] - x.scale[i] for i in range(c)], dtype=object)
        out = Codes(x.idx, x.phys, x.origin, DataType.uint(2), x.scale, offset, src=x.src)
        for name, (sc, off) in list(self.layer_scales.items()):
            if sc is x.scale and off is x.offset:
                self.layer_scales[name] = (x.scale, offset)
        self.last_solved = out
        log.info("%s: node %r reads zero padding: %r emits UINT2 codes {0, 2} instead of "
                 "BIPOLAR bits", self.label, node.name, mm.name)
        return out

    def emit(self, graph_node, origin: str, inputs: tuple[str, ...] | None = None):
        """Append ``graph_node`` to the graph; ``origin`` names the ONNX node it comes from,
        ``inputs`` the graph nodes it reads (by default the tail: the node emitted last on this
        branch), and it becomes the tail."""
        self.nodes.append(graph_node)
        self.origins.setdefault(graph_node.name, []).append(origin)
        self.inputs[graph_node.name] = (self.tail,) if inputs is None else tuple(inputs)
        self.tail = graph_node.name

    def elementwise(self, node, act: Act, op, internal: bool = False) -> Act:
        """Apply an exact element-wise function: folded into codes (affine) or the pending chain.

        ``internal``: ``op`` is part of the node's arithmetic, not its output (the model input's
        tensor for ``ImportResult.encode`` stays the one before it)."""
        if isinstance(act, Codes):
            if isinstance(op, Affine):
                c = act.channels
                return Codes(
                    act.idx,
                    act.phys,
                    act.origin,
                    act.dtype,
                    np.array([op.scale[i] * act.scale[i] for i in range(c)], dtype=object),
                    np.array([op(act.offset[i], i) for i in range(c)], dtype=object),
                    src=act.src,
                )
            act = self.identity_layer(node, act)
        if not isinstance(act, (Raw, Pending)):  # the kinds of Act
            raise TypeError(f"not an activation: {act!r}")
        out = act.then(op)
        if isinstance(act, Raw) and not internal:  # the ONNX tensor holding this value
            out = replace(out, tensor=node.output[0])
        return out

    def identity_layer(self, node, act: Codes) -> Pending:
        """Re-open integer codes as a pending 1x1 identity layer so a nonlinear function can be
        thresholded."""
        c = act.channels
        # native: a Threshold node on the codes (no product); else a 1x1 identity product
        kind = ("threshold",) if self.native and act.dtype.kind in (Kind.UINT, Kind.INT) else ()
        layer = Layer(
            f"{node.name}_requant",
            act.dtype,
            np.eye(c, dtype=np.int64),
            TERNARY,
            act.scale,
            act.offset,
            False,
            kind,
        )
        return Pending(act.idx, act.phys, node.name, layer, src=act.src)


def _value_set(dtype: DataType) -> np.ndarray:
    """Every value codes of ``dtype`` stand for (``-1`` and ``+1`` for ``BIPOLAR``)."""
    if dtype.kind is Kind.BIPOLAR:
        return np.array([-1, 1])
    return np.arange(dtype.min, dtype.max + 1)


def lower(source: Source, table: Mapping[str, OpSpec] = OPS, native: bool = False) -> Lowered:
    """Walk the nodes of ``source`` into graph nodes with the handlers of ``table``.

    Raises
    ------
    LowbitError
        For a node lowbit cannot lower, naming the file, the node and its op type.
    """
    return Lowering(source, table, native).walk()
