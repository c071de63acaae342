"""Stage 1 of the import: read and check the model, and describe its input.

:func:`read` loads the model (:func:`load_model`), checks that lowbit can import it
(:func:`check_model`: opset, one input and one output, data types, fixed shapes, constants folded
(:func:`fold_constants`), domains and operators of the op table, every operand defined, ONNX shape
inference) and returns a :class:`Source`: the checked model and its input as the first activation
of the chain.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from ... import LowbitError
from ...ir.boundary import InputQuant
from ...ir.datatypes import DataType, Kind
from ...limits import LIMITS, check
from ..streamline import BipolarQuantizer, IntQuantizer, fraction_array
from .executors import Reference, attributes
from .executors import dtype_name as _dtype_name
from .ops import FLOAT_TYPES, OPS, OpSpec, check_node
from .states import Act, Codes, Raw, image_idx, seq_idx

__all__ = [
    "Source",
    "read",
    "load_model",
    "check_model",
    "fold_constants",
    "node_error",
    "finn_dtype",
    "MIN_OPSET",
    "MAX_OPSET",
    "FOLD_LIMIT",
]

log = logging.getLogger(__name__)

MIN_OPSET = 11
MAX_OPSET = onnx.defs.onnx_opset_version()
_CUSTOM_DOMAINS = (
    "qonnx.custom_op.general",
    "finn.custom_op.general",
    "onnx.brevitas",
    "finn",
    "qonnx",
    "com.microsoft",
)
_HINTS = {
    "Gelu": "Relu",
    "LeakyRelu": "Relu",
    "PRelu": "Relu",
    "Elu": "Relu",
    "Selu": "Relu",
    "HardSigmoid": "Clip",
    "Sigmoid": "a quantizer (MultiThreshold) after Relu or Clip",
    "Tanh": "Clip (HardTanh) followed by a quantizer",
    "Softmax": "no Softmax: drop it (the class decision is unchanged)",
    "LogSoftmax": "no LogSoftmax: drop it",
    "ConvTranspose": "Conv",
    "Pad": "the pads attribute of Conv",
    "Concat": "a single chain (no Concat)",
    "Resize": "MaxPool or AveragePool",
    "Upsample": "MaxPool or AveragePool",
    "ReduceMean": "GlobalAveragePool",
    "Einsum": "MatMul",
    "Split": "a single chain (no Split)",
    "LSTM": "Gemm layers",
    "GRU": "Gemm layers",
    "Floor": "Quant with rounding_mode FLOOR",
    "Round": "Quant with rounding_mode ROUND",
    "BinaryQuant": "BipolarQuant",
}
"""The nearest supported form of common operators lowbit does not import."""
FOLD_LIMIT = LIMITS.tensor_elements
"""The most elements a tensor computed by constant folding (:func:`fold_constants`) may have:
lowbit's limit on the elements of any one tensor (:data:`lowbit.limits.LIMITS`)."""
_DEFAULT_DOMAINS = ("", "ai.onnx")
_EVALUATE = Reference()  # onnx's reference evaluator, every input in its own type
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}
_INT_INPUT = {
    onnx.TensorProto.UINT8: DataType.uint(8),
    onnx.TensorProto.INT8: DataType.int(8),
    onnx.TensorProto.UINT16: DataType.uint(16),
    onnx.TensorProto.INT16: DataType.int(16),
}
_NUMERIC = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.INT64,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.INT16,
    onnx.TensorProto.UINT16,
)


def node_error(label: str, name: str, op_type: str, msg: str) -> LowbitError:
    """The error for node ``name`` of op type ``op_type`` in the model ``label``."""
    return LowbitError(f"{label}: node {name!r} ({op_type}): {msg}")


def finn_dtype(label: str, name: str, tensor: str) -> DataType:
    """The data type of a FINN ``finn_datatype`` annotation ``name`` on ``tensor``."""
    try:
        return DataType.parse(name)
    except ValueError:
        raise LowbitError(
            f"{label}: tensor {tensor!r} is annotated {name!r}; expected BIPOLAR, "
            "TERNARY, UINT<k> or INT<k>"
        ) from None


@dataclass(frozen=True, eq=False)
class Source:
    """A checked model, ready to lower.

    Parameters
    ----------
    model : onnx.ModelProto
        The model with its shapes inferred.
    label : str
        The file name (or ``<model>``, ``<bytes>``) that messages start with.
    opset : int
        The default-domain opset.
    meta : mapping of str to str
        The model's metadata (``lowbit.dtype.<tensor>`` and ``lowbit.layout.<tensor>`` entries).
    annotations : mapping of str to str
        FINN ``finn_datatype`` annotations by tensor name.
    input_name : str
        The graph input.
    input : Act
        The input as the first activation: :class:`~.states.Codes` of a known integer type, or
        :class:`~.states.Raw` (a float input whose quantizer follows).
    """

    model: onnx.ModelProto
    label: str
    opset: int
    meta: Mapping[str, str]
    annotations: Mapping[str, str]
    input_name: str
    input: Act


def load_model(source) -> tuple[onnx.ModelProto, str]:
    """Read a model from a path, bytes or a ``ModelProto``; returns it and a label for messages.

    A model read from a path gets the tensors it stores in external files (ONNX external data)
    read from the model's own directory (:func:`load_external_data`); a model given as bytes or a
    ``ModelProto`` must hold its tensors itself.

    Raises
    ------
    LowbitError
        For a missing, empty, oversized (:data:`~lowbit.limits.LIMITS` ``.file_bytes``, checked
        before reading) or unreadable file, or external data lowbit refuses.
    """
    if isinstance(source, onnx.ModelProto):
        load_external_data(source, "<model>", None)
        return source, "<model>"
    base: Path | None = None
    if isinstance(source, (bytes, bytearray)):
        label, data = "<bytes>", bytes(source)
        check(label, "model size (bytes)", len(data), LIMITS.file_bytes)
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise LowbitError(f"{label}: no such file")
        check(label, "file size (bytes)", path.stat().st_size, LIMITS.file_bytes)
        data = path.read_bytes()
        base = path.absolute().parent
    if not data:
        raise LowbitError(f"{label}: empty file; expected an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError (an Exception subclass) on corrupt input
        raise LowbitError(
            f"{label}: not a readable ONNX model (truncated or corrupt protobuf: {e})"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise LowbitError(
            f"{label}: not an ONNX model (no graph nodes); truncated or wrong file type?"
        )
    bad = _undecodable_text(model)
    if bad is not None:
        raise LowbitError(f"{label}: field {bad} is not valid UTF-8 text; the file is corrupt")
    load_external_data(model, label, base)
    return model, label


def _is_repeated(fd) -> bool:
    """Whether protobuf field ``fd`` is repeated (``is_repeated`` since protobuf 5.28, ``label``
    before)."""
    flag = getattr(fd, "is_repeated", None)
    return bool(flag) if flag is not None else fd.label == fd.LABEL_REPEATED


def _undecodable_text(message, path: str = "") -> str | None:
    """The path (``graph.node[3].op_type``) of the first string field of ``message`` that is not
    valid UTF-8, or None. Protobuf does not check proto2 strings when it parses: such a field
    reads back as ``bytes``, not ``str``, and would fail wherever it is used as text."""
    for fd, value in message.ListFields():
        if fd.type not in (fd.TYPE_STRING, fd.TYPE_MESSAGE):
            continue
        repeated = _is_repeated(fd)
        values = value if repeated else [value]
        for k, v in enumerate(values):
            sub = (f"{path}.{fd.name}" if path else fd.name) + (f"[{k}]" if repeated else "")
            if fd.type == fd.TYPE_STRING:
                if not isinstance(v, str):
                    return sub
            else:
                found = _undecodable_text(v, sub)
                if found is not None:
                    return found
    return None


def _stored_tensors(model: onnx.ModelProto, label: str) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every tensor the model stores, with the name messages give it: the initializers and the
    tensor attributes of the nodes (``Constant`` values)."""
    for t in model.graph.initializer:
        yield f"{label}: initializer {t.name!r}", t
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        for a in node.attribute:
            where = f"{label}: node {name!r} ({node.op_type}): attribute {a.name!r}"
            if a.type == onnx.AttributeProto.TENSOR:
                yield where, a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from ((where, t) for t in a.tensors)


def _elements(where: str, t: onnx.TensorProto) -> int:
    """The number of elements ``t`` declares, checked against the limit before anything is read or
    allocated."""
    if any(d < 0 for d in t.dims):
        raise LowbitError(f"{where}: shape {list(t.dims)} has a negative dimension")
    size = math.prod(t.dims)
    check(f"{where} of shape {list(t.dims)}", "element count", size, LIMITS.tensor_elements)
    return size


def _itemsize(where: str, t: onnx.TensorProto) -> int:
    if t.data_type not in _NUMERIC:
        raise LowbitError(
            f"{where} has data type {_dtype_name(t.data_type)}; expected a "
            "numeric tensor"
        )
    return np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _check_tensor_data(where: str, t: onnx.TensorProto) -> None:
    """Refuse a stored tensor whose data do not fill its declared shape exactly."""
    size = _elements(where, t)
    if t.data_type not in _NUMERIC:
        return  # a string Constant: its values are its data (numeric initializers are checked)
    if t.HasField("raw_data"):
        need = size * _itemsize(where, t)
        if len(t.raw_data) != need:
            raise LowbitError(
                f"{where}: raw data holds {len(t.raw_data)} bytes; its shape {list(t.dims)} of "
                f"{_dtype_name(t.data_type)} needs {need}"
            )
        return
    have = len(getattr(t, helper.tensor_dtype_to_field(t.data_type)))
    if have != size:
        raise LowbitError(
            f"{where}: holds {have} values; its shape {list(t.dims)} needs {size}"
            + (" (no data)" if have == 0 else "")
        )


def _external_field(where: str, info: Mapping[str, str], key: str) -> int | None:
    if key not in info:
        return None
    try:
        v = int(info[key])
    except ValueError:
        v = -1
    if v < 0:
        raise LowbitError(
            f"{where}: external data {key} {info[key]!r} is not a non-negative integer"
        )
    return v


def _external_path(where: str, base: Path, location: str) -> Path:
    """The file ``location`` names inside the model's directory ``base``, refused when it is
    absolute, climbs out with ``..`` or resolves (through symbolic links) outside ``base``."""
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if (
        not location
        or PurePosixPath(location).is_absolute()
        or PureWindowsPath(location).is_absolute()
        or PureWindowsPath(location).drive
        or ".." in parts
    ):
        raise LowbitError(
            f"{where}: external data location {location!r} is not a relative path inside the "
            "model's directory"
        )
    root = base.resolve()
    path = (root / Path(*parts)).resolve()
    if not path.is_relative_to(root):
        raise LowbitError(
            f"{where}: external data location {location!r} resolves to {str(path)!r}, outside "
            f"the model's directory {str(root)!r}"
        )
    if not path.is_file():
        raise LowbitError(
            f"{where}: external data file {location!r} is not in the model's directory "
            f"{str(root)!r}"
        )
    return path


def load_external_data(model: onnx.ModelProto, label: str, base: Path | None) -> None:
    """Read every tensor of ``model`` stored in an external file into the model (in place).

    The files are read only from ``base``, the model's directory: a location that is absolute,
    climbs out with ``..`` or resolves outside it through a symbolic link is refused, as are an
    offset or length beyond the file, a length that is not the declared shape's size, and more
    than the limits (:data:`~lowbit.limits.LIMITS`: elements of a tensor, bytes in all). ``base``
    ``None`` (a model given as bytes or a ``ModelProto``) refuses external data.
    """
    total = 0
    for where, t in _stored_tensors(model, label):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if base is None:
            raise LowbitError(
                f"{where} stores its data in an external file; import the model from its path "
                "so that the file is read from the model's directory"
            )
        info = {e.key: e.value for e in t.external_data}
        need = _elements(where, t) * _itemsize(where, t)
        path = _external_path(where, base, info.get("location", ""))
        offset = _external_field(where, info, "offset") or 0
        length = _external_field(where, info, "length")
        size = path.stat().st_size
        available = size - offset
        if offset > size or (length is not None and length > available):
            raise LowbitError(
                f"{where}: external data (offset {offset}, length {length}) lies beyond the end "
                f"of {info['location']!r} ({size} bytes)"
            )
        stored = available if length is None else length
        if stored != need:
            raise LowbitError(
                f"{where}: external data holds {stored} bytes; its shape {list(t.dims)} of "
                f"{_dtype_name(t.data_type)} needs {need}"
            )
        total += need
        check(f"{label}: external data", "total size (bytes)", total, LIMITS.file_bytes)
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read(need)
        if len(data) != need:  # the file shrank while it was read
            raise LowbitError(f"{where}: external data file {info['location']!r} is truncated")
        t.raw_data = data
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


def _opset(model) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def _nearest(op: str, table: Mapping[str, OpSpec]) -> str:
    if op in _HINTS:
        return _HINTS[op]
    close = difflib.get_close_matches(op, sorted(table), n=1, cutoff=0.5)
    if close:
        return close[0]
    return "a chain of Conv/Gemm/MatMul, batch-norm, activations and quantizers"


def _foldable(node: onnx.NodeProto, consts, table: Mapping[str, OpSpec]) -> bool:
    """True when ``node`` reads only the constants ``consts`` and onnx's reference evaluator
    computes it: a deterministic operator of the default domain that is not one of the table's
    quantizers (the importer's handlers keep the integer codes of a quantized constant)."""
    if node.domain not in _DEFAULT_DOMAINS or not onnx.defs.has(node.op_type):
        return False
    row = table.get(node.op_type)
    if row is not None and (row.quantizer or row.fold is not None):
        return False
    if getattr(onnx.defs.get_schema(node.op_type), "non_deterministic", False):
        return False  # RandomNormal, Multinomial...: a constant would fix one draw
    return all(not x or x in consts for x in node.input)


def _inferred_shapes(node: onnx.NodeProto, ins: list, opset: int) -> dict[str, tuple[int, ...]]:
    """The output shapes ONNX shape inference finds for ``node`` on the constants ``ins``, before
    anything is computed (the outputs whose shape it cannot tell are left out)."""
    inits = [numpy_helper.from_array(v, n) for n, v in zip(node.input, ins) if n]
    outs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
    g = helper.make_graph([node], "fold", [], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    try:
        inferred = shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # an inconsistent node: the evaluator reports it, and the result is checked
        return {}
    shapes = {}
    for o in inferred.graph.output:
        t = o.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            shapes[o.name] = tuple(d.dim_value for d in t.shape.dim)
    return shapes


def fold_constants(
    model: onnx.ModelProto, label: str, table: Mapping[str, OpSpec] = OPS
) -> onnx.ModelProto:
    """``model`` with every node whose operands are all constants replaced by its outputs.

    A constant is an initializer or an output of a folded node. A node is folded when onnx's
    reference evaluator (``onnx.reference``) computes its operator, a deterministic operator of the
    default domain, whether or not the op table imports it; the table's quantizers (rows with
    ``quantizer`` or ``fold``) and custom operators (QONNX ``Quant``, ``BipolarQuant``, ``Trunc``,
    ``MultiThreshold``) stay for the importer's handlers, which keep a quantized constant's integer
    codes. The folded outputs that remaining nodes read become initializers, with the evaluator's
    data types and values exactly. ``model`` itself is not changed.

    Raises
    ------
    LowbitError
        When a folded tensor would have more than :data:`FOLD_LIMIT` elements (refused from its
        inferred shape before it is computed where shape inference knows it), or the evaluator
        fails; the message names the file, the node and its op type.
    """
    g = model.graph
    opset = _opset(model) or MAX_OPSET
    protos = {t.name: t for t in g.initializer}
    values: dict[str, np.ndarray] = {}
    consts = set(protos)
    folded: set[int] = set()
    for i, node in enumerate(g.node):
        if not _foldable(node, consts, table):
            continue
        name = node.name or f"{node.op_type}_{i}"
        ins = []
        for x in node.input:
            if x and x not in values:
                values[x] = numpy_helper.to_array(protos[x])
            ins.append(values[x] if x else None)
        shapes = _inferred_shapes(node, ins, opset)
        for out in node.output:
            if out in shapes:
                _check_fold_size(label, name, node.op_type, shapes[out])
        try:
            outs = _EVALUATE(ins, attributes(node), node, opset)
        except Exception as e:  # the evaluator raises the failing computation's own error
            raise node_error(
                label, name, node.op_type, f"cannot evaluate on constants: {e}"
            ) from None
        for out, v in zip(node.output, outs):
            if out:
                v = np.asarray(v)
                _check_fold_size(label, name, node.op_type, v.shape)
                values[out] = v
                consts.add(out)
        folded.add(i)
    if not folded:
        return model
    result = onnx.ModelProto()
    result.CopyFrom(model)
    nodes = []
    for i, node in enumerate(result.graph.node):
        if i not in folded:
            node.name = node.name or f"{node.op_type}_{i}"  # the name it has in the input model
            nodes.append(node)
    read_by = {x for n in nodes for x in n.input} | {o.name for o in result.graph.output}
    produced = [o for i in sorted(folded) for o in g.node[i].output if o and o in read_by]
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    result.graph.initializer.extend(numpy_helper.from_array(values[n], n) for n in produced)
    if result.ir_version < 4:  # initializers are graph inputs before IR version 4
        result.graph.input.extend(
            helper.make_tensor_value_info(
                n, helper.np_dtype_to_tensor_dtype(values[n].dtype), values[n].shape
            )
            for n in produced
        )
    log.info("%s: %d nodes folded on constants", label, len(folded))
    return result


def _check_fold_size(label: str, name: str, op_type: str, shape) -> None:
    size = math.prod(int(d) for d in shape)
    if size > FOLD_LIMIT:
        raise node_error(
            label,
            name,
            op_type,
            f"on constants it gives a tensor of {size} elements (shape {list(shape)}); lowbit "
            f"folds at most {FOLD_LIMIT} (FOLD_LIMIT)",
        )


def check_model(
    model: onnx.ModelProto, label: str, table: Mapping[str, OpSpec] = OPS
) -> onnx.ModelProto:
    """``model`` with its constants folded (:func:`fold_constants`) and its shapes inferred, once
    it passes every check of a chain lowbit imports.

    Raises
    ------
    LowbitError
        For the first check that fails, naming the file, and the node and op type where there is
        one.
    """
    v = _opset(model)
    if v is None:
        raise LowbitError(
            f"{label}: the model imports no default-domain opset; expected an opset "
            f"from {MIN_OPSET} to {MAX_OPSET}"
        )
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise LowbitError(
            f"{label}: opset {v} is not supported; lowbit reads opsets {MIN_OPSET} "
            f"to {MAX_OPSET} (convert with onnx.version_converter.convert_version)"
        )
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise LowbitError(
            f"{label}: the model has {len(inputs)} inputs ({names}); lowbit imports "
            "single-input chains"
        )
    if len(g.output) != 1:
        raise LowbitError(
            f"{label}: the model has {len(g.output)} outputs; lowbit imports "
            "single-output chains (keep only the class scores)"
        )
    inp = inputs[0]
    et = inp.type.tensor_type.elem_type
    if et not in _FLOAT_TYPES and et not in _INT_INPUT:
        raise LowbitError(
            f"{label}: input {inp.name!r} has data type "
            f"{_dtype_name(et)}; expected FLOAT, DOUBLE, UINT8, "
            "INT8, UINT16 or INT16"
        )
    dims = inp.type.tensor_type.shape.dim
    if not inp.type.tensor_type.HasField("shape") or not dims:
        raise LowbitError(
            f"{label}: input {inp.name!r} has no shape; export with a fixed input shape"
        )
    for axis, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value < 1:
            what = repr(d.dim_param) if d.HasField("dim_param") else "unknown"
            raise LowbitError(
                f"{label}: input {inp.name!r} has a dynamic dimension {what} at axis "
                f"{axis}; lowbit needs fixed shapes except the batch axis (export "
                "with a fixed input size)"
            )
    size = math.prod(d.dim_value for d in dims[1:])
    where = f"{label}: input {inp.name!r} of shape {[d.dim_value for d in dims[1:]]}"
    check(where, "element count", size, LIMITS.tensor_elements)
    for t in g.initializer:
        if t.data_type not in _NUMERIC:
            raise LowbitError(
                f"{label}: initializer {t.name!r} has data type "
                f"{_dtype_name(t.data_type)}; expected a numeric "
                "tensor"
            )
    for where, t in _stored_tensors(model, label):
        _check_tensor_data(where, t)
    _check_nodes(model, label, v, table)
    model = fold_constants(model, label, table)
    g = model.graph
    known = {t.name for t in g.initializer} | {inp.name}
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        if node.domain not in ("", "ai.onnx") + _CUSTOM_DOMAINS:
            raise node_error(
                label,
                name,
                node.op_type,
                f"unknown domain {node.domain!r}; expected "
                "the ONNX default domain or qonnx.custom_op.general",
            )
        if node.op_type not in table:
            raise node_error(
                label,
                name,
                node.op_type,
                f"operator {node.op_type!r} is not "
                f"supported; nearest supported form: {_nearest(node.op_type, table)}",
            )
        for x in node.input:
            if x and x not in known:
                raise node_error(
                    label,
                    name,
                    node.op_type,
                    f"input {x!r} is neither an "
                    "initializer, the graph input nor the output of an earlier node "
                    "(missing initializer?)",
                )
        known.update(node.output)
    if g.output[0].name not in known:
        raise LowbitError(f"{label}: output {g.output[0].name!r} is produced by no node")
    try:
        model = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx raises InferenceError / ValidationError naming the failing node
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LowbitError(f"{label}: shape inference failed (mismatched shapes?): {msg}") from None
    _check_float_operands(model, label, table)
    return model


def _check_nodes(model: onnx.ModelProto, label: str, opset: int, table: Mapping[str, OpSpec]):
    """Refuse a graph that is not in single-assignment form (a tensor defined twice) and a node
    whose operands, outputs or attributes do not match its schema (:func:`.ops.check_node`),
    before any node is evaluated."""
    g = model.graph
    defined = {t.name for t in g.initializer} | {i.name for i in g.input}
    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        try:
            check_node(node, opset, table)
        except ValueError as e:
            raise node_error(label, name, node.op_type, str(e)) from None
        for out in node.output:
            if out in defined:
                raise node_error(
                    label,
                    name,
                    node.op_type,
                    f"output {out!r} is already defined (by the graph input, an initializer or "
                    "an earlier node); expected each tensor assigned once (single-assignment "
                    "form)",
                )
            if out:
                defined.add(out)


def _check_float_operands(model: onnx.ModelProto, label: str, table: Mapping[str, OpSpec]):
    """Refuse an integer tensor where a node's schema expects a float one (the QONNX quantizers),
    by the types the model declares and shape inference found."""
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    for v in list(g.input) + list(g.value_info):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types.setdefault(v.name, v.type.tensor_type.elem_type)
    for i, node in enumerate(g.node):
        row = table.get(node.op_type)
        for k in row.schema.float_inputs if row is not None and row.schema is not None else ():
            et = types.get(node.input[k])
            if et is not None and et not in FLOAT_TYPES:
                raise node_error(
                    label,
                    node.name or f"{node.op_type}_{i}",
                    node.op_type,
                    f"input {k} {node.input[k]!r} is of type {_dtype_name(et)}; "
                    f"{node.op_type} quantizes a float tensor (FLOAT or DOUBLE)",
                )


def _input_nhwc(
    model: onnx.ModelProto, meta: Mapping[str, str], name: str, table: Mapping[str, OpSpec]
) -> bool:
    """True when the input image is NHWC: lowbit's own exports, or a first consumer working on
    NHWC."""
    if meta.get(f"lowbit.layout.{name}") == "NHWC":
        return True
    for node in model.graph.node:
        if name in node.input:
            a = attributes(node)
            return table[node.op_type].nhwc or a.get("data_layout") == "NHWC"
    return False


def _has_1d_window(model: onnx.ModelProto) -> bool:
    """True when a node of the model has a 1-D window (``kernel_shape``, ``strides`` or
    ``dilations`` of one value: a 1-D ``Conv`` or ``MaxPool``): its input ``(N, C, L)`` is a
    sequence."""
    for node in model.graph.node:
        a = attributes(node)
        for name in ("kernel_shape", "strides", "dilations"):
            v = a.get(name)
            if isinstance(v, (list, tuple)) and len(v) == 1:
                return True
    return False


def _input_layout(shape, nhwc=False, seq=False) -> tuple[np.ndarray, tuple[int, ...]]:
    """The input's ``idx`` and physical shape: an image ``(H, W, C)`` from ``(C, H, W)`` (or NHWC),
    a sequence ``(L, C)`` from ``(C, L)`` when ``seq`` (a model with 1-D windows), else a
    vector."""
    if len(shape) == 2 and seq:
        c, length = shape
        return seq_idx(c, length), (length, c)
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


def _input_quantizer(label: str, q: InputQuant, channels: int):
    """The streamline quantizer of ``q`` on an input of ``channels`` physical channels."""
    if not isinstance(q, InputQuant):
        raise TypeError(f"input_quant must be an InputQuant, not {q!r}")
    for name in ("scale", "zero_point"):
        if len(getattr(q, name)) not in (1, channels):
            raise LowbitError(
                f"{label}: the input quantizer has {len(getattr(q, name))} {name} values; the "
                f"input has {channels} channels (expected 1 or {channels})"
            )
    scale = np.broadcast_to(np.asarray(q.scale, dtype=np.float64), (channels,))
    if q.dtype.kind is Kind.BIPOLAR:
        return BipolarQuantizer(fraction_array(scale))
    zero = np.broadcast_to(np.asarray(q.zero_point, dtype=np.float64), (channels,))
    lo = q.dtype.min + (1 if q.narrow and q.dtype.signed else 0)
    return IntQuantizer(fraction_array(scale), fraction_array(zero), lo, q.dtype.max, q.rounding)


def read(
    source,
    *,
    input_dtype: DataType | None = None,
    input_quant: InputQuant | None = None,
    table: Mapping[str, OpSpec] = OPS,
) -> Source:
    """Load and check a model (path, bytes or ``ModelProto``) and describe its input.

    Parameters
    ----------
    source : str, os.PathLike, bytes or onnx.ModelProto
        The model.
    input_dtype : DataType, optional
        Data type of a float input that no quantizer follows, read as codes of scale 1; otherwise
        the ``lowbit.dtype`` metadata, a FINN annotation or an integer input type sets it, or the
        input stays :class:`~.states.Raw` until its quantizer.
    input_quant : InputQuant, optional
        A quantizer for a float input that no quantizer follows (``Brevitas``' default
        ``QuantLinear`` reads floats): the input is :class:`~.states.Raw` followed by this
        quantizer, as if the model began with a QONNX ``Quant``, so its codes carry the
        quantizer's per-channel scale and offset and the graph records it.
    table : mapping of str to OpSpec
        The operators lowbit imports.

    Raises
    ------
    LowbitError
        When the model cannot be read or fails a check.
    """
    model, label = load_model(source)
    if input_dtype is not None and input_quant is not None:
        raise LowbitError(f"{label}: give input_dtype (codes of scale 1) or input_quant, not both")
    model = check_model(model, label, table)
    meta = {p.key: p.value for p in model.metadata_props}
    annotations = {}
    for a in model.graph.quantization_annotation:
        for kv in a.quant_parameter_tensor_names:
            if kv.key == "finn_datatype":
                annotations[a.tensor_name] = kv.value
    inits = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in inits][0]
    shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim[1:])
    idx, phys = _input_layout(
        shape, _input_nhwc(model, meta, inp.name, table), _has_1d_window(model)
    )
    et = inp.type.tensor_type.elem_type
    dtype = input_dtype
    if dtype is None and meta.get(f"lowbit.dtype.{inp.name}"):
        dtype = finn_dtype(label, meta[f"lowbit.dtype.{inp.name}"], inp.name)
    if dtype is None and inp.name in annotations:
        dtype = finn_dtype(label, annotations[inp.name], inp.name)
    if dtype is None and et in _INT_INPUT:
        dtype = _INT_INPUT[et]
    if dtype is not None:
        check(f"{label}: input {inp.name!r} ({dtype})", "bit width", dtype.bits, LIMITS.act_bits)
    c = phys[-1]
    origin = f"input {inp.name!r}"
    act: Codes | Raw
    if input_quant is not None:
        if dtype is not None:
            raise LowbitError(
                f"{label}: input {inp.name!r} holds {dtype} codes already; an input quantizer "
                "applies to a float input"
            )
        act = Raw(idx, phys, origin, chain=(_input_quantizer(label, input_quant, c),))
    elif dtype is not None:
        act = Codes(
            idx, phys, origin, dtype, fraction_array(np.ones(c)), fraction_array(np.zeros(c))
        )
    else:
        act = Raw(idx, phys, origin)
    opset = _opset(model)
    if opset is None:  # not reached: check_model refuses a model without one
        raise LowbitError(f"{label}: the model imports no default-domain opset")
    return Source(model, label, opset, meta, annotations, inp.name, act)
