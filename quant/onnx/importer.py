"""Import ONNX, QONNX (Brevitas) and QDQ models into the typed integer graph.

:func:`import_onnx` runs the stages of the import, each its own module with its own checks:

1. :mod:`.read`: load the model and check it (opset, domains, operators of the op table, one
   input and one output, data types, fixed shapes, shape inference), and fold every node whose
   inputs are all constant with onnx's reference evaluator;
2. :mod:`.lower`: walk the nodes with the handlers of the op table (:mod:`.ops`,
   :mod:`.handlers`) into a chain of graph nodes, constants folded, the activation's layout
   tracked so that ``Transpose``/``Reshape``/``Flatten`` are absorbed exactly;
3. :mod:`.solve`: whenever a consumer needs integer codes, fold the pending layer and its exact
   element-wise functions into integer thresholds (or take the input quantizer's codes);
4. :mod:`.emit`: emit the last layer, fold the model's tail after it into the last node's exact
   class map, record the input quantizer, and assemble the ``IntegerGraph`` and
   :class:`ImportResult`.

ONNX strings (op types, attribute names, domains) are read in :mod:`lowbit.quant.onnx` only.
Errors name the input file, the node, its op type and the nearest supported form.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping

import numpy as np

from ... import LowbitError
from ...ir.boundary import InputQuant
from ...ir.datatypes import DataType
from ...ir.graph import Add, DepthwiseConv, GlobalAvgPool, IntegerGraph, MatMulThreshold
from . import ops as onnx_ops
from . import read
from .emit import ImportResult, assemble
from .lower import lower
from .ops import OPS, OpSpec
from .read import load_model

__all__ = [
    "ImportResult",
    "import_onnx",
    "load_model",
    "layer_table",
    "graphs_equal",
    "MIN_OPSET",
    "MAX_OPSET",
    "SUPPORTED_OPS",
]

log = logging.getLogger(__name__)

MIN_OPSET = read.MIN_OPSET
MAX_OPSET = read.MAX_OPSET
SUPPORTED_OPS = onnx_ops.SUPPORTED_OPS


def import_onnx(
    source,
    *,
    input_dtype: DataType | None = None,
    input_quant: InputQuant | None = None,
    table: Mapping[str, OpSpec] = OPS,
    native_nodes: bool = False,
) -> ImportResult:
    """Import an ONNX, QONNX or QDQ model (path, bytes or ``ModelProto``) into the typed integer
    graph.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        The model.
    input_dtype : DataType, optional
        Data type of a float input that no quantizer follows (for example ``UINT8`` pixels given
        as floats). Integer inputs, FINN ``finn_datatype`` annotations and input quantizers set it
        otherwise. Its codes have scale 1 (the value of code ``k`` is ``k``).
    input_quant : InputQuant, optional
        The quantizer of a float input that no quantizer follows: the model is imported as if it
        began with that QONNX ``Quant``, and the graph records it (``IntegerGraph.encode``).
    table : mapping of str to OpSpec, optional
        The operators to import (:data:`lowbit.quant.onnx.ops.OPS`, or an extension of it such as
        ``{**OPS, "MyOp": OpSpec(...)}``).
    native_nodes : bool, optional
        Emit the node types beyond chains for what a chain can also express: ``DepthwiseConv``
        for a ``Conv`` with ``group`` equal to its input and output channels (else a
        block-diagonal ``MatMulThreshold``, one lane per structural zero), ``GlobalAvgPool`` for
        an ``AveragePool`` over the whole image (else a window and a ``MatMulThreshold`` summing
        it) and ``Threshold`` for a requantizer of integer codes, such as a shortcut's own
        quantizer (else a 1x1 identity ``MatMulThreshold``). Off by default while the mapper and
        the hardware take chains of the older types. Residual ``Add`` and ``Concat`` joins import
        as ``Add`` and ``Concat`` nodes either way (no chain expresses them).

    Raises
    ------
    LowbitError
        For any model lowbit cannot import; the message names the file, node and op type.
    """
    try:
        src = read.read(source, input_dtype=input_dtype, input_quant=input_quant, table=table)
        result = assemble(lower(src, table, native_nodes))
    except UnicodeDecodeError as e:  # protobuf decodes a string field only when it is read
        where = source if isinstance(source, (str, os.PathLike)) else "the model"
        raise LowbitError(
            f"{where}: a name or string in the model is not valid UTF-8 ({e.reason} at byte "
            f"{e.start}); the file is corrupt"
        ) from None
    if input_quant is not None and result.graph.input_quant is None:
        raise LowbitError(
            f"{src.label}: the model quantizes its input itself; an input quantizer applies to a "
            "float input that no quantizer follows"
        )
    log.info("imported %s: %d nodes", src.label, len(result.graph.nodes))
    return result


def graphs_equal(a: IntegerGraph, b: IntegerGraph) -> bool:
    """True when two graphs have the same nodes, parameters, arrays and types."""
    if (
        a.input_dtype != b.input_dtype
        or a.input_shape != b.input_shape
        or len(a.nodes) != len(b.nodes)
        or a.inputs != b.inputs
    ):
        return False
    for x, y in zip(a.nodes, b.nodes):
        if type(x) is not type(y) or x.name != y.name or x._meta() != y._meta():
            return False
        for key in ("wa", "wb"):
            if hasattr(x, key) and not np.array_equal(getattr(x, key), getattr(y, key)):
                return False
        if isinstance(x, (DepthwiseConv, GlobalAvgPool, Add)):
            if not np.array_equal(x.thresholds, y.thresholds):
                return False
            if isinstance(x, DepthwiseConv) and not np.array_equal(x.weights, y.weights):
                return False
        if isinstance(x, MatMulThreshold):
            if not np.array_equal(x.weights, y.weights):
                return False
            if (x.thresholds is None) != (y.thresholds is None):
                return False
            if x.thresholds is not None and not np.array_equal(x.thresholds, y.thresholds):
                return False
    return True


# MAC kinds: XNOR-popcount (bipolar x bipolar), ternary (add/subtract/skip: ternary weights, or
# bipolar weights on integer inputs), shift (power-of-two weights), integer (multiplications).


def layer_table(graph: IntegerGraph, origins: dict | None = None) -> list[dict]:
    """Per-layer rows: op, shapes, data types, parameters, memory bits, MACs by kind and
    bit-operations."""
    rows = []
    # the column of a layer's MACs: its node.mac_kind.op (a lowbit.ir.mac.MacOp, a str enum)
    columns = {"xnor": "xnor", "add": "ternary", "shift": "shift", "multiply": "integer"}
    names = {n.name: i for i, n in enumerate(graph.nodes)}
    for i, n in enumerate(graph.nodes):
        ishape, oshape = graph.input_shape_of(i), graph.output_shape(i)
        first = graph.inputs_of(i)[0]
        dtype = graph.input_dtype if first == "" else graph.output_dtype(names[first])
        row = {
            "name": n.name,
            "op": type(n).__name__,
            "from": ", ".join((origins or {}).get(n.name, [])),
            "input_shape": list(ishape),
            "output_shape": list(oshape),
            "input": dtype.name,
            "weights": "",
            "output": "",
            "params": 0,
            "memory_bits": 0,
            "macs": dict.fromkeys(columns.values(), 0),
            "bops": 0,
        }
        if isinstance(n, (MatMulThreshold, DepthwiseConv)):
            pixels = math.prod(oshape[:-1]) if len(oshape) > 1 else 1
            macs = (n.mh * n.mw if isinstance(n, MatMulThreshold) else n.weights.size) * pixels
            kind = columns[n.mac_kind.op]
            tbits = 0 if n.thresholds is None else n.thresholds.size * n.acc_bits
            row.update(
                weights=n.weight_dtype.name,
                output=n.output_dtype.name,
                params=int(n.weights.size + (0 if n.thresholds is None else n.thresholds.size)),
                memory_bits=int(n.weights.size * n.weight_dtype.bits + tbits),
                bops=int(macs * n.weight_dtype.bits * n.input_dtype.bits),
            )
            row["macs"][kind] = int(macs)
        else:
            row["output"] = graph.output_dtype(i).name
            if isinstance(n, (Add, GlobalAvgPool)):  # thresholds (and an Add's coefficients)
                t = n.thresholds
                lo, hi = (n.acc_range if isinstance(n, Add) else (t.min(), t.max()))
                tbits = DataType.for_range(int(lo), int(hi) + 1).bits
                coef = 2 * n.channels if isinstance(n, Add) else 0
                row.update(params=int(t.size + coef), memory_bits=int((t.size + coef) * tbits))
        rows.append(row)
    return rows
