"""Inputs turned into a graph's codes, labels checked against its classes, accuracies: what the
command line (``lowbit sim``, ``lowbit eval``) and the Python API (:mod:`lowbit.api`) share about
the data a graph is fed.

Integer ``x`` are the graph's input codes; float ``x`` are the model's inputs, encoded by the
graph's input quantizer (:meth:`lowbit.ir.IntegerGraph.encode`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import LowbitError
from .npz import NpzReader

__all__ = ["accuracy", "check_labels", "graph_codes", "read_images"]


def check_labels(y: np.ndarray, classes: int, source: str) -> None:
    """Refuse labels outside ``[0, classes)``."""
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise LowbitError(
            f"{source}: labels 'y' must lie in [0, {classes - 1}] (the model's {classes} "
            f"classes), found [{y.min()}, {y.max()}]"
        )


def _layout(graph, x: np.ndarray, source: str, nchw: bool) -> np.ndarray:
    """``x`` as ``(B, *input_shape)``: from that shape, from ``(B, input_size)``, or (``nchw``) from
    the ``(B, C, H, W)`` layout of an ONNX image."""
    shape = graph.input_shape
    if x.shape[1:] == shape:
        return x
    if x.ndim == 2 and x.shape[1] == graph.input_size:
        return x.reshape((len(x),) + shape)
    chw = (shape[-1],) + shape[:-1] if len(shape) == 3 else None
    if nchw and chw is not None and x.shape[1:] == chw:
        return np.moveaxis(x, 1, -1)
    dims = ", ".join(map(str, shape))
    also = f" or (B, {', '.join(map(str, chw))})" if nchw and chw else ""
    raise LowbitError(
        f"{source}: 'x' must have shape (B, {dims}) or (B, {graph.input_size}){also} for this "
        f"model, not {x.shape}"
    )


def graph_codes(graph, x: np.ndarray, source: str, *, nchw: bool = False) -> np.ndarray:
    """The graph's input codes ``(B, *input_shape)`` for ``x``: integer ``x`` are codes (checked
    against the input type), float ``x`` are encoded by the graph's input quantizer.

    Raises
    ------
    LowbitError
        Naming ``source`` and the input type, for float ``x`` and a graph without input quantizer,
        a wrong shape, or codes outside the input type.
    """
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if graph.input_quant is None:
            raise LowbitError(
                f"{source}: 'x' holds floats ({x.dtype}) but the graph has no input quantizer: "
                f"it takes {graph.input_dtype} codes; pass integer codes, or import the model "
                "with --input-quant TYPE:SCALE (or --calib)"
            )
        x = _layout(graph, x, source, nchw)
        if not np.isfinite(x).all():
            raise LowbitError(f"{source}: 'x' holds NaN or infinite values")
        return graph.encode(x)
    if x.dtype.kind not in "biu":
        raise LowbitError(f"{source}: 'x' must hold integer codes or floats, not {x.dtype}")
    x = _layout(graph, x, source, nchw)
    try:
        return graph.check_input(x)
    except (TypeError, ValueError) as e:
        raise LowbitError(f"{source}: {e}") from None


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """The share of ``pred`` equal to ``y``."""
    return float(np.mean(np.asarray(pred) == np.asarray(y))) if len(y) else 0.0


def read_images(path, *, labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and ``y`` (``None`` when absent) of an image file (an ``.npz`` with an array ``x`` of
    ``B`` images and, optionally, integer labels ``y`` ``(B,)``), read with the checked reader
    (:class:`~lowbit.ir.npz.NpzReader`: sizes bounded before inflating, no pickles); with
    ``labels=True`` ``y`` is required. Errors name the file and what was expected."""
    p = Path(path)
    if not p.is_file():
        raise LowbitError(f"{p}: no such image file; expected an .npz with an array 'x'")
    with NpzReader(p, "image file") as z:
        if "x" not in z:
            raise LowbitError(f"{p}: expected an array named 'x' of images (B, ...)")
        x = z.array("x", kinds="biuf")
        y = z.array("y", kinds="biuf") if "y" in z else None
    if x.ndim < 2:
        raise LowbitError(f"{p}: 'x' must hold a batch of images (B, ...), not shape {x.shape}")
    if y is None:
        if labels:
            raise LowbitError(f"{p}: expected integer labels 'y' (B,) next to the images 'x'")
        return x, None
    if y.dtype.kind not in "iu" or y.shape != (len(x),):
        raise LowbitError(
            f"{p}: 'y' must hold one integer label per image, shape ({len(x)},), not "
            f"{y.dtype} {y.shape}"
        )
    return x, y.astype(np.int64)
