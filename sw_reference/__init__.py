"""The integer golden model: the oracle every other part of lowbit is checked against.

NumPy only; integer arrays only. Semantics: ``ARITHMETIC.md``.
"""

from .bits import WORD_BITS, bipolar_to_bits, bits_to_bipolar, pack_bits, popcount, unpack_bits
from .dag import (
    add_threshold,
    concat,
    depthwise_int,
    depthwise_xnor,
    join_coefficients,
    maxpool1d,
    monotone_thresholds,
    simplest_join,
    sliding_window_1d,
    trunc_avg_pool,
)
from .ops import (
    argmax_lowest,
    binary_maxpool,
    bipolar_matmul,
    int_bipolar_matmul,
    int_matmul,
    maxpool2d,
    multithreshold,
    sliding_window,
    sum_pool,
    xnor_popcount,
)

__all__ = [
    "WORD_BITS",
    "pack_bits",
    "unpack_bits",
    "popcount",
    "bipolar_to_bits",
    "bits_to_bipolar",
    "xnor_popcount",
    "bipolar_matmul",
    "int_bipolar_matmul",
    "int_matmul",
    "multithreshold",
    "binary_maxpool",
    "sliding_window",
    "maxpool2d",
    "sum_pool",
    "argmax_lowest",
    "depthwise_xnor",
    "depthwise_int",
    "sliding_window_1d",
    "maxpool1d",
    "trunc_avg_pool",
    "monotone_thresholds",
    "join_coefficients",
    "add_threshold",
    "simplest_join",
    "concat",
]
from .sparse import (  # noqa: E402,F401
    PEImage,
    SparseImage,
    decode_sparse,
    dense_weights,
    encode_sparse,
    requantize,
    sparse_matvec,
)
