"""A safe reader of lowbit model files (``.npz``): every size is checked before anything inflates.

:class:`NpzReader` opens the zip archive (at most ``LIMITS.file_bytes``) and reads a member only
when asked, after checking, from the zip's central directory and the member's ``.npy`` header:

* its uncompressed size against ``LIMITS.member_bytes`` (a zip bomb is refused before it inflates),
  and the total inflated by one reader against ``LIMITS.file_bytes``;
* its declared dtype: never Python objects (pickled data is refused, not loaded), and only the
  kinds the caller expects (integers);
* its declared shape: at most ``LIMITS.tensor_elements`` elements, the number of dimensions the
  caller expects, and whatever else the caller checks (``check_shape``) before the data is read;
* its data: exactly the bytes the header declares.

NumPy's own ``np.load`` inflates members whole before any of this can be checked, and its errors
suggest loading untrusted files with pickling enabled; this reader never does.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import LowbitError
from ..limits import LIMITS, check
from .datatypes import DataType
from .files import parse_json

__all__ = [
    "NpzReader",
    "node_where",
    "header_dtypes",
    "header_shape",
    "weights_fit",
    "thresholds_fit",
]

_KINDS = {"b": "integers", "i": "integers", "u": "integers", "f": "floats"}


class NpzReader:
    """The members of the ``.npz`` archive at ``path``, read on demand (a context manager).

    Errors name the file, then ``where`` (the node, given by the caller), then the array.
    """

    def __init__(self, path: str | os.PathLike, what: str = "lowbit model"):
        self.path = Path(path)
        self.what = what
        if not self.path.is_file():
            raise LowbitError(f"{self.path}: no such {what} file")
        try:
            check(str(self.path), "file size (bytes)", self.path.stat().st_size, LIMITS.file_bytes)
            self._zip = zipfile.ZipFile(self.path)
        # a directory entry needing a newer zip version than Python's: NotImplementedError
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
                RuntimeError, NotImplementedError) as e:
            raise self._invalid(f"not a valid .npz (zip) archive ({e})") from None
        self._members = {
            info.filename.removesuffix(".npy"): info
            for info in self._zip.infolist()
            if info.filename.endswith(".npy")
        }
        self._inflated = 0

    def _invalid(self, reason: str) -> LowbitError:
        return LowbitError(f"{self.path}: not a {self.what}: {reason}")

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "NpzReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __getitem__(self, name: str) -> np.ndarray:
        """Integer array ``name`` (the checks of :meth:`array` with their defaults)."""
        return self.array(name)

    def array(
        self,
        name: str,
        where: str = "",
        *,
        kinds: str = "biu",
        ndim: int | None = None,
        axes: str = "",
        check_shape: Callable[[tuple[int, ...]], None] | None = None,
    ) -> np.ndarray:
        """Array member ``name``, checked before it is inflated (see the module docstring).

        Parameters
        ----------
        where : str
            Where the array belongs, for the messages (``"<file>: node 0 ('fc0')"``); the file by
            default.
        kinds : str
            Accepted dtype kinds (``numpy.dtype.kind``); integers by default.
        ndim, axes : int, str
            The number of dimensions expected and their names (``"MH, MW"``).
        check_shape : callable, optional
            Called with the declared shape before the data is read; raises to refuse it.
        """
        at = f"{where or self.path}: "
        label = f"array {name!r}"
        info = self._members.get(name)
        if info is None:
            raise LowbitError(f"{at}missing {label}")
        check(f"{at}{label}", "uncompressed size (bytes)", info.file_size, LIMITS.member_bytes)
        self._inflated += info.file_size
        check(str(self.path), "uncompressed bytes read", self._inflated, LIMITS.file_bytes)
        try:
            with self._zip.open(info) as f:
                shape, fortran, dtype = _npy_header(f)
                if dtype.hasobject:
                    raise LowbitError(
                        f"{at}{label} holds Python objects (pickled data), which lowbit never loads"
                    )
                if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype:
                    expected = " or ".join(dict.fromkeys(_KINDS.get(k, k) for k in kinds))
                    raise LowbitError(f"{at}{label} holds {dtype}; expected {expected}")
                count = math.prod(shape)
                check(f"{at}{label}", "elements", count, LIMITS.tensor_elements)
                if ndim is not None and len(shape) != ndim:
                    raise LowbitError(
                        f"{at}{label} must be {ndim}-D ({axes}), not shape {tuple(shape)}"
                    )
                if check_shape is not None:
                    check_shape(shape)
                nbytes = count * dtype.itemsize
                data = f.read(nbytes)
        # an encrypted or unsupported member: RuntimeError / NotImplementedError from zipfile
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, RuntimeError,
                NotImplementedError) as e:
            raise self._invalid(f"{label} is not a readable .npy member ({e})") from None
        if len(data) != nbytes:
            raise self._invalid(
                f"{label} declares {nbytes} bytes of {dtype} {tuple(shape)}, holds {len(data)}"
            )
        out = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
        return out.copy() if fortran else out

    def json(self, name: str = "header") -> Any:
        """The JSON document stored as UTF-8 bytes in the 1-D ``uint8`` member ``name``."""
        raw = self.array(name, kinds="u", ndim=1, axes="bytes")
        if raw.dtype.itemsize != 1:
            raise LowbitError(f"{self.path}: array {name!r} holds {raw.dtype}; expected bytes")
        return parse_json(raw.tobytes(), f"{self.path}: {name}")


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` stream ``f`` (versions 1 and 2), leaving
    ``f`` at the data. Raises ``ValueError`` on anything else."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version} (lowbit writes 1.0)")
    return tuple(int(d) for d in shape), bool(fortran), dtype


# -- the entries of a lowbit model's header ------------------------------------------------------

_DTYPE_LIMITS = {
    "weight_dtype": "weight_bits",
    "input_dtype": "act_bits",
    "output_dtype": "act_bits",
}
"""The data-type entries of a header or node, and the limit (a :class:`~lowbit.limits.Limits`
field) on their bit width."""


def node_where(path: Path, i: int, meta: Any) -> str:
    """``"<path>: node i ('name')"`` for node ``i`` of a header, refused unless ``meta`` is an
    object with a string ``name``."""
    if not isinstance(meta, dict):
        raise LowbitError(f"{path}: node {i}: must be a JSON object, not {type(meta).__name__}")
    if "name" not in meta:
        raise LowbitError(f"{path}: node {i}: missing entry 'name'")
    if not isinstance(meta["name"], str):
        raise LowbitError(f"{path}: node {i}: 'name' must be a string, not {meta['name']!r}")
    return f"{path}: node {i} ({meta['name']!r})"


SCORE_BITS = LIMITS.act_bits + LIMITS.weight_bits + LIMITS.tensor_elements.bit_length()
"""Bits of a class score: a sum of at most ``LIMITS.tensor_elements`` products of an activation
and a weight."""


def header_dtypes(meta: dict, where: str, scores: bool = False) -> dict[str, DataType]:
    """The data types named by ``meta``'s ``input_dtype``, ``output_dtype`` and ``weight_dtype``
    entries (those present), each refused unless it is a type name of at most its limit's bits
    (checked before the type is built: a ``POW2_k`` type computes ``2^(2^(k-1))``). The output of
    a node emitting ``scores`` may have up to :data:`SCORE_BITS`."""
    out = {}
    for key, field in _DTYPE_LIMITS.items():
        limit = getattr(LIMITS, field)
        if scores and key == "output_dtype":
            limit = SCORE_BITS
        if key not in meta:
            continue
        name = meta[key]
        if not isinstance(name, str):
            raise LowbitError(f"{where}: {key} must be a data type name, not {name!r}")
        m = re.fullmatch(r"(?:UINT|INT|POW2_)([0-9]+)", name)
        if m:
            bits = int(m[1]) if len(m[1]) < 10 else math.inf
            check(f"{where}: {key} {name}", "bit width", bits, limit)
        try:
            out[key] = DataType.parse(name)
        except ValueError as e:
            raise LowbitError(f"{where}: {key}: {e}") from None
    return out


def header_shape(value: Any, path: Path) -> tuple[int, ...] | None:
    """The header's ``input_shape``: ``None``, or positive integers of at most
    ``LIMITS.tensor_elements`` elements."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value)
    ):
        raise LowbitError(
            f"{path}: header: 'input_shape' must be a list of positive integers, not {value!r}"
        )
    shape = tuple(value)
    check(f"{path}: input_shape {shape}", "elements", math.prod(shape), LIMITS.tensor_elements)
    return shape


def weights_fit(shape: tuple[int, ...] | None, where: str, name: str):
    """A ``check_shape`` for :meth:`NpzReader.array`: weights ``(MH, MW)`` whose ``MW`` is the last
    axis or the size of the input ``shape`` (any ``MW`` when the shape is not known)."""

    def fit(weights: tuple[int, ...]) -> None:
        if shape is None or weights[1] in (shape[-1], math.prod(shape)):
            return
        need = f"{shape[-1]}" if len(shape) == 1 else f"{shape[-1]} or {math.prod(shape)}"
        raise LowbitError(
            f"{where}: array {name!r} has shape {weights}, but its input {shape} needs MW = {need}"
        )

    return fit


def thresholds_fit(where: str, name: str):
    """A ``check_shape`` for :meth:`NpzReader.array`: at most ``LIMITS.thresholds`` per row."""

    def fit(thresholds: tuple[int, ...]) -> None:
        check(
            f"{where}: array {name!r}", "thresholds per channel", thresholds[1], LIMITS.thresholds
        )

    return fit
