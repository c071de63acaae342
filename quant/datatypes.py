"""Integer data types of the typed graph: bipolar, unsigned and signed k-bit integers."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Kind", "DataType", "BIPOLAR"]


class Kind(enum.Enum):
    BIPOLAR = "bipolar"  # {-1, +1}, stored as bits {0, 1}
    UINT = "uint"
    INT = "int"


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

    @classmethod
    def uint(cls, bits: int) -> "DataType":
        return cls(Kind.UINT, bits)

    @classmethod
    def int(cls, bits: int) -> "DataType":
        return cls(Kind.INT, bits)

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
        m = re.fullmatch(r"(UINT|INT)([1-9][0-9]*)", name)
        if not m:
            raise ValueError(f"data type must be BIPOLAR, UINT<k> or INT<k>, not {name!r}")
        return cls(Kind.UINT if m[1] == "UINT" else Kind.INT, int(m[2]))

    @property
    def name(self) -> str:
        return "BIPOLAR" if self.kind is Kind.BIPOLAR else f"{self.kind.name}{self.bits}"

    @property
    def min(self) -> int:
        if self.kind is Kind.BIPOLAR:
            return -1
        return 0 if self.kind is Kind.UINT else -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        if self.kind is Kind.BIPOLAR:
            return 1
        return (1 << self.bits) - 1 if self.kind is Kind.UINT else (1 << (self.bits - 1)) - 1

    @property
    def signed(self) -> bool:
        return self.kind is Kind.INT

    def __str__(self) -> str:
        return self.name


BIPOLAR = DataType(Kind.BIPOLAR, 1)
