"""The op table (every ONNX, QONNX and QDQ operator lowbit imports, in one place) and the executor.

:data:`OPS` holds one :class:`OpSpec` per operator: its float semantics (:mod:`.executors`), its
importer handler (:mod:`.handlers`) and what post-training quantization (:mod:`.ptq`) and constant
folding need to know about it. The importer, the model checks, the float executor and
post-training quantization all read this table and keep no list of op names of their own. Adding an
operator is one row here and one handler.

:func:`run` executes a model in float64 through the table: it is the float reference of the
importer (a float model runs here and is compared with ``onnxruntime`` within float tolerance);
post-training quantization reads activation ranges from :func:`run` with ``keep_all=True``. The
integer semantics live in :mod:`lowbit.quant.streamline` and the typed graph; this module never
decides what is exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import onnx
from onnx import numpy_helper

from ... import LowbitError
from ..streamline import round_mode
from . import executors as ex
from . import handlers as hd
from .executors import Executor, Reference, attributes, per_axis, qonnx_int_range, quant_float

__all__ = [
    "OpSpec",
    "Schema",
    "check_node",
    "OPS",
    "SUPPORTED_OPS",
    "QONNX_DOMAIN",
    "attributes",
    "round_mode",
    "run",
    "execute",
    "per_axis",
    "quant_float",
    "qonnx_int_range",
]

log = logging.getLogger(__name__)

QONNX_DOMAIN = "qonnx.custom_op.general"
"""The domain of the QONNX (and FINN) custom operators."""

Handler = Callable[..., object]
"""An importer handler: ``(lowering, node, ins, attrs) -> output`` (:mod:`.handlers`)."""

_A = onnx.AttributeProto
FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    }
)
"""The float tensor types (what a :attr:`Schema.float_inputs` operand must have)."""


@dataclass(frozen=True)
class Schema:
    """The operands, outputs and attributes a node of a custom operator must have; the operators
    of the ONNX default domain are checked against ONNX's own schema for the model's opset
    (:func:`check_node`).

    Parameters
    ----------
    inputs : (int, int)
        The fewest and the most operands; the first ``inputs[0]`` must be named (present).
    attrs : mapping of str to int
        The type (``onnx.AttributeProto.INT``, ``FLOAT``, ``STRING``, ``INTS``...) of each attribute
        the operator reads; attributes it does not read are ignored.
    required : tuple of str
        The attributes that must be given.
    float_inputs : tuple of int
        The operands that must be float tensors (the QONNX quantizers quantize floats).
    operands : str
        What the operands are, for the message refusing another count (``""``: their count).
    """

    inputs: tuple[int, int]
    attrs: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    required: tuple[str, ...] = ()
    float_inputs: tuple[int, ...] = ()
    operands: str = ""


@dataclass(frozen=True)
class OpSpec:
    """One operator lowbit imports.

    Parameters
    ----------
    domain, op_type : str
        Where the operator is defined (``""`` for the ONNX default domain) and its name. Names are
        unique across the domains lowbit reads, so the table is keyed by ``op_type``; the model
        checks accept the custom operators in any of the QONNX, FINN and Brevitas domains.
    execute : Executor
        Float semantics, ``(ins, attrs, node, opset) -> outputs`` (:mod:`.executors`).
    lower : Handler
        The importer handler for a node whose operands include the activation (:mod:`.handlers`).
    keeps_grid : bool
        A quantized input stays quantized through it: post-training quantization inserts no
        quantizer before a matrix product fed through it from a quantizer.
    quantizer : bool
        Its output is quantized (post-training quantization leaves a tensor it produces as is).
    quantize_input : bool
        Post-training quantization quantizes its activation input (matrix products and pools that
        need integer codes).
    weight_axis : callable or None
        For the matrix products: the output axis of the weights (input 1) as a function of the
        attributes; post-training quantization quantizes those weights per output channel.
    fold : callable or None
        For the weight quantizers: ``fold(lowering, node, ins, attrs)`` turns constant operands into
        a quantized constant (:class:`~.states.QConst`, codes and scales).
    relayout : bool
        It only moves elements: on a quantized constant it applies to the codes and the scales.
    nhwc : bool
        It reads NHWC images: a model input it consumes is laid out NHWC.
    reshape : bool
        It only reshapes its operand 0 (the element order kept): :func:`run` applies it to each row
        of a batch computed from the input when its other operands are constants, as a batch-1
        export applies its constant target shape (``x.view(1, -1)``) to its one row.
    joins : bool
        It may combine two or more activations (a join of a DAG: ``Add``, ``Concat``); its handler
        gets them all.
    shape_only : bool
        It reads only its operand's shape: an activation it reads is not a fork.
    schema : Schema or None
        The operands and attributes of a custom operator (:func:`check_node` checks every node
        against it before anything runs); ``None`` for the ONNX operators, checked against ONNX's
        schema.
    """

    domain: str
    op_type: str
    execute: Executor
    lower: Handler
    keeps_grid: bool = False
    quantizer: bool = False
    quantize_input: bool = False
    weight_axis: Callable[[dict], int] | None = None
    fold: Handler | None = None
    relayout: bool = False
    nhwc: bool = False
    reshape: bool = False
    schema: Schema | None = None
    joins: bool = False
    shape_only: bool = False


_ALL = Reference(f64=None)  # every input in float64, as the executor holds every float tensor
_Q = QONNX_DOMAIN
# the schemas of the custom operators (QONNX and FINN define them in prose; these are the
# operands and attributes the handlers and executors read)
_ROUNDING = {"rounding_mode": _A.STRING, "signed": _A.INT, "narrow": _A.INT}
_QUANT = Schema((4, 4), MappingProxyType(_ROUNDING), float_inputs=(0,))
_TRUNC = Schema(
    (5, 6),
    MappingProxyType(_ROUNDING),
    float_inputs=(0,),
    operands="5 (QONNX Trunc v1: x, scale, zero point, input bit width, output bit width) or 6 "
    "(v2: x, scale, zero point, input bit width, output scale, output bit width)",
)
_MULTI_THRESHOLD = Schema(
    (2, 2),
    MappingProxyType(
        {
            "out_scale": _A.FLOAT,
            "out_bias": _A.FLOAT,
            "data_layout": _A.STRING,
            "out_dtype": _A.STRING,
        }
    ),
)
_WINDOW = {"strides": _A.INTS, "pads": _A.INTS, "dilations": _A.INTS, "ceil_mode": _A.INT}
_POOL = Schema(
    (1, 1),
    MappingProxyType({"kernel_shape": _A.INTS, "auto_pad": _A.STRING, **_WINDOW}),
    ("kernel_shape",),
)
_IM2COL = Schema(
    (1, 1),
    MappingProxyType(
        {
            "kernel_size": _A.INTS,
            "stride": _A.INTS,
            "pad_amount": _A.INTS,
            "pad_value": _A.INT,
            "dilations": _A.INTS,
            "input_shape": _A.STRING,
            "depthwise": _A.INT,
        }
    ),
    ("kernel_size", "stride"),
)


def _rows(*specs: OpSpec) -> Mapping[str, OpSpec]:
    table = {}
    for s in specs:
        if s.op_type in table:
            raise ValueError(f"the op table lists {s.op_type!r} twice")
        table[s.op_type] = s
    return MappingProxyType(table)


OPS: Mapping[str, OpSpec] = _rows(
    # matrix products
    OpSpec(
        "",
        "Gemm",
        _ALL,
        hd.gemm,
        quantize_input=True,
        weight_axis=lambda a: 0 if a.get("transB", 0) else 1,
    ),
    OpSpec("", "MatMul", _ALL, hd.matmul, quantize_input=True, weight_axis=lambda a: 1),
    OpSpec("", "Conv", ex.conv, hd.conv, quantize_input=True, weight_axis=lambda a: 0),
    OpSpec(
        _Q,
        "XnorPopcountMatMul",
        ex.xnor_popcount_matmul,
        hd.xnor_popcount_matmul,
        schema=Schema((2, 2)),
    ),
    OpSpec("", "MatMulInteger", Reference(), hd.matmul_integer),
    OpSpec("", "QLinearMatMul", ex.qlinear_matmul, hd.qlinear_matmul),
    OpSpec("", "QLinearConv", ex.qlinear_conv, hd.qlinear_conv),
    OpSpec(_Q, "Im2Col", ex.im2col, hd.im2col, nhwc=True, schema=_IM2COL),
    # pools
    OpSpec("", "MaxPool", ex.max_pool, hd.max_pool, keeps_grid=True),
    OpSpec(_Q, "MaxPoolNHWC", ex.max_pool_nhwc, hd.max_pool_nhwc, nhwc=True, schema=_POOL),
    OpSpec("", "AveragePool", ex.average_pool, hd.average_pool, quantize_input=True),
    OpSpec("", "GlobalAveragePool", _ALL, hd.global_average_pool, keeps_grid=True),
    OpSpec("", "ReduceSum", Reference(f64=(0,), ints=(1,)), hd.reduce_sum),
    # element-wise
    OpSpec("", "BatchNormalization", ex.batch_normalization, hd.batch_normalization),
    OpSpec("", "Relu", _ALL, hd.relu),
    OpSpec("", "Clip", _ALL, hd.clip),
    OpSpec("", "Add", _ALL, hd.add, keeps_grid=True, joins=True),
    OpSpec("", "Sub", _ALL, hd.sub, keeps_grid=True),
    OpSpec("", "Mul", _ALL, hd.mul, keeps_grid=True),
    OpSpec("", "Div", _ALL, hd.div, keeps_grid=True),
    OpSpec("", "Identity", Reference(), hd.identity, keeps_grid=True, relayout=True),
    OpSpec("", "Dropout", Reference(), hd.identity, keeps_grid=True),
    OpSpec("", "Cast", ex.cast, hd.cast),
    OpSpec("", "GreaterOrEqual", _ALL, hd.greater_or_equal),
    # quantizers
    OpSpec(_Q, "Quant", ex.quant, hd.quant, quantizer=True, fold=hd.fold_quant, schema=_QUANT),
    # IntQuant is Quant's newer name; post-training quantization has not treated it as a quantizer
    OpSpec(_Q, "IntQuant", ex.quant, hd.quant, fold=hd.fold_quant, schema=_QUANT),
    OpSpec(
        _Q,
        "BipolarQuant",
        ex.bipolar_quant,
        hd.bipolar_quant,
        quantizer=True,
        fold=hd.fold_bipolar_quant,
        schema=Schema((2, 2), float_inputs=(0,)),
    ),
    OpSpec(_Q, "Trunc", ex.trunc, hd.trunc, schema=_TRUNC),
    OpSpec(
        _Q,
        "MultiThreshold",
        ex.multi_threshold,
        hd.multi_threshold,
        quantizer=True,
        schema=_MULTI_THRESHOLD,
    ),
    OpSpec("", "Sign", _ALL, hd.sign, quantizer=True),
    OpSpec("", "QuantizeLinear", ex.quantize_linear, hd.quantize_linear, quantizer=True),
    OpSpec(
        "",
        "DequantizeLinear",
        ex.dequantize_linear,
        hd.dequantize_linear,
        fold=hd.fold_dequantize_linear,
    ),
    # layout
    OpSpec(
        "", "Flatten", Reference(), hd.reshape_like, keeps_grid=True, relayout=True, reshape=True
    ),
    OpSpec(
        "",
        "Reshape",
        Reference(ints=(1,)),
        hd.reshape_like,
        keeps_grid=True,
        relayout=True,
        reshape=True,
    ),
    OpSpec("", "Transpose", Reference(), hd.reshape_like, keeps_grid=True, relayout=True),
    OpSpec("", "Squeeze", Reference(ints=(1,)), hd.reshape_like, relayout=True),
    OpSpec("", "Unsqueeze", Reference(ints=(1,)), hd.reshape_like, relayout=True),
    # shape arithmetic on constants
    OpSpec("", "Constant", Reference(), hd.constant),
    OpSpec("", "Shape", Reference(), hd.shape, shape_only=True),
    OpSpec("", "Gather", Reference(ints=(1,)), hd.gather),
    OpSpec("", "Concat", Reference(), hd.concat, joins=True),
)
"""The supported operators by ``op_type``."""

SUPPORTED_OPS = frozenset(OPS)
"""The names of the supported operators (the keys of :data:`OPS`)."""


_SCHEMA_TYPES = {
    getattr(onnx.defs.OpSchema.AttrType, n): _A.AttributeType.Value(n)
    for n in _A.AttributeType.keys()
    if hasattr(onnx.defs.OpSchema.AttrType, n)
}
"""ONNX's schema attribute types as ``AttributeProto`` types."""


def _onnx_schema(node: onnx.NodeProto, opset: int) -> Schema | None:
    """ONNX's schema of a default-domain ``node`` at ``opset`` as a :class:`Schema` (``None`` for
    an operator ONNX does not define)."""
    try:
        s = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    required = tuple(k for k, v in s.attributes.items() if v.required)
    attrs = MappingProxyType({k: _SCHEMA_TYPES[v.type] for k, v in s.attributes.items()})
    return Schema((s.min_input, s.max_input), attrs, required)


def check_node(
    node: onnx.NodeProto, opset: int, table: Mapping[str, OpSpec] = OPS
) -> Schema | None:
    """Check ``node``'s operands, outputs and attributes against its schema (its row's
    :attr:`OpSpec.schema` for custom operators, ONNX's for the default domain) before anything
    reads them; returns that schema (``None``: an operator with neither, left to the later checks).

    Raises
    ------
    ValueError
        Naming the operand or attribute and what was expected.
    """
    row = table.get(node.op_type)
    schema = row.schema if row is not None else None
    if schema is None and (node.domain in ("", "ai.onnx") or row is not None):
        # a row without its own schema is an ONNX operator, handled as one whatever the domain
        schema = _onnx_schema(node, opset)
    if schema is None:
        return None
    lo, hi = schema.inputs
    n = len(node.input)
    if not lo <= n <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}" if hi < 1 << 20 else f"at least {lo}"
        want = f"expected {schema.operands}" if schema.operands else f"{node.op_type} takes {want}"
        raise ValueError(f"has {n} input{'s' * (n != 1)}; {want}")
    for i in range(lo):
        if not node.input[i]:
            raise ValueError(f"input {i} is empty; {node.op_type} needs its first {lo} inputs")
    if not node.output or not node.output[0]:
        raise ValueError("has no output")
    given = set()
    for a in node.attribute:
        if a.name in given:
            raise ValueError(f"attribute {a.name!r} is given twice")
        given.add(a.name)
        if a.type not in _A.AttributeType.values() or a.type == _A.UNDEFINED:
            raise ValueError(f"attribute {a.name!r} has no valid type ({a.type})")
        want_type = schema.attrs.get(a.name)
        if want_type is not None and a.type != want_type:
            raise ValueError(
                f"attribute {a.name!r} must be {_A.AttributeType.Name(want_type)}, not "
                f"{_A.AttributeType.Name(a.type)}"
            )
    for name in schema.required:
        if name not in given:
            raise ValueError(f"attribute {name!r} is missing; {node.op_type} requires it")
    return schema


def _opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return onnx.defs.onnx_opset_version()


def execute(node: onnx.NodeProto, ins: list, opset: int, table: Mapping[str, OpSpec] = OPS) -> list:
    """The outputs of ``node`` on the NumPy inputs ``ins`` (float tensors in float64).

    Raises
    ------
    LowbitError
        When ``node`` is not in ``table``.
    """
    row = table.get(node.op_type)
    if row is None:
        raise LowbitError(f"node {node.name!r} ({node.op_type}): no float implementation")
    return row.execute(ins, attributes(node), node, opset)


def _per_row(node: onnx.NodeProto, ins: list, opset: int, table: Mapping[str, OpSpec]) -> list:
    """A reshape of the batch ``ins[0]`` ``(B, ...)`` applied to each row ``(1, ...)``: row 0's
    output ``(k, ...)`` gives the shape, and the rows, contiguous, are reshaped all at once to
    ``(B k, ...)``."""
    x = np.asarray(ins[0])
    if x.ndim == 0 or len(x) == 1:
        return execute(node, ins, opset, table)
    first = execute(node, [x[:1]] + ins[1:], opset, table)[0]
    if first.ndim == 0:
        return execute(node, ins, opset, table)
    return [x.reshape((len(x) * first.shape[0],) + first.shape[1:])]


def run(
    model: onnx.ModelProto,
    inputs,
    *,
    keep_all: bool = False,
    stop_at: str | None = None,
    table: Mapping[str, OpSpec] = OPS,
) -> dict[str, np.ndarray]:
    """Execute ``model`` on ``inputs`` (an array for the single input, or a dict by input name).

    Returns the graph outputs by name (every tensor when ``keep_all``, or when stopping early after
    computing the tensor ``stop_at``). Float tensors are float64.

    The batch axis is the first: a reshape (rows with ``reshape``) of a tensor computed from the
    inputs by constant operands applies to each row, so that a model exported with batch 1 and a
    constant target shape of batch 1 (``Reshape [1, -1]``, ``Flatten`` of axis 0) runs ``B`` rows
    as ``B`` calls on single rows would.
    """
    g = model.graph
    opset = _opset(model)
    env: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    real_inputs = [i.name for i in g.input if i.name not in env]
    if not isinstance(inputs, dict):
        if len(real_inputs) != 1:
            raise ValueError(f"the model has {len(real_inputs)} inputs; pass a dict by name")
        inputs = {real_inputs[0]: inputs}
    env.update({k: np.asarray(v) for k, v in inputs.items()})
    batched = set(inputs)  # the tensors computed from the inputs: their first axis is the batch
    for node in g.node:
        ins = [env[n] if n else None for n in node.input]
        row = table.get(node.op_type)
        if (
            row is not None
            and row.reshape
            and node.input[0] in batched
            and not batched.intersection(node.input[1:])
        ):
            outs = _per_row(node, ins, opset, table)
        else:
            outs = execute(node, ins, opset, table)
        if batched.intersection(node.input):
            batched.update(node.output)
        for name, v in zip(node.output, outs):
            env[name] = v
        if stop_at is not None and stop_at in node.output:
            return env
    if keep_all:
        return env
    return {o.name: env[o.name] for o in g.output}
