"""The typed integer graph: what training or import produces and what the hardware implements.

A graph is a chain of :class:`MatMulThreshold` nodes. Each node multiplies its input vector by a
bipolar weight matrix and either compares the accumulator with per-channel integer thresholds
(MultiThreshold) or, for the last node, emits integer class scores.

Accumulator semantics (``ARITHMETIC.md`` sections 1, 2, 5):

* bipolar inputs: ``acc = popcount(XNOR(x, w))`` in ``[0, MW]``; the scores are ``2 * acc - MW``;
* integer inputs: ``acc = sum_j x_j * w_j`` with ``w_j`` in ``{-1, +1}``; the scores are ``acc``.

Thresholded outputs are ``sum_i [acc >= T[c, i]]``: one threshold gives a bipolar output (as bits),
``2^k - 1`` thresholds give a ``UINTk`` output.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .. import LowbitError
from ..sw_reference import argmax_lowest, int_bipolar_matmul, multithreshold, xnor_popcount
from .datatypes import BIPOLAR, DataType, Kind

__all__ = ["MatMulThreshold", "IntegerGraph", "FORMAT_VERSION"]

FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class MatMulThreshold:
    """``out = threshold(W x)`` with bipolar weights ``W`` of shape ``(MH, MW)`` stored as bits."""

    name: str
    input_dtype: DataType
    weights: np.ndarray
    thresholds: np.ndarray | None
    output_dtype: DataType = field(default=BIPOLAR)

    def __post_init__(self):
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.dtype.kind not in "biu" or (w.size and (w.min() < 0 or w.max() > 1)):
            raise ValueError(f"node {self.name!r}: weights must be a 2-D array of bits (1 = +1, 0 = -1)")
        object.__setattr__(self, "weights", w.astype(np.uint8))
        if self.thresholds is not None:
            t = np.asarray(self.thresholds)
            if t.dtype.kind not in "iu" or t.ndim != 2 or t.shape[0] != w.shape[0]:
                raise ValueError(
                    f"node {self.name!r}: thresholds must be integers of shape (MH={w.shape[0]}, k), "
                    f"not {t.dtype} {t.shape}")
            t = t.astype(np.int64)
            if (np.diff(t, axis=1) < 0).any():
                raise ValueError(f"node {self.name!r}: each row of thresholds must be sorted ascending")
            lo, hi = self.acc_range
            if t.size and (t.min() < lo or t.max() > hi + 1):
                raise ValueError(
                    f"node {self.name!r}: thresholds must lie in the accumulator range [{lo}, {hi + 1}], "
                    f"found [{t.min()}, {t.max()}]")
            expected = BIPOLAR if t.shape[1] == 1 else DataType.uint((t.shape[1] + 1).bit_length() - 1)
            if (1 << expected.bits) - 1 != t.shape[1] and expected is not BIPOLAR:
                raise ValueError(f"node {self.name!r}: a k-bit output needs 2^k - 1 thresholds, not {t.shape[1]}")
            if self.output_dtype != expected:
                raise ValueError(f"node {self.name!r}: {t.shape[1]} thresholds give {expected}, "
                                 f"not output_dtype {self.output_dtype}")
            object.__setattr__(self, "thresholds", t)
        else:
            lo, hi = self.score_range
            if self.output_dtype != DataType.for_range(lo, hi):
                object.__setattr__(self, "output_dtype", DataType.for_range(lo, hi))

    @property
    def mh(self) -> int:
        return self.weights.shape[0]

    @property
    def mw(self) -> int:
        return self.weights.shape[1]

    @property
    def binary_input(self) -> bool:
        return self.input_dtype.kind is Kind.BIPOLAR

    @property
    def acc_range(self) -> tuple[int, int]:
        """Exact range of the accumulator over all inputs of ``input_dtype``."""
        if self.binary_input:
            return 0, self.mw
        m = max(-self.input_dtype.min, self.input_dtype.max)
        return -self.mw * m, self.mw * m

    @property
    def score_range(self) -> tuple[int, int]:
        lo, hi = self.acc_range
        return (2 * lo - self.mw, 2 * hi - self.mw) if self.binary_input else (lo, hi)

    def accumulate(self, x: np.ndarray) -> np.ndarray:
        """The accumulator for a batch of inputs ``x`` of shape ``(B, MW)``."""
        if self.binary_input:
            return xnor_popcount(x, self.weights)
        return int_bipolar_matmul(x, self.weights)

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Output of the node for a batch ``x``: bits, unsigned levels or integer scores."""
        acc = self.accumulate(x)
        if self.thresholds is None:
            return 2 * acc - self.mw if self.binary_input else acc
        return multithreshold(acc, self.thresholds)


@dataclass(frozen=True, eq=False)
class IntegerGraph:
    """A chain of :class:`MatMulThreshold` nodes from an integer input vector to class scores."""

    input_dtype: DataType
    nodes: tuple[MatMulThreshold, ...]

    def __post_init__(self):
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        if not nodes:
            raise ValueError("an integer graph needs at least one node")
        dtype, width = self.input_dtype, nodes[0].mw
        for node in nodes:
            if node.input_dtype != dtype:
                raise ValueError(f"node {node.name!r}: input_dtype is {node.input_dtype}, "
                                 f"but the previous stage produces {dtype}")
            if node.mw != width:
                raise ValueError(f"node {node.name!r}: MW is {node.mw}, but the previous stage produces {width}")
            dtype, width = node.output_dtype, node.mh
        if nodes[-1].thresholds is not None:
            raise ValueError(f"node {nodes[-1].name!r}: the last node must emit scores (thresholds=None)")
        if any(n.thresholds is None for n in nodes[:-1]):
            raise ValueError("only the last node may emit scores")

    @property
    def input_size(self) -> int:
        return self.nodes[0].mw

    @property
    def classes(self) -> int:
        return self.nodes[-1].mh

    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biu":
            raise TypeError(f"input must be an integer array, not {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"input must have shape (B, {self.input_size}), not {x.shape}")
        lo, hi = (0, 1) if self.input_dtype is BIPOLAR else (self.input_dtype.min, self.input_dtype.max)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"input values must lie in [{lo}, {hi}] ({self.input_dtype}), "
                             f"found [{x.min()}, {x.max()}]")
        return x.astype(np.int64)

    def trace(self, x: np.ndarray) -> list[np.ndarray]:
        """Outputs of every node for a batch ``x``, in order (the last one is the scores)."""
        out, h = [], self.check_input(x)
        for node in self.nodes:
            h = node.reference(h)
            out.append(h)
        return out

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.trace(x)[-1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return argmax_lowest(self.scores(x))

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the graph as an ``.npz`` archive (JSON header plus arrays), atomically."""
        path = Path(path)
        header = {
            "format": "lowbit-integer-graph",
            "version": FORMAT_VERSION,
            "input_dtype": self.input_dtype.name,
            "nodes": [{"name": n.name, "input_dtype": n.input_dtype.name, "output_dtype": n.output_dtype.name,
                       "has_thresholds": n.thresholds is not None} for n in self.nodes],
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, n in enumerate(self.nodes):
            arrays[f"weights_{i}"] = n.weights
            if n.thresholds is not None:
                arrays[f"thresholds_{i}"] = n.thresholds
        return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IntegerGraph":
        """Read a graph written by :meth:`save`; errors name the file and what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise LowbitError(f"{path}: no such model file")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise LowbitError(f"{path}: not a lowbit model (.npz) file ({e})") from None
        try:
            header = json.loads(bytes(arrays["header"]).decode())
        except (KeyError, ValueError, UnicodeDecodeError):
            raise LowbitError(f"{path}: missing or unreadable 'header' entry; expected a lowbit model") from None
        if header.get("format") != "lowbit-integer-graph" or header.get("version") != FORMAT_VERSION:
            raise LowbitError(f"{path}: expected format 'lowbit-integer-graph' version {FORMAT_VERSION}, "
                              f"got {header.get('format')!r} version {header.get('version')!r}")
        try:
            nodes = []
            for i, meta in enumerate(header["nodes"]):
                nodes.append(MatMulThreshold(
                    name=meta["name"],
                    input_dtype=DataType.parse(meta["input_dtype"]),
                    weights=arrays[f"weights_{i}"],
                    thresholds=arrays[f"thresholds_{i}"] if meta["has_thresholds"] else None,
                    output_dtype=DataType.parse(meta["output_dtype"]),
                ))
            return cls(DataType.parse(header["input_dtype"]), tuple(nodes))
        except KeyError as e:
            raise LowbitError(f"{path}: missing entry {e} in the model") from None
        except (ValueError, TypeError) as e:
            raise LowbitError(f"{path}: invalid model: {e}") from None

    def summary(self) -> list[dict]:
        return [{"name": n.name, "MW": n.mw, "MH": n.mh, "input": n.input_dtype.name,
                 "output": n.output_dtype.name} for n in self.nodes]


