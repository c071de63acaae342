"""Integer data types of the typed graph: bipolar, ternary, power-of-two, unsigned and signed k-bit.

Activations are ``BIPOLAR``, ``UINTk`` or ``INTk``. Weights may also be ``TERNARY``
(``{-1, 0, +1}``) or ``POW2_b`` (``b``-bit power-of-two codes: ``0`` or ``+-2^j`` with
``0 <= j <= 2^(b-1) - 2``; one sign bit, the other ``b - 1`` bits an exponent with one code reserved
for zero). Power-of-two weights are stored as those exact integers: the quantizer's scale
``2^e_min`` (the ``F`` fractional bits of ``ARITHMETIC.md`` section 4) folds into the thresholds,
so the accumulator stays an exact integer.
"""

from __future__ import annotations

import builtins
import enum
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["Kind", "DataType", "BIPOLAR", "TERNARY", "signed_bits", "index_bits", "clog2"]


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's complement number holding every integer in ``[lo, hi]``: the tool's one
    formula, ``max((-lo - 1).bit_length(), hi.bit_length()) + 1``.

    The narrowest width when ``lo < 0 <= hi`` (every signed range the tool sizes: accumulators,
    scores, signed types): ``(-4, 3) -> 3``, ``(-5, 0) -> 4``, ``(-1, 0) -> 1``,
    ``(-1, 255) -> 9``; also for ``lo == 0 < hi``: ``(0, 7) -> 4``. Ranges that do not hold 0
    may get a bit more than they need, ``(3, 3) -> 4``, ``(-4, -4) -> 4``, and ``(0, 0) -> 2``.

    Raises
    ------
    TypeError
        If ``lo`` or ``hi`` is not an integer.
    ValueError
        If ``lo > hi``.
    """
    for name, v in (("lo", lo), ("hi", hi)):
        if not isinstance(v, int):
            raise TypeError(f"{name} must be an integer, not {v!r}")
    if lo > hi:
        raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def index_bits(n: int) -> int:
    """Bits of an index over ``n`` items: ``ceil(log2(n))``, and 0 for ``n <= 1`` (one item needs
    no index). Counts bits in cost models; for example ``1 -> 0``, ``2 -> 1``, ``3 -> 2``,
    ``4 -> 2``, ``5 -> 3``, ``64 -> 6``, ``65 -> 7``.
    """
    n = int(n)
    return (n - 1).bit_length() if n > 1 else 0


def clog2(n: int) -> int:
    """Width of a signal indexing ``n`` items: :func:`index_bits` but at least 1 (a signal has at
    least one bit). For example ``1 -> 1``, ``2 -> 1``, ``3 -> 2``, ``4 -> 2``, ``5 -> 3``."""
    return max(1, index_bits(n))


class Kind(enum.Enum):
    BIPOLAR = "bipolar"  # {-1, +1}, stored as bits {0, 1}
    UINT = "uint"
    INT = "int"
    TERNARY = "ternary"  # {-1, 0, +1} (weights), stored as signed integers
    POW2 = "pow2"  # 0 or +-2^j (weights), stored as signed integers

    @property
    def pattern(self) -> str:
        """How the names of types of this kind are spelled in messages: ``BIPOLAR``, ``UINT<k>``,
        ``INT<k>``, ``TERNARY`` or ``POW2_<b>``."""
        return _PATTERNS[self]


_PATTERNS = {
    Kind.BIPOLAR: "BIPOLAR",
    Kind.UINT: "UINT<k>",
    Kind.INT: "INT<k>",
    Kind.TERNARY: "TERNARY",
    Kind.POW2: "POW2_<b>",
}


@dataclass(frozen=True)
class DataType:
    """An integer data type. ``DataType.parse("UINT5")``, ``DataType.uint(5)``, ``BIPOLAR``."""

    kind: Kind
    bits: int

    def __post_init__(self):
        if not isinstance(self.kind, Kind):
            raise TypeError(f"kind must be a Kind, not {self.kind!r}")
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or self.bits < 1:
            raise ValueError(f"bits must be a positive integer, not {self.bits!r}")
        if self.kind is Kind.BIPOLAR and self.bits != 1:
            raise ValueError(f"a bipolar type has 1 bit, not {self.bits!r}")
        if self.kind is Kind.INT and self.bits < 2:
            raise ValueError(f"a signed integer type needs at least 2 bits, not {self.bits!r}")
        if self.kind is Kind.TERNARY and self.bits != 2:
            raise ValueError(f"a ternary type has 2 bits, not {self.bits!r}")
        if self.kind is Kind.POW2 and not 2 <= self.bits <= 6:
            raise ValueError(f"a power-of-two type needs 2 to 6 bits, not {self.bits!r}")

    @classmethod
    def uint(cls, bits: int) -> "DataType":
        return cls(Kind.UINT, bits)

    @classmethod
    def int(cls, bits: int) -> "DataType":
        return cls(Kind.INT, bits)

    # Below this point ``int`` in the class body names the classmethod above, so the annotations
    # spell the built-in type ``builtins.int``.

    @classmethod
    def pow2(cls, bits: builtins.int) -> "DataType":
        return cls(Kind.POW2, bits)

    @classmethod
    def for_range(cls, lo: builtins.int, hi: builtins.int) -> "DataType":
        """The narrowest UINT or INT type holding every integer in ``[lo, hi]``."""
        if lo > hi:
            raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
        if lo >= 0:
            return cls.uint(max(1, hi.bit_length()))
        return cls.int(signed_bits(lo, hi))

    @classmethod
    def parse(cls, name: str) -> "DataType":
        if name == "BIPOLAR":
            return BIPOLAR
        if name == "TERNARY":
            return TERNARY
        m = re.fullmatch(r"(UINT|INT|POW2_)([1-9][0-9]*)", name)
        if not m:
            raise ValueError(
                f"data type must be BIPOLAR, TERNARY, UINT<k>, INT<k> or POW2_<k>, not {name!r}"
            )
        return cls({"UINT": Kind.UINT, "INT": Kind.INT, "POW2_": Kind.POW2}[m[1]], int(m[2]))

    @property
    def name(self) -> str:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return self.kind.name
        if self.kind is Kind.POW2:
            return f"POW2_{self.bits}"
        return f"{self.kind.name}{self.bits}"

    @property
    def max_exponent(self) -> builtins.int:
        """``POW2_b``: the largest exponent ``2^(b-1) - 2`` of a stored value ``+-2^j``."""
        if self.kind is not Kind.POW2:
            raise ValueError(f"{self.name} is not a power-of-two type")
        return (1 << (self.bits - 1)) - 2

    @property
    def min(self) -> builtins.int:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return -1
        if self.kind is Kind.POW2:
            return -(1 << self.max_exponent)
        return 0 if self.kind is Kind.UINT else -(1 << (self.bits - 1))

    @property
    def max(self) -> builtins.int:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return 1
        if self.kind is Kind.POW2:
            return 1 << self.max_exponent
        return (1 << self.bits) - 1 if self.kind is Kind.UINT else (1 << (self.bits - 1)) - 1

    @property
    def stored_range(self) -> tuple[builtins.int, builtins.int]:
        """``(lo, hi)`` of the stored integers: ``(0, 1)`` for ``BIPOLAR`` (bits), else
        ``(min, max)``. Every integer in between is a stored value, except that ``POW2`` types hold
        only ``0`` and ``+-2^j``."""
        return (0, 1) if self.kind is Kind.BIPOLAR else (self.min, self.max)

    def sample(self, rng: np.random.Generator, shape, *, pow2_zeros: float = 0.2) -> np.ndarray:
        """Random stored values of this type: an ``int64`` array of ``shape``.

        Uniform over :attr:`stored_range`, drawn with one ``rng.integers(lo, hi + 1, shape)``, for
        every kind but ``POW2``; a ``POW2`` element is ``0`` with probability ``pow2_zeros``, else
        ``+-2^j`` with ``j`` uniform in ``[0, max_exponent]`` and the sign uniform (drawn with
        ``rng.random``, ``rng.integers`` and ``rng.choice([-1, 1])``, in that order). The draws are
        part of the contract: graphs built from seeded draws are pinned by the golden tests, so a
        seed must keep producing the same values.
        """
        if self.kind is Kind.POW2:
            zero = rng.random(shape) < pow2_zeros
            magnitude = np.where(zero, 0, 1 << rng.integers(0, self.max_exponent + 1, shape))
            return magnitude * rng.choice([-1, 1], shape)
        lo, hi = self.stored_range
        return rng.integers(lo, hi + 1, shape)

    @property
    def signed(self) -> bool:
        """True when the stored integers are signed (bipolar values are stored as bits)."""
        return self.kind in (Kind.INT, Kind.TERNARY, Kind.POW2)

    def contains(self, values) -> bool:
        """True when every stored value (bits for ``BIPOLAR``) belongs to this type."""

        v = np.asarray(values)
        if v.size == 0:
            return True
        if v.dtype.kind not in "biu":
            return False
        if self.kind is Kind.BIPOLAR:
            return bool(v.min() >= 0 and v.max() <= 1)
        if v.min() < self.min or v.max() > self.max:
            return False
        if self.kind is Kind.POW2:
            a = np.abs(v.astype(np.int64))
            return bool(((a & (a - 1)) == 0).all())
        return True

    def __str__(self) -> str:
        return self.name


BIPOLAR = DataType(Kind.BIPOLAR, 1)
TERNARY = DataType(Kind.TERNARY, 2)
