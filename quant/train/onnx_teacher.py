"""A distillation teacher loaded from ONNX (issue 20): a float classifier trained anywhere, whose
logits on the training set :func:`~lowbit.quant.train.loop.train_zoo` distils into a low-bit
student exactly as it does the built-in teacher's (:func:`~lowbit.quant.train.loop.train_teacher`).

The model is read as the importer reads one (:func:`lowbit.quant.onnx.read.load_model`: the file
size limit checked before reading, a corrupt protobuf, text or external data refused, every stored
tensor's declared size checked against its data and :data:`lowbit.limits.LIMITS`), then checked
against the data (one float input of shape ``(batch, features)`` or ``(batch, C, H, W)``, one
output ``(batch, classes)``; the data's images are stored channels last, HWC, and given to a
``(batch, C, H, W)`` input transposed, as ONNX convolutions take them) and run by onnx's
reference evaluator (``onnx.reference``, the project's float executor), a slice of the data at a
time.

The teacher sees the data set's inputs as they are (integer pixel values as floats: 0..16 for
digits, 0..255 for mnist5k); any scaling belongs in the model.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference
from onnx.reference import ReferenceEvaluator

from ... import LowbitError
from ...limits import LIMITS, check
from ..data import Dataset
from ..onnx.read import (
    MAX_OPSET,
    MIN_OPSET,
    _check_tensor_data,
    _opset,
    _stored_tensors,
    load_model,
)

__all__ = ["OnnxTeacher", "onnx_teacher"]

logger = logging.getLogger(__name__)

_SLICE = 256
"""Images per evaluator run for a model with a dynamic batch axis."""
_FLOATS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}


def _dims(value_info) -> list[int | None] | None:
    """The declared shape of a graph input or output (``None`` for a dynamic axis), or ``None``
    when it declares none."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


@dataclass(frozen=True, eq=False)
class OnnxTeacher:
    """A checked float ONNX classifier for ``classes`` classes taking images of ``input_shape``.

    Build it with :func:`onnx_teacher`; ``forward``, ``predict`` and ``accuracy`` answer as those
    of the built-in teacher (:class:`~lowbit.quant.train.net.ZooNet`) do.
    """

    label: str
    input_shape: tuple[int, ...]
    classes: int
    model: onnx.ModelProto
    batch: int | None
    """The model's fixed batch size (1), or ``None`` for a dynamic batch axis."""
    image_shape: tuple[int, int, int] | None = None
    """The data's image shape ``(H, W, C)`` when the model takes ``(batch, C, H, W)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The logits ``(B, classes)`` (float64) of the inputs ``x`` ``(B, features)``."""
        inp = self.model.graph.input[0]
        dtype = _FLOATS[inp.type.tensor_type.elem_type]
        x = np.asarray(x)
        if self.image_shape is not None:  # HWC images to the model's CHW
            x = x.reshape((len(x), *self.image_shape)).transpose(0, 3, 1, 2)
        x = np.ascontiguousarray(x.reshape((len(x), *self.input_shape)), dtype=dtype)
        step = self.batch or _SLICE
        session = ReferenceEvaluator(self.model)
        out = []
        for i in range(0, len(x), step):
            try:
                (y,) = session.run([self.model.graph.output[0].name], {inp.name: x[i : i + step]})
            except Exception as e:  # the evaluator raises anything on a model it cannot run
                msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                raise LowbitError(
                    f"{self.label}: onnx's reference evaluator could not run the teacher "
                    f"({type(e).__name__}: {msg})"
                ) from None
            y = np.asarray(y)
            n = len(x[i : i + step])
            if y.shape != (n, self.classes):
                raise LowbitError(
                    f"{self.label}: the teacher's output has shape {list(y.shape)} for {n} "
                    f"images; expected (batch, classes) = [{n}, {self.classes}]"
                )
            out.append(y.astype(np.float64))
        logits = np.concatenate(out) if out else np.zeros((0, self.classes))
        if not np.isfinite(logits).all():
            raise LowbitError(f"{self.label}: the teacher's logits hold inf or nan")
        return logits

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The class of each input: the argmax of :meth:`forward`."""
        return np.argmax(self.forward(x), axis=1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """The share of ``x`` classified as ``y``."""
        return float(np.mean(self.predict(x) == np.asarray(y)))


def _check_teacher(model: onnx.ModelProto, label: str, data: Dataset) -> OnnxTeacher:
    v = _opset(model)
    if v is None or not MIN_OPSET <= v <= MAX_OPSET:
        raise LowbitError(
            f"{label}: opset {v} is not supported; lowbit reads opsets {MIN_OPSET} to {MAX_OPSET}"
        )
    g = model.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise LowbitError(
            f"{label}: the teacher has {len(inputs)} inputs and {len(g.output)} outputs; expected "
            "a classifier with one input (the images) and one output (the class scores)"
        )
    for where, t in _stored_tensors(model, label):
        _check_tensor_data(where, t)
    inp = inputs[0]
    if inp.type.tensor_type.elem_type not in _FLOATS:
        raise LowbitError(
            f"{label}: the teacher's input {inp.name!r} is not FLOAT or DOUBLE; expected a float "
            "classifier"
        )
    hwc = data.image_shape
    shapes = [(data.features,)] + ([(hwc[2], hwc[0], hwc[1])] if hwc else [])
    want = " or ".join(f"(batch, {', '.join(map(str, s))})" for s in shapes)
    dims = _dims(inp)
    if not dims or tuple(dims[1:]) not in shapes or dims[0] not in (None, 1):
        shown = (
            "no shape"
            if dims is None
            else "shape (" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
        )
        raise LowbitError(
            f"{label}: the teacher's input {inp.name!r} has {shown}; the training data need "
            f"{want}, batch dynamic or 1"
        )
    shape = tuple(int(d) for d in dims[1:] if d is not None)
    check(f"{label}: input {inp.name!r}", "element count", math.prod(shape), LIMITS.tensor_elements)
    out = _dims(g.output[0])
    if out is not None and (len(out) != 2 or out[1] not in (None, data.classes)):
        shown = ", ".join("?" if d is None else str(d) for d in out)
        raise LowbitError(
            f"{label}: the teacher's output {g.output[0].name!r} has shape ({shown}); the "
            f"training data have {data.classes} classes: expected (batch, {data.classes})"
        )
    try:
        model = shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx raises InferenceError / ValidationError naming the node
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LowbitError(f"{label}: shape inference failed (a malformed model?): {msg}") from None
    batch = dims[0] or _SLICE
    for vi in (*model.graph.value_info, *model.graph.output):
        vd = _dims(vi)  # a tensor's inferred shape; the batch axis at most one slice
        if vd and all(d is not None for d in vd[1:]):
            elements = (vd[0] or batch) * math.prod(d for d in vd[1:] if d is not None)
            where = f"{label}: tensor {vi.name!r} for {batch} images"
            check(where, "element count", elements, LIMITS.tensor_elements)
    return OnnxTeacher(label, shape, data.classes, model, dims[0], hwc if len(shape) == 3 else None)


def onnx_teacher(source: str | os.PathLike, data: Dataset) -> tuple[OnnxTeacher, np.ndarray]:
    """Load the float ONNX classifier ``source`` as the teacher of a student trained on ``data``.

    Returns the teacher and its logits on ``data.x_train``, the ``teacher_logits`` of
    :func:`~lowbit.quant.train.loop.train_zoo` (as :func:`~lowbit.quant.train.loop.train_teacher`
    returns the built-in one's).

    Raises
    ------
    LowbitError
        Naming the file: not a file, too large, not an ONNX model (or a malformed one), an input
        that does not take the data's images, an output that does not give one score per class of
        the data, or logits that are not finite.
    """
    path = Path(source).resolve()
    label = str(source)
    if not path.is_file():
        raise LowbitError(f"{label}: not a file; expected a float ONNX classifier (the teacher)")
    try:
        model, _ = load_model(path)
    except OSError as e:  # unreadable: permissions, a file removed meanwhile
        raise LowbitError(f"{label}: cannot read the teacher ({e.strerror or e})") from None
    teacher = _check_teacher(model, label, data)
    logits = teacher.forward(data.x_train)
    logger.info("teacher %s: test accuracy %.4f", label, teacher.accuracy(data.x_test, data.y_test))
    return teacher, logits
