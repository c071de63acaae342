"""Bit packing and popcount on integer NumPy arrays.

Encoding (ARITHMETIC.md section 1): bit ``1`` is ``+1``, bit ``0`` is ``-1``. Bits are packed along
the last axis, least-significant bit first, into ``uint64`` words; a length that is not a multiple
of 64 is padded with zero bits.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "WORD_BITS",
    "pack_bits",
    "unpack_bits",
    "popcount",
    "bipolar_to_bits",
    "bits_to_bipolar",
]

WORD_BITS = 64


def _check_bits(bits: np.ndarray, name: str) -> np.ndarray:
    bits = np.asarray(bits)
    if bits.dtype.kind not in "biu":
        raise TypeError(f"{name} must be an integer or boolean array, not {bits.dtype}")
    if bits.size and (bits.min() < 0 or bits.max() > 1):
        raise ValueError(
            f"{name} must hold only 0 and 1, found values in [{bits.min()}, {bits.max()}]"
        )
    return bits.astype(np.uint64)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack 0/1 values along the last axis into ``uint64`` words (LSB first, zero padding).

    Returns an array of shape ``bits.shape[:-1] + (ceil(n / 64),)``.
    """
    b = _check_bits(bits, "bits")
    n = b.shape[-1]
    words = -(-n // WORD_BITS)
    padded = np.zeros(b.shape[:-1] + (words * WORD_BITS,), dtype=np.uint64)
    padded[..., :n] = b
    padded = padded.reshape(b.shape[:-1] + (words, WORD_BITS))
    shifts = np.arange(WORD_BITS, dtype=np.uint64)
    return np.bitwise_or.reduce(padded << shifts, axis=-1)


def unpack_bits(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``n`` bits along the last axis, as ``uint8``."""
    packed = np.asarray(packed, dtype=np.uint64)
    if n < 0 or n > packed.shape[-1] * WORD_BITS:
        raise ValueError(f"n must be in [0, {packed.shape[-1] * WORD_BITS}], not {n!r}")
    shifts = np.arange(WORD_BITS, dtype=np.uint64)
    bits = (packed[..., :, None] >> shifts) & np.uint64(1)
    return bits.reshape(packed.shape[:-1] + (-1,))[..., :n].astype(np.uint8)


def popcount(words: np.ndarray) -> np.ndarray:
    """Number of set bits of each ``uint64`` word, as ``int64``."""
    w = np.asarray(words, dtype=np.uint64)
    return np.bitwise_count(w).astype(np.int64)


def bipolar_to_bits(values: np.ndarray) -> np.ndarray:
    """Map bipolar values ``{-1, +1}`` to bits ``{0, 1}`` (``uint8``)."""
    v = np.asarray(values)
    if v.size and not np.isin(v, (-1, 1)).all():
        raise ValueError("values must hold only -1 and +1")
    return (v > 0).astype(np.uint8)


def bits_to_bipolar(bits: np.ndarray) -> np.ndarray:
    """Map bits ``{0, 1}`` to bipolar values ``{-1, +1}`` (``int64``)."""
    b = _check_bits(bits, "bits")
    return b.astype(np.int64) * 2 - 1
