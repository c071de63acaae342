"""Where the integer graph meets the model's floats: the input quantizer and the class decision.

* :class:`InputQuant` — how float inputs become the graph's input codes:
  ``code = clip(round(x / scale + zero_point))`` per input channel, in float32 arithmetic as QONNX's
  ``Quant`` and Brevitas compute it; the code stands for the value ``(code - zero_point) * scale``.
* :class:`ClassMap` — the exact per-class map of the model's tail (a last-layer float bias, a
  per-class scale of either sign, a TensorNorm, constant Mul/Add/Sub/Div after the last matrix
  product): class ``c`` with integer score ``s`` decides as ``mult[c] * s + offset[c]``, integers of
  any size. The argmax of these integers is the argmax of the model's scores exactly (ties to the
  lowest index, like :func:`lowbit.sw_reference.argmax_lowest`). The hardware's label select
  applies it; the scores it reports stay the raw integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .datatypes import DataType, Kind

__all__ = ["ClassMap", "InputQuant", "ROUNDING_MODES", "MAX_CLASS_MAP_BITS", "round_mode"]

_ROUND = {
    "ROUND": np.round,  # half to even, as QONNX and torch.round
    "HALF_EVEN": np.round,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "DOWN": np.fix,
    "ROUND_TO_ZERO": np.fix,
    "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
    "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
    "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5),
}
ROUNDING_MODES = tuple(_ROUND)
"""The rounding modes of QONNX's ``Quant`` (``ROUND`` is half to even)."""


def round_mode(mode: str):
    """The NumPy rounding function of a QONNX rounding mode (``ROUND`` is half to even)."""
    m = mode.upper() if isinstance(mode, str) else mode
    if m not in _ROUND:
        raise ValueError(f"rounding_mode must be one of {', '.join(_ROUND)}, not {mode!r}")
    return _ROUND[m]

MAX_CLASS_MAP_BITS = 256
"""The widest multiplier or offset a :class:`ClassMap` may hold (the label select's constants)."""


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


@dataclass(frozen=True)
class ClassMap:
    """Class ``c``'s integer score ``s`` decides as ``mult[c] * s + offset[c]`` (exact integers).

    Build one with :meth:`from_fractions` from the exact per-class affine map of the model's tail;
    it returns ``None`` when the map is the same increasing function for every class (the raw
    scores then decide).
    """

    mult: tuple[int, ...]
    offset: tuple[int, ...]

    def __post_init__(self):
        for name in ("mult", "offset"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)) or not v or not all(_is_int(t) for t in v):
                raise ValueError(f"class map: {name} must be a non-empty sequence of integers")
            if max(abs(int(t)) for t in v).bit_length() > MAX_CLASS_MAP_BITS:
                raise ValueError(
                    f"class map: {name} needs more than {MAX_CLASS_MAP_BITS} bits; the model's "
                    "per-class constants are too far apart in magnitude to compare exactly"
                )
            object.__setattr__(self, name, tuple(int(t) for t in v))
        if len(self.mult) != len(self.offset):
            raise ValueError(
                f"class map: mult has {len(self.mult)} entries and offset {len(self.offset)}; "
                "expected one of each per class"
            )

    @property
    def classes(self) -> int:
        return len(self.mult)

    @classmethod
    def from_fractions(cls, scale, offset) -> ClassMap | None:
        """The integer map of the exact per-class affine map ``scale[c] * s + offset[c]``
        (Fractions, or anything :class:`fractions.Fraction` takes exactly), or ``None`` when every
        class has the same positive scale and the same offset."""
        s = [Fraction(v) for v in scale]
        o = [Fraction(v) for v in offset]
        if len(s) != len(o) or not s:
            raise ValueError("class map: scale and offset need one entry per class")
        if len(set(s)) == 1 and len(set(o)) == 1 and s[0] > 0:
            return None
        den = math.lcm(*(v.denominator for v in s + o))
        mult = [int(v * den) for v in s]
        off = [int(v * den) for v in o]
        base = min(off)  # a common offset never changes the decision
        off = [v - base for v in off]
        g = math.gcd(*mult, *off)
        if g > 1:
            mult, off = [v // g for v in mult], [v // g for v in off]
        return cls(tuple(mult), tuple(off))

    def value_range(self, lo: int, hi: int) -> tuple[int, int]:
        """The range of the mapped values over scores in ``[lo, hi]``."""
        ends = [m * s + b for m, b in zip(self.mult, self.offset) for s in (lo, hi)]
        return min(ends), max(ends)

    def bits(self, lo: int, hi: int) -> int:
        """Bits of a two's complement register holding every mapped value of scores in
        ``[lo, hi]``."""
        a, b = self.value_range(lo, hi)
        return DataType.for_range(min(a, -1), max(b, 0)).bits

    def apply(self, scores) -> np.ndarray:
        """The mapped values of integer ``scores`` ``(..., classes)``: ``int64`` when they fit,
        else an object array of Python ints."""
        s = np.asarray(scores)
        if s.shape[-1:] != (self.classes,):
            raise ValueError(
                f"scores must have {self.classes} classes on the last axis, not shape {s.shape}"
            )
        m = max(abs(v) for v in self.mult)
        b = max(abs(v) for v in self.offset)
        top = int(np.abs(s).max(initial=0))
        if m * top + b < 2**62:
            return s.astype(np.int64) * np.array(self.mult, np.int64) + np.array(
                self.offset, np.int64
            )
        obj = s.astype(object)
        return obj * np.array(self.mult, dtype=object) + np.array(self.offset, dtype=object)

    def decide(self, scores) -> np.ndarray:
        """The class decision: the lowest index of the largest mapped value, per row."""
        v = self.apply(scores)
        return np.argmax(v, axis=-1).astype(np.int64)

    def to_json(self) -> dict:
        return {"mult": list(self.mult), "offset": list(self.offset)}

    @classmethod
    def from_json(cls, d) -> ClassMap:
        if not isinstance(d, dict) or set(d) != {"mult", "offset"}:
            raise ValueError("class_map must be an object with 'mult' and 'offset' lists")
        return cls(tuple(d["mult"]), tuple(d["offset"]))


@dataclass(frozen=True)
class InputQuant:
    """Float inputs to the graph's input codes, per input channel ``c`` (the last axis):
    ``code = clip(round(x / scale[c] + zero_point[c]), dtype)`` in float32 arithmetic (QONNX
    ``Quant``); the code stands for ``(code - zero_point[c]) * scale[c]``. For a ``BIPOLAR`` input,
    the code is ``x >= 0`` (Brevitas' binary quantizer). ``scale`` holds float32 values (exactly, as
    Python floats)."""

    dtype: DataType
    scale: tuple[float, ...]
    zero_point: tuple[float, ...]
    rounding: str = "ROUND"
    narrow: bool = False
    """Signed codes clip to ``[-(2^(k-1) - 1), 2^(k-1) - 1]`` (QONNX's ``narrow``)."""

    def __post_init__(self):
        if not isinstance(self.dtype, DataType) or self.dtype.kind not in (
            Kind.BIPOLAR,
            Kind.UINT,
            Kind.INT,
        ):
            raise ValueError(f"input quantizer: dtype must be BIPOLAR, UINT<k> or INT<k>, not "
                             f"{self.dtype!r}")
        for name in ("scale", "zero_point"):
            v = getattr(self, name)
            if isinstance(v, (int, float)):
                v = (v,)
            try:
                t = tuple(float(np.float32(x)) for x in v)
            except (TypeError, ValueError):
                raise ValueError(f"input quantizer: {name} must be numbers, not {v!r}") from None
            if not t or not all(math.isfinite(x) for x in t):
                raise ValueError(f"input quantizer: {name} must be finite numbers, not {v!r}")
            object.__setattr__(self, name, t)
        if not all(x > 0 for x in self.scale):
            raise ValueError(f"input quantizer: scale must be positive, not {self.scale!r}")
        if len(self.zero_point) not in (1, len(self.scale)) and len(self.scale) != 1:
            raise ValueError(
                "input quantizer: scale and zero_point need one entry or one per channel"
            )
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(
                f"input quantizer: rounding must be one of {', '.join(ROUNDING_MODES)}, "
                f"not {self.rounding!r}"
            )

    def encode(self, x) -> np.ndarray:
        """The codes (stored form: bits for ``BIPOLAR``) of float inputs ``x`` ``(..., C)`` or
        ``(B, size)`` with per-tensor parameters."""
        x = np.asarray(x, dtype=np.float32)
        s = np.asarray(self.scale, np.float32)
        z = np.asarray(self.zero_point, np.float32)
        if s.size > 1 and x.shape[-1] % s.size:
            raise ValueError(
                f"inputs of shape {x.shape} do not match the input quantizer's {s.size} channels"
            )
        if s.size > 1 and x.shape[-1] != s.size:
            x2 = x.reshape(x.shape[:-1] + (-1, s.size))
        else:
            x2 = x
        if self.dtype.kind is Kind.BIPOLAR:
            return (x2 / s >= 0).astype(np.int64).reshape(x.shape)
        y = (x2 / s + z).astype(np.float32)
        q = round_mode(self.rounding)(y.astype(np.float64))
        lo, hi = self.dtype.min + (1 if self.narrow and self.dtype.signed else 0), self.dtype.max
        return np.clip(q, lo, hi).astype(np.int64).reshape(x.shape)

    def decode(self, codes) -> np.ndarray:
        """The float values the codes stand for."""
        c = np.asarray(codes).astype(np.float64)
        if self.dtype.kind is Kind.BIPOLAR:
            c = 2 * c - 1
            return c * np.asarray(self.scale)
        s, z = np.asarray(self.scale), np.asarray(self.zero_point)
        if s.size > 1 and c.shape[-1] != s.size:
            return ((c.reshape(c.shape[:-1] + (-1, s.size)) - z) * s).reshape(c.shape)
        return (c - z) * s

    @classmethod
    def parse(cls, text: str) -> InputQuant:
        """A per-tensor quantizer from ``TYPE:SCALE[:ZERO_POINT]`` (``UINT5:0.0625``,
        ``INT8:1/128:0``; the numbers may be fractions); ``ValueError`` says what is wrong."""
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) not in (2, 3):
            raise ValueError(f"expected TYPE:SCALE[:ZERO_POINT] such as UINT8:1/255, not {text!r}")
        try:
            scale = float(Fraction(parts[1]))
            zero = float(Fraction(parts[2])) if len(parts) == 3 else 0.0
        except (ValueError, ZeroDivisionError):
            raise ValueError(
                f"expected TYPE:SCALE[:ZERO_POINT] with numbers or fractions, not {text!r}"
            ) from None
        return cls(DataType.parse(parts[0].upper()), (scale,), (zero,))

    def describe(self) -> str:
        """One line: type, scale and zero point (per-tensor or the channel count)."""
        def one(v):
            return f"{v[0]:.9g}" if len(set(v)) == 1 else f"{len(v)} per channel"

        return (
            f"{self.dtype} scale {one(self.scale)} zero point {one(self.zero_point)}"
            + ("" if self.rounding == "ROUND" else f" rounding {self.rounding}")
        )

    def to_json(self) -> dict:
        return {
            "dtype": self.dtype.name,
            "scale": list(self.scale),
            "zero_point": list(self.zero_point),
            "rounding": self.rounding,
            **({"narrow": True} if self.narrow else {}),
        }

    @classmethod
    def from_json(cls, d) -> InputQuant:
        if not isinstance(d, dict) or not {"dtype", "scale", "zero_point"} <= set(d):
            raise ValueError("input_quant must be an object with dtype, scale and zero_point")
        return cls(
            DataType.parse(d["dtype"]),
            tuple(d["scale"]),
            tuple(d["zero_point"]),
            d.get("rounding", "ROUND"),
            bool(d.get("narrow", False)),
        )

