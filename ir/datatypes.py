"""Integer data types of the typed graph: bipolar, ternary, power-of-two, unsigned and signed k-bit.

Activations are ``BIPOLAR``, ``UINTk`` or ``INTk``. Weights may also be ``TERNARY`` (``{-1, 0, +1}``)
or ``POW2_b`` (``b``-bit power-of-two codes: ``0`` or ``+-2^j`` with ``0 <= j <= 2^(b-1) - 2``; one
sign bit, the other ``b - 1`` bits an exponent with one code reserved for zero). Power-of-two weights
are stored as those exact integers: the quantizer's scale ``2^e_min`` (the ``F`` fractional bits of
``ARITHMETIC.md`` section 4) folds into the thresholds, so the accumulator stays an exact integer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
import numpy as np

__all__ = ["Kind", "DataType", "BIPOLAR", "TERNARY"]


class Kind(enum.Enum):
    BIPOLAR = "bipolar"  # {-1, +1}, stored as bits {0, 1}
    UINT = "uint"
    INT = "int"
    TERNARY = "ternary"  # {-1, 0, +1} (weights), stored as signed integers
    POW2 = "pow2"  # 0 or +-2^j (weights), stored as signed integers


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

    @classmethod
    def pow2(cls, bits: int) -> "DataType":
        return cls(Kind.POW2, bits)

    @classmethod
    def for_range(cls, lo: int, hi: int) -> "DataType":
        """The narrowest UINT or INT type holding every integer in ``[lo, hi]``."""
        if lo > hi:
            raise ValueError(f"lo ({lo}) must not exceed hi ({hi})")
        if lo >= 0:
            return cls.uint(max(1, hi.bit_length()))
        bits = max((-lo - 1).bit_length(), hi.bit_length()) + 1
        return cls.int(bits)

    @classmethod
    def parse(cls, name: str) -> "DataType":
        if name == "BIPOLAR":
            return BIPOLAR
        if name == "TERNARY":
            return TERNARY
        m = re.fullmatch(r"(UINT|INT|POW2_)([1-9][0-9]*)", name)
        if not m:
            raise ValueError(f"data type must be BIPOLAR, TERNARY, UINT<k>, INT<k> or POW2_<k>, not {name!r}")
        return cls({"UINT": Kind.UINT, "INT": Kind.INT, "POW2_": Kind.POW2}[m[1]], int(m[2]))

    @property
    def name(self) -> str:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return self.kind.name
        if self.kind is Kind.POW2:
            return f"POW2_{self.bits}"
        return f"{self.kind.name}{self.bits}"

    @property
    def max_exponent(self) -> int:
        """``POW2_b``: the largest exponent ``2^(b-1) - 2`` of a stored value ``+-2^j``."""
        if self.kind is not Kind.POW2:
            raise ValueError(f"{self.name} is not a power-of-two type")
        return (1 << (self.bits - 1)) - 2

    @property
    def min(self) -> int:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return -1
        if self.kind is Kind.POW2:
            return -(1 << self.max_exponent)
        return 0 if self.kind is Kind.UINT else -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        if self.kind in (Kind.BIPOLAR, Kind.TERNARY):
            return 1
        if self.kind is Kind.POW2:
            return 1 << self.max_exponent
        return (1 << self.bits) - 1 if self.kind is Kind.UINT else (1 << (self.bits - 1)) - 1

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
