"""The integer golden model: the oracle every other part of lowbit is checked against.

NumPy only; integer arrays only. Semantics: ``ARITHMETIC.md``.
"""

from .bits import WORD_BITS, bipolar_to_bits, bits_to_bipolar, pack_bits, popcount, unpack_bits
from .ops import argmax_lowest, binary_maxpool, bipolar_matmul, int_bipolar_matmul, multithreshold, xnor_popcount

__all__ = [
    "WORD_BITS", "pack_bits", "unpack_bits", "popcount", "bipolar_to_bits", "bits_to_bipolar",
    "xnor_popcount", "bipolar_matmul", "int_bipolar_matmul", "multithreshold", "binary_maxpool",
    "argmax_lowest",
]
